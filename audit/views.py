"""`GET /audit`: who changed what, newest first (scope audit:read).

A tenant's key reads the entries of its own owner's things only.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import selectors
from audit.wire import entry_to_wire
from runs.api import params
from runs.api.openapi import ref
from runs.exceptions import BadParameter
from tenants.tenancy import owner_limit

TIMESTAMP = {"type": "string", "format": "date-time"}
SHORT = {"type": "string", "maxLength": 200}


def _text(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > 200:
        raise BadParameter(name, "at most 200 characters")
    return raw


class AuditCollectionView(APIView):
    @extend_schema(
        operation_id="listAuditEntries",
        summary="The audit trail, newest first",
        parameters=[
            OpenApiParameter("actor", SHORT, description="master, key:<prefix>, admin:<user>, ..."),
            OpenApiParameter("action", SHORT, description="run.cancel, apikey.revoke, ..."),
            OpenApiParameter("targetId", SHORT),
            OpenApiParameter("after", TIMESTAMP, description="RFC 3339: entries written after"),
            OpenApiParameter("before", TIMESTAMP, description="RFC 3339: entries written before"),
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": 200}, description="default 50"
            ),
            OpenApiParameter("cursor", str, description="nextCursor of the previous page"),
        ],
        responses={
            200: ref("auditListResponse", "tenant"),
            400: OpenApiResponse(ref("errorResponse"), description="a bad parameter"),
            403: OpenApiResponse(ref("errorResponse"), description="the key lacks audit:read"),
        },
    )
    def get(self, request: Request) -> Response:
        filters = selectors.AuditFilters(
            actor=_text(request, "actor"),
            action=_text(request, "action"),
            target_id=_text(request, "targetId"),
            after=params.ts_param(request, "after"),
            before=params.ts_param(request, "before"),
            owner=owner_limit(request),
        )
        limit = params.int_param(request, "limit", default=50, minimum=1, maximum=200)
        entries, next_cursor = selectors.list_entries(
            filters, limit=limit, cursor=request.query_params.get("cursor") or None
        )
        return Response({"entries": [entry_to_wire(e) for e in entries], "nextCursor": next_cursor})
