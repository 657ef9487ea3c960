"""Thin HTTP views: parse and check the request, call a service or selector,
shape the answer. Business rules live in `runs.services`."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestrator.middleware.auth import restricted_owner
from runs import selectors, services, states, tokens
from runs.api import params
from runs.api.openapi import ref
from runs.exceptions import RunNotFound
from runs.models import Run
from runs.validation import validate
from runs.wire import checkpoint_to_wire, format_ts, run_to_wire
from tenants.tenancy import check_visible, creation_owner, list_owner
from webhooks import services as webhook_services

ERRORS = {
    code: OpenApiResponse(ref("errorResponse"), description=text)
    for code, text in {
        400: "malformed JSON or a bad parameter",
        404: "unknown run",
        409: "illegal status transition or idempotency conflict",
        413: "body too large",
        415: "body is not JSON",
        422: "JSON that breaks the schema; details.fields names each bad field",
    }.items()
}


TIMESTAMP = {"type": "string", "format": "date-time"}
# What statuses_param accepts, so generated clients and fuzzers send only that.
STATUS_LIST_PATTERN = "^(?:({0})(?:,({0}))*)?$".format("|".join(states.STATUSES))


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in codes}


def _run_or_404(request: Request, run_id: str) -> Run:
    """The run, when this request's credential may see it."""
    return check_visible(request, selectors.get_run(run_id), RunNotFound)


class RunCollectionView(APIView):
    @extend_schema(
        operation_id="listRuns",
        summary="List runs, newest first",
        parameters=[
            OpenApiParameter(
                "status",
                {"type": "string", "pattern": STATUS_LIST_PATTERN},
                description="one status or several, comma-separated",
            ),
            OpenApiParameter("mode", str, enum=list(states.MODES)),
            OpenApiParameter("owner", {"type": "string", "maxLength": 200}),
            OpenApiParameter("createdAfter", TIMESTAMP, description="RFC 3339"),
            OpenApiParameter("createdBefore", TIMESTAMP, description="RFC 3339"),
            OpenApiParameter(
                "scheduleId", {"type": "string", "format": "uuid"}, description="runs this schedule made"
            ),
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": 200}, description="default 50"
            ),
            OpenApiParameter(
                "cursor", str, description="nextCursor of the previous page; any other value is a 400"
            ),
        ],
        responses={200: ref("runListResponse"), **_errors(400)},
    )
    def get(self, request: Request) -> Response:
        filters = selectors.RunFilters(
            statuses=params.statuses_param(request),
            mode=params.choice_param(request, "mode", states.MODES),
            owner=list_owner(request, params.owner_filter(request)),
            created_after=params.ts_param(request, "createdAfter"),
            created_before=params.ts_param(request, "createdBefore"),
            schedule_id=params.uuid_param(request, "scheduleId"),
        )
        limit = params.int_param(request, "limit", default=50, minimum=1, maximum=200)
        runs, next_cursor = selectors.list_runs(
            filters, limit=limit, cursor=request.query_params.get("cursor") or None
        )
        return Response({"runs": [run_to_wire(run) for run in runs], "nextCursor": next_cursor})

    @extend_schema(
        operation_id="createRun",
        summary="Create a run (redis or k8s), or plan one (plan, the default)",
        parameters=[
            OpenApiParameter("mode", str, enum=["plan", *states.MODES], description="default plan"),
            OpenApiParameter("target", str, enum=list(states.MODES), description="plan mode only"),
            OpenApiParameter(
                "owner", {"type": "string", "maxLength": 200}, description="or the X-Actor-ID header"
            ),
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
                location=OpenApiParameter.HEADER,
            ),
            OpenApiParameter(
                "X-Actor-ID", {"type": "string", "maxLength": 200}, location=OpenApiParameter.HEADER
            ),
        ],
        request={"application/json": ref("createRunRequest")},
        responses={
            200: OpenApiResponse(
                {"oneOf": [ref("planResponse"), ref("createRunResponse")]},
                description="mode=plan: the plan; with a reused Idempotency-Key: the run it created",
            ),
            201: ref("createRunResponse"),
            503: OpenApiResponse(ref("errorResponse"), description="backend unavailable"),
            **_errors(400, 409, 413, 415, 422),
        },
    )
    def post(self, request: Request) -> Response:
        mode = params.choice_param(request, "mode", (states.PLAN, *states.MODES), default=states.PLAN)
        body = params.json_body(request)
        validate("run.schema.json#/$defs/createRunRequest", body)
        owner = creation_owner(request, params.owner_of(request)) or ""
        webhook = webhook_services.check_run_webhook(body.get("webhook"))
        run_at = params.body_ts(body, "runAt")
        if mode == states.PLAN:
            target = params.choice_param(
                request, "target", states.MODES, default=settings.PLAN_DEFAULT_TARGET
            )
            plan = services.plan_run(
                target=target,
                spec=body.get("spec"),
                metadata=body.get("metadata"),
                owner=owner,
                run_at=run_at,
                retry=body.get("retry"),
                depends_on=body.get("dependsOn"),
                visible_to=restricted_owner(request),
                concurrency_limit=body.get("concurrency"),
                priority=body.get("priority"),
            )
            return Response({"mode": "plan", "plan": plan})
        run, created = webhook_services.create_run(
            webhook=webhook,
            mode=mode,
            spec=body.get("spec"),
            metadata=body.get("metadata"),
            owner=owner,
            idempotency_key=params.idempotency_key(request),
            run_at=run_at,
            retry=body.get("retry"),
            depends_on=body.get("dependsOn"),
            visible_to=restricted_owner(request),
            concurrency_limit=body.get("concurrency"),
            priority=body.get("priority"),
        )
        return Response(
            {"runId": str(run.id), "run": run_to_wire(run)},
            status=201 if created else 200,
            headers={"Location": f"/runs/{run.id}"},
        )


