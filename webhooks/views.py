"""Thin HTTP views of the webhooks API: parse, call a service or selector, shape."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs.api import params
from runs.api.openapi import ref
from runs.exceptions import BadParameter
from tenants.tenancy import check_visible, list_owner, owner_limit
from webhooks import selectors, services
from webhooks.exceptions import WebhookNotFound
from webhooks.models import Delivery, Webhook
from webhooks.wire import delivery_to_wire, webhook_to_wire

_ERROR_TEXT = {
    400: "malformed JSON or a bad parameter",
    404: "unknown webhook or delivery",
    413: "body too large",
    415: "body is not JSON",
    422: "JSON that breaks the schema, or a URL that is refused; details.fields names each bad field",
}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ref("errorResponse"), description=_ERROR_TEXT[code]) for code in codes}


def _wref(name: str) -> dict[str, str]:
    return ref(name, "webhook")


LIMIT = OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 200}, description="default 50")
CURSOR = OpenApiParameter("cursor", str, description="nextCursor of the previous page")


def _webhook_or_404(request: Request, webhook_id: str) -> Webhook:
    """The subscription, when this request's credential may see it."""
    return check_visible(request, selectors.get_webhook(webhook_id), WebhookNotFound)


def _bool_param(request: Request, name: str) -> bool | None:
    raw = params.choice_param(request, name, ("true", "false"))
    return None if raw is None else raw == "true"


class WebhookCollectionView(APIView):
    @extend_schema(
        operation_id="listWebhooks",
        summary="List webhook subscriptions, newest first",
        parameters=[
            OpenApiParameter("owner", {"type": "string", "maxLength": 200}),
            OpenApiParameter("active", str, enum=["true", "false"]),
            LIMIT,
            CURSOR,
        ],
        responses={200: _wref("webhookListResponse"), **_errors(400)},
    )
    def get(self, request: Request) -> Response:
        owner = request.query_params.get("owner")
        if owner is not None and len(owner) > 200:
            raise BadParameter("owner", "at most 200 characters")
        webhooks, next_cursor = selectors.list_webhooks(
            owner=list_owner(request, owner),
            active=_bool_param(request, "active"),
            limit=params.int_param(request, "limit", default=50, minimum=1, maximum=200),
            cursor=request.query_params.get("cursor") or None,
        )
        return Response({"webhooks": [webhook_to_wire(w) for w in webhooks], "nextCursor": next_cursor})

    @extend_schema(
        operation_id="createWebhook",
        summary="Subscribe a URL to run events; the answer shows its secret, once",
        request={"application/json": _wref("createWebhookRequest")},
        responses={201: _wref("webhookSecretResponse"), **_errors(400, 413, 415, 422)},
    )
    def post(self, request: Request) -> Response:
        body = params.json_body(request)
        limit = owner_limit(request)
        if limit is not None and isinstance(body, dict):
            # A tenant's subscription hears of its own runs only.
            body = {**body, "owner": limit}
        webhook, secret = services.create_webhook(body)
        return Response(
            {"webhook": webhook_to_wire(webhook, secret=secret)},
            status=201,
            headers={"Location": f"/webhooks/{webhook.id}", "Cache-Control": "no-store"},
        )


class WebhookDetailView(APIView):
    @extend_schema(
        operation_id="getWebhook",
        summary="One webhook subscription (without its secret)",
        responses={200: _wref("webhookResponse"), **_errors(404)},
    )
    def get(self, request: Request, webhook_id: str) -> Response:
        return Response({"webhook": webhook_to_wire(_webhook_or_404(request, webhook_id))})

    @extend_schema(
        operation_id="updateWebhook",
        summary="Change a subscription's url, events, active or description",
        request={"application/json": _wref("patchWebhookRequest")},
        responses={200: _wref("webhookResponse"), **_errors(400, 404, 413, 415, 422)},
    )
    def patch(self, request: Request, webhook_id: str) -> Response:
        _webhook_or_404(request, webhook_id)
        webhook = services.update_webhook(webhook_id, params.json_body(request))
        return Response({"webhook": webhook_to_wire(webhook)})

    @extend_schema(
        operation_id="deleteWebhook",
        summary="Delete a subscription and its deliveries",
        responses={204: OpenApiResponse(description="deleted"), **_errors(404)},
    )
    def delete(self, request: Request, webhook_id: str) -> Response:
        _webhook_or_404(request, webhook_id)
        services.delete_webhook(webhook_id)
        return Response(status=204)


class RotateSecretView(APIView):
    @extend_schema(
        operation_id="rotateWebhookSecret",
        summary="A new signing secret, shown once; the old one keeps signing beside it for overlapSeconds",
        request={"application/json": _wref("rotateSecretRequest")},
        responses={200: _wref("webhookSecretResponse"), **_errors(400, 404, 415, 422)},
    )
    def post(self, request: Request, webhook_id: str) -> Response:
        _webhook_or_404(request, webhook_id)
        overlap = services.rotation_overlap(params.json_body(request))
        webhook, secret = services.rotate_secret(webhook_id, overlap)
        return Response(
            {"webhook": webhook_to_wire(webhook, secret=secret)}, headers={"Cache-Control": "no-store"}
        )


class DeliveryCollectionView(APIView):
    @extend_schema(
        operation_id="listWebhookDeliveries",
        summary="A subscription's deliveries, newest first",
        parameters=[OpenApiParameter("status", str, enum=list(Delivery.Status.values)), LIMIT, CURSOR],
        responses={200: _wref("deliveryListResponse"), **_errors(400, 404)},
    )
    def get(self, request: Request, webhook_id: str) -> Response:
        webhook = _webhook_or_404(request, webhook_id)
        deliveries, next_cursor = selectors.list_deliveries(
            webhook,
            status=params.choice_param(request, "status", tuple(Delivery.Status.values)),
            limit=params.int_param(request, "limit", default=50, minimum=1, maximum=200),
            cursor=request.query_params.get("cursor") or None,
        )
        return Response({"deliveries": [delivery_to_wire(d) for d in deliveries], "nextCursor": next_cursor})


class RedeliverView(APIView):
    @extend_schema(
        operation_id="redeliverWebhookDelivery",
        summary="Send a delivery again, with the same webhook-id",
        request=None,
        responses={202: _wref("deliveryResponse"), **_errors(404)},
    )
    def post(self, request: Request, webhook_id: str, delivery_id: str) -> Response:
        _webhook_or_404(request, webhook_id)
        delivery = services.redeliver_by_id(webhook_id, delivery_id)
        return Response({"delivery": delivery_to_wire(delivery)}, status=202)
