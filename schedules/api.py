"""Thin HTTP views for schedules: parse, call a service or selector, shape the answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from runs.api import params
from runs.api.openapi import ref
from runs.exceptions import BadParameter
from runs.validation import validate
from runs.wire import format_ts, run_to_wire
from schedules import selectors, services
from schedules.exceptions import ScheduleNotFound
from schedules.models import Schedule
from schedules.timing import Timing, TimingError, check_cron
from schedules.wire import ADMISSION_FIELDS, schedule_to_wire
from tenants.tenancy import check_visible, creation_owner, list_owner

ERRORS = {
    code: OpenApiResponse(ref("errorResponse"), description=text)
    for code, text in {
        400: "malformed JSON or a bad parameter",
        404: "unknown schedule",
        413: "body too large",
        415: "body is not JSON",
        422: "JSON that breaks the schema, a bad cron, timezone or spec; details.fields names each bad field",
        503: "the run's backend is unavailable",
    }.items()
}

# Wire name -> model field, for what a client may set.
_FIELDS = {
    "name": "name",
    "cron": "cron",
    "intervalSeconds": "interval_seconds",
    "timezone": "timezone",
    "mode": "mode",
    "spec": "spec",
    "metadata": "metadata",
    "overlap": "overlap",
    "catchup": "catchup",
    "paused": "paused",
    "startAt": "start_at",
    "endAt": "end_at",
}
_TIMES = ("startAt", "endAt")


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in codes}


def _model_fields(body: dict[str, Any]) -> dict[str, Any]:
    fields = {
        _FIELDS[name]: value
        for name, value in body.items()
        if name not in _TIMES and name not in ADMISSION_FIELDS
    }
    admission = {name: body[name] for name in ADMISSION_FIELDS if name in body}
    if admission:
        fields["admission"] = admission  # a null removes that field (services.update_schedule)
    for name in _TIMES:
        if name in body:
            fields[_FIELDS[name]] = params.body_ts(body, name)
    return fields


def _schedule_or_404(request: Request, schedule_id: str) -> Schedule:
    """The schedule, when this request's credential may see it."""
    return check_visible(request, selectors.get_schedule(schedule_id), ScheduleNotFound)


def _bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in ("true", "false"):
        raise BadParameter(name, "must be true or false")
    return raw == "true"


class ScheduleCollectionView(APIView):
    @extend_schema(
        operation_id="listSchedules",
        summary="List schedules, newest first",
        parameters=[
            OpenApiParameter("owner", {"type": "string", "maxLength": 200}),
            OpenApiParameter("paused", str, enum=["true", "false"]),
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": 200}, description="default 50"
            ),
            OpenApiParameter("cursor", str, description="nextCursor of the previous page"),
        ],
        responses={200: ref("scheduleListResponse", "schedule"), **_errors(400)},
    )
    def get(self, request: Request) -> Response:
        filters = selectors.ScheduleFilters(
            owner=list_owner(request, request.query_params.get("owner")),
            paused=_bool_param(request, "paused"),
        )
        limit = params.int_param(request, "limit", default=50, minimum=1, maximum=200)
        schedules, next_cursor = selectors.list_schedules(
            filters, limit=limit, cursor=request.query_params.get("cursor") or None
        )
        return Response({"schedules": [schedule_to_wire(s) for s in schedules], "nextCursor": next_cursor})

    @extend_schema(
        operation_id="createSchedule",
        summary="Create a schedule (cron or interval)",
        parameters=[
            OpenApiParameter(
                "owner", {"type": "string", "maxLength": 200}, description="or the X-Actor-ID header"
            ),
            OpenApiParameter(
                "X-Actor-ID", {"type": "string", "maxLength": 200}, location=OpenApiParameter.HEADER
            ),
        ],
        request={"application/json": ref("createScheduleRequest", "schedule")},
        responses={201: ref("scheduleResponse", "schedule"), **_errors(400, 413, 415, 422)},
    )
    def post(self, request: Request) -> Response:
        body = params.json_body(request)
        validate("schedule.schema.json#/$defs/createScheduleRequest", body)
        schedule = services.create_schedule(
            owner=creation_owner(request, params.owner_of(request)) or "", **_model_fields(body)
        )
        return Response(
            {"schedule": schedule_to_wire(schedule)},
            status=201,
            headers={"Location": f"/schedules/{schedule.id}"},
        )