class RunDetailView(APIView):
    @extend_schema(
        operation_id="getRun", summary="One run", responses={200: ref("runResponse"), **_errors(404)}
    )
    def get(self, request: Request, run_id: str) -> Response:
        return Response({"run": run_to_wire(_run_or_404(request, run_id))})

    @extend_schema(
        operation_id="updateRunStatus",
        summary="A worker reports the run's status",
        request={"application/json": ref("patchRunRequest")},
        responses={200: ref("runResponse"), **_errors(400, 404, 409, 413, 415, 422)},
    )
    def patch(self, request: Request, run_id: str) -> Response:
        body = params.json_body(request)
        validate("run.schema.json#/$defs/patchRunRequest", body)
        if restricted_owner(request) is not None:
            _run_or_404(request, run_id)
        run = services.set_run_status(run_id, body["status"], error=body.get("error"))
        return Response({"run": run_to_wire(run)})

    @extend_schema(
        operation_id="cancelRun",
        summary="Cancel the run and stop its work",
        responses={200: ref("cancelResponse"), **_errors(404, 409)},
    )
    def delete(self, request: Request, run_id: str) -> Response:
        if restricted_owner(request) is not None:
            _run_or_404(request, run_id)
        run = services.cancel_run(run_id)
        return Response({"ok": True, "status": run.status, "run": run_to_wire(run)})


class CheckpointCollectionView(APIView):
    @extend_schema(
        operation_id="listCheckpoints",
        summary="A run's checkpoints, oldest first",
        parameters=[
            OpenApiParameter("after", TIMESTAMP, description="a checkpoint ts (RFC 3339)"),
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, description="default 100"
            ),
        ],
        responses={200: ref("checkpointListResponse", "checkpoint"), **_errors(400, 404)},
    )
    def get(self, request: Request, run_id: str) -> Response:
        run = _run_or_404(request, run_id)
        after = params.ts_param(request, "after")
        limit = params.int_param(request, "limit", default=100, minimum=1, maximum=1000)
        checkpoints, next_cursor = selectors.list_checkpoints(run, after=after, limit=limit)
        return Response(
            {
                "runId": str(run.id),
                "checkpoints": [checkpoint_to_wire(cp) for cp in checkpoints],
                "nextCursor": next_cursor,
            }
        )

    @extend_schema(
        operation_id="appendCheckpoints",
        summary="Append one checkpoint, or a batch in order",
        request={"application/json": ref("appendRequest", "checkpoint")},
        responses={
            200: OpenApiResponse(
                {"oneOf": [ref("appendResponse", "checkpoint"), ref("appendBatchResponse", "checkpoint")]},
                description="every key was already held: the stored checkpoints, nothing new stored",
            ),
            201: OpenApiResponse(
                {"oneOf": [ref("appendResponse", "checkpoint"), ref("appendBatchResponse", "checkpoint")]},
                description="one checkpoint, or the batch (a held key answers the stored one in its place)",
            ),
            **_errors(400, 404, 409, 413, 415, 422),
        },
    )
    def post(self, request: Request, run_id: str) -> Response:
        """Served by `runs.api.append.append_checkpoints` on the event loop (the
        route sends POST there); declared here so that OpenAPI documents it."""
        raise NotImplementedError


STREAM_TOKEN_RESPONSE = {
    "type": "object",
    "required": ["token", "expiresAt"],
    "properties": {
        "token": {"type": "string", "description": "pass as ?token= on this run's event stream"},
        "expiresAt": {"type": "string", "format": "date-time"},
    },
    "additionalProperties": False,
}


class StreamTokenView(APIView):
    """A short-lived token that opens this run's event stream and nothing else.

    EventSource cannot send headers, so the browser carries this in the URL
    instead of the API key, which never goes into a URL.
    """

    @extend_schema(
        operation_id="createStreamToken",
        summary="Mint a token for this run's event stream",
        request=None,
        responses={200: OpenApiResponse(STREAM_TOKEN_RESPONSE, description="the token"), **_errors(404)},
    )
    def post(self, request: Request, run_id: str) -> Response:
        run = _run_or_404(request, run_id)
        token, expires_at = tokens.mint(tokens.STREAM, str(run.id))
        return Response(
            {"token": token, "expiresAt": format_ts(expires_at)}, headers={"Cache-Control": "no-store"}
        )


class ListStreamTokenView(APIView):
    """A short-lived token that opens the live run list (GET /runs/events) and nothing else.

    It carries the caller's restriction: a credential limited to one owner
    mints a token that shows that owner's runs only.
    """

    @extend_schema(
        operation_id="createRunListStreamToken",
        summary="Mint a token for the live run list",
        request=None,
        responses={200: OpenApiResponse(ref("streamToken", "journal"), description="the token")},
    )
    def post(self, request: Request) -> Response:
        token, expires_at = tokens.mint(tokens.LIST_STREAM, "", owner=restricted_owner(request))
        return Response(
            {"token": token, "expiresAt": format_ts(expires_at)}, headers={"Cache-Control": "no-store"}
        )
