"""Thin views of `/api-keys`: master keys, or tenant keys with `keys:manage`.

A tenant's key manages its own owner's keys only, and cannot hand out a
scope it does not hold itself.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestrator.middleware.auth import identify
from runs.api import params
from runs.api.openapi import ref
from runs.exceptions import SchemaViolation
from runs.validation import validate
from tenants import selectors, services
from tenants.exceptions import MissingScope
from tenants.tenancy import list_owner, owner_limit
from tenants.wire import api_key_to_wire

_ERROR_TEXT = {
    400: "a bad parameter",
    403: "the key lacks keys:manage, or a scope it would grant",
    404: "unknown API key",
    413: "body too large",
    415: "body is not JSON",
    422: "JSON that breaks the schema; details.fields names each bad field",
}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ref("errorResponse"), description=_ERROR_TEXT[code]) for code in codes}


class ApiKeyCollectionView(APIView):
    @extend_schema(
        operation_id="listApiKeys",
        summary="List API keys, newest first (never their secrets)",
        parameters=[
            OpenApiParameter("owner", {"type": "string", "maxLength": 200}),
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": 200}, description="default 50"
            ),
            OpenApiParameter("cursor", str, description="nextCursor of the previous page"),
        ],
        responses={200: ref("apiKeyListResponse", "tenant"), **_errors(400, 403)},
    )
    def get(self, request: Request) -> Response:
        api_keys, next_cursor = selectors.list_keys(
            owner=list_owner(request, params.owner_filter(request)),
            limit=params.int_param(request, "limit", default=50, minimum=1, maximum=200),
            cursor=request.query_params.get("cursor") or None,
        )
        return Response({"apiKeys": [api_key_to_wire(k) for k in api_keys], "nextCursor": next_cursor})

    @extend_schema(
        operation_id="createApiKey",
        summary="Issue an API key for an owner with scopes; the answer shows the key, once",
        request={"application/json": ref("createApiKeyRequest", "tenant")},
        responses={201: ref("createApiKeyResponse", "tenant"), **_errors(403, 413, 415, 422)},
    )
    def post(self, request: Request) -> Response:
        body = params.json_body(request)
        validate("tenant.schema.json#/$defs/createApiKeyRequest", body)
        limit = owner_limit(request)
        if limit is not None:
            if body["owner"] != limit:
                raise SchemaViolation({"owner": ["this key issues keys for its own owner only"]})
            held = identify(request).scopes or frozenset()
            beyond = [scope for scope in body["scopes"] if scope not in held]
            if beyond:
                raise MissingScope(beyond[0])
        try:
            api_key, secret = services.create_key(
                name=body["name"],
                owner=body["owner"],
                scopes=body["scopes"],
                expires_at=params.body_ts(body, "expiresAt"),
            )
        except services.InvalidKeyRequest as exc:
            raise SchemaViolation({exc.field: [exc.message]}) from None
        return Response(
            {"apiKey": api_key_to_wire(api_key), "key": secret},
            status=201,
            headers={"Location": f"/api-keys/{api_key.id}", "Cache-Control": "no-store"},
        )


class ApiKeyDetailView(APIView):
    @extend_schema(
        operation_id="getApiKey",
        summary="One API key (never its secret)",
        responses={200: ref("apiKeyResponse", "tenant"), **_errors(403, 404)},
    )
    def get(self, request: Request, key_id: str) -> Response:
        return Response({"apiKey": api_key_to_wire(selectors.get_key(key_id, owner=owner_limit(request)))})

    @extend_schema(
        operation_id="revokeApiKey",
        summary="Revoke the key at once, in every server process",
        responses={200: ref("apiKeyResponse", "tenant"), **_errors(403, 404)},
    )
    def delete(self, request: Request, key_id: str) -> Response:
        # By id only here (commands also take a prefix): the path names one record.
        api_key = selectors.get_key(key_id, owner=owner_limit(request))
        revoked = services.revoke_key(api_key.id, owner=owner_limit(request))
        return Response({"apiKey": api_key_to_wire(revoked)})