class ScheduleDetailView(APIView):
    @extend_schema(
        operation_id="getSchedule",
        summary="One schedule",
        responses={200: ref("scheduleResponse", "schedule"), **_errors(404)},
    )
    def get(self, request: Request, schedule_id: str) -> Response:
        return Response({"schedule": schedule_to_wire(_schedule_or_404(request, schedule_id))})

    @extend_schema(
        operation_id="updateSchedule",
        summary="Change a schedule; a change of timing, or a resume, starts from the next tick after now",
        request={"application/json": ref("patchScheduleRequest", "schedule")},
        responses={200: ref("scheduleResponse", "schedule"), **_errors(400, 404, 413, 415, 422)},
    )
    def patch(self, request: Request, schedule_id: str) -> Response:
        body = params.json_body(request)
        validate("schedule.schema.json#/$defs/patchScheduleRequest", body)
        _schedule_or_404(request, schedule_id)
        schedule = services.update_schedule(schedule_id, _model_fields(body))
        return Response({"schedule": schedule_to_wire(schedule)})

    @extend_schema(
        operation_id="deleteSchedule",
        summary="Delete a schedule (the runs it made stay)",
        responses={200: ref("deleteScheduleResponse", "schedule"), **_errors(404)},
    )
    def delete(self, request: Request, schedule_id: str) -> Response:
        schedule = _schedule_or_404(request, schedule_id)
        services.delete_schedule(schedule.id)
        return Response({"ok": True, "id": str(schedule.id)})


class ScheduleTriggerView(APIView):
    @extend_schema(
        operation_id="triggerSchedule",
        summary="Make a run from the schedule's template now",
        request=None,
        responses={201: ref("createRunResponse"), **_errors(404, 503)},
    )
    def post(self, request: Request, schedule_id: str) -> Response:
        _schedule_or_404(request, schedule_id)
        run = services.trigger_schedule(schedule_id)
        return Response(
            {"runId": str(run.id), "run": run_to_wire(run)},
            status=201,
            headers={"Location": f"/runs/{run.id}"},
        )


class SchedulePreviewView(APIView):
    @extend_schema(
        operation_id="previewSchedule",
        summary="The fire times of a cron expression, creating nothing",
        parameters=[
            OpenApiParameter("cron", {"type": "string", "maxLength": 200}, required=True),
            OpenApiParameter(
                "timezone", {"type": "string", "maxLength": 64}, description="IANA name, default UTC"
            ),
            OpenApiParameter("after", str, description="RFC 3339; default now"),
            OpenApiParameter(
                "count", {"type": "integer", "minimum": 1, "maximum": 100}, description="default 5"
            ),
        ],
        responses={200: ref("fireTimesResponse", "schedule"), **_errors(400)},
    )
    def get(self, request: Request) -> Response:
        cron = request.query_params.get("cron") or ""
        timezone_name = request.query_params.get("timezone") or "UTC"
        after: datetime = params.ts_param(request, "after") or timezone.now()
        count = params.int_param(request, "count", default=5, minimum=1, maximum=100)
        if not cron:
            raise BadParameter("cron", "required: a 5-field cron expression")
        if len(cron) > 200 or len(timezone_name) > 64:
            raise BadParameter("cron" if len(cron) > 200 else "timezone", "too long")
        try:
            check_cron(cron, timezone_name)
        except TimingError as exc:
            raise BadParameter(exc.field, exc.message) from None
        timing = Timing(cron=cron, interval_seconds=None, timezone=timezone_name, anchor=after)
        fire_times = []
        for tick in timing.after(after):
            fire_times.append(format_ts(tick))
            if len(fire_times) == count:
                break
        return Response({"fireTimes": fire_times})
