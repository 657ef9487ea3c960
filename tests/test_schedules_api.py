"""The /schedules API: create, list, read, change, delete, trigger, preview."""

from __future__ import annotations

import pytest

from runs.models import Run
from schedules.models import Schedule
from tests.conftest import assert_wire

pytestmark = pytest.mark.django_db

SPEC = {"task": "sleep", "input": {"seconds": 1}}
BODY = {"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin", "mode": "redis", "spec": SPEC}


def create(api, **fields):
    """A schedule from BODY with `fields` changed (None: left out)."""
    body = {key: value for key, value in {**BODY, **fields}.items() if value is not None}
    response = api.post("/schedules", body, **{"X-Actor-ID": "alice"})
    assert response.status_code == 201, response.content
    return response.json()["schedule"]


def test_creating_a_schedule_answers_it_with_its_next_five_fire_times(api):
    response = api.post("/schedules", BODY, **{"X-Actor-ID": "alice"})

    assert response.status_code == 201
    assert_wire("schedule.schema.json#/$defs/scheduleResponse", response.json())
    schedule = response.json()["schedule"]
    assert response["Location"] == f"/schedules/{schedule['id']}"
    assert schedule["owner"] == "alice"
    assert (schedule["overlap"], schedule["catchup"], schedule["paused"]) == ("skip", "latest", False)
    assert len(schedule["nextFireTimes"]) == 5
    assert all(t.endswith(("00:30:00.000000Z", "01:30:00.000000Z")) for t in schedule["nextFireTimes"])
    assert schedule["lastFiredAt"] is None and schedule["intervalSeconds"] is None


def test_an_interval_schedule_defaults_to_utc(api):
    schedule = create(api, cron=None, intervalSeconds=90, timezone=None)

    assert schedule["intervalSeconds"] == 90 and schedule["cron"] is None and schedule["timezone"] == "UTC"


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"cron": "@daily"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"intervalSeconds": 60}, "cron"),
        ({"intervalSeconds": 0, "cron": None}, "intervalSeconds"),
        ({"mode": "k8s", "spec": {"command": ["true"]}}, "spec.image"),
        ({"spec": {"task": "sleep", "bogus": 1}}, "spec.bogus"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"startAt": "soon"}, "startAt"),
        ({"startAt": "2026-12-02T00:00:00Z", "endAt": "2026-12-01T00:00:00Z"}, "endAt"),
        ({"name": " "}, "name"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(api, fields, bad):
    body = {key: value for key, value in {**BODY, **fields}.items() if value is not None}

    response = api.post("/schedules", body)

    assert response.status_code == 422, response.content
    assert bad in response.json()["details"]["fields"], response.json()
    assert not Schedule.objects.exists()


def test_an_interval_schedule_near_the_last_date_has_fewer_fire_times_not_an_error(api):
    schedule = create(api, cron=None, intervalSeconds=86400, timezone=None, startAt="9999-12-29T00:00:00Z")

    assert schedule["nextFireTimes"] == [f"9999-12-{day}T00:00:00.000000Z" for day in (29, 30, 31)]


def test_neither_cron_nor_interval_is_a_422(api):
    body = {key: value for key, value in BODY.items() if key != "cron"}

    response = api.post("/schedules", body)

    assert response.status_code == 422 and "cron" in response.json()["details"]["fields"]


def test_list_filters_by_owner_and_paused_and_pages(api):
    first = create(api, name="a")
    second = create(api, name="b", paused=True)
    api.post("/schedules", {**BODY, "name": "c"}, **{"X-Actor-ID": "bob"})

    assert [s["id"] for s in api.get("/schedules?owner=alice").json()["schedules"]] == [
        second["id"],
        first["id"],
    ]
    assert [s["id"] for s in api.get("/schedules?paused=true").json()["schedules"]] == [second["id"]]
    page = api.get("/schedules?limit=2").json()
    assert_wire("schedule.schema.json#/$defs/scheduleListResponse", page)
    rest = api.get(f"/schedules?limit=2&cursor={page['nextCursor']}").json()
    assert [s["name"] for s in page["schedules"] + rest["schedules"]] == ["c", "b", "a"]
    assert rest["nextCursor"] is None
    assert api.get("/schedules?paused=maybe").status_code == 400


def test_patch_changes_fields_and_a_paused_schedule_shows_no_fire_times(api):
    schedule = create(api)

    response = api.patch(f"/schedules/{schedule['id']}", {"paused": True, "overlap": "allow"})

    assert response.status_code == 200
    changed = response.json()["schedule"]
    assert (changed["paused"], changed["overlap"], changed["nextFireTimes"]) == (True, "allow", [])
    resumed = api.patch(f"/schedules/{schedule['id']}", {"paused": False, "intervalSeconds": 60}).json()
    assert resumed["schedule"]["cron"] is None and len(resumed["schedule"]["nextFireTimes"]) == 5


def test_patch_with_a_bad_cron_is_a_422_and_changes_nothing(api):
    schedule = create(api)

    response = api.patch(f"/schedules/{schedule['id']}", {"cron": "nope"})

    assert response.status_code == 422 and "cron" in response.json()["details"]["fields"]
    assert api.get(f"/schedules/{schedule['id']}").json()["schedule"]["cron"] == "30 2 * * *"


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_an_unknown_schedule_is_a_404(api, method):
    for schedule_id in ("6f1c1f5e-0000-4000-8000-000000000001", "not-a-uuid"):
        args = ({"paused": True},) if method == "patch" else ()
        response = getattr(api, method)(f"/schedules/{schedule_id}", *args)
        assert response.status_code == 404
        assert response.json()["code"] == "schedule_not_found"


def test_delete_removes_the_schedule_and_keeps_its_runs(api):
    schedule = create(api)
    run_id = api.post(f"/schedules/{schedule['id']}/trigger").json()["runId"]

    response = api.delete(f"/schedules/{schedule['id']}")

    assert response.status_code == 200 and response.json() == {"ok": True, "id": schedule["id"]}
    assert api.get(f"/schedules/{schedule['id']}").status_code == 404
    assert str(Run.objects.get(pk=run_id).schedule_id) == schedule["id"]


def test_trigger_makes_a_run_now_from_the_template(api):
    schedule = create(api, metadata={"team": "ml"})

    response = api.post(f"/schedules/{schedule['id']}/trigger")

    assert response.status_code == 201
    assert_wire("run.schema.json#/$defs/createRunResponse", response.json())
    run = response.json()["run"]
    assert (run["scheduleId"], run["spec"], run["metadata"], run["owner"]) == (
        schedule["id"],
        SPEC,
        {"team": "ml"},
        "alice",
    )
    assert run["scheduledFor"] is not None
    listed = api.get(f"/runs?scheduleId={schedule['id']}").json()["runs"]
    assert [r["id"] for r in listed] == [run["id"]]
    assert api.get(f"/schedules/{schedule['id']}").json()["schedule"]["lastRunId"] == run["id"]


def test_preview_lists_fire_times_across_a_dst_change(api):
    response = api.get(
        "/schedules/preview?cron=30+2+*+*+*&timezone=Europe/Berlin&after=2026-03-27T12:00:00Z&count=3"
    )

    assert response.status_code == 200
    assert_wire("schedule.schema.json#/$defs/fireTimesResponse", response.json())
    assert response.json()["fireTimes"] == [
        "2026-03-28T01:30:00.000000Z",
        "2026-03-29T01:00:00.000000Z",
        "2026-03-30T00:30:00.000000Z",
    ]
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("cron=nope", "cron"),
        ("", "cron"),
        ("cron=*+*+*+*+*&timezone=Nowhere", "timezone"),
        ("cron=*+*+*+*+*&count=101", "count"),
        ("cron=*+*+*+*+*&after=yesterday", "after"),
    ],
)
def test_a_bad_preview_parameter_is_a_400_naming_it(api, query, parameter):
    response = api.get(f"/schedules/preview?{query}")

    assert response.status_code == 400
    assert response.json()["details"]["parameter"] == parameter


def test_every_schedule_endpoint_is_in_the_openapi_document(api):
    paths = api.get("/openapi.json").json()["paths"]

    assert {"get", "post"} <= set(paths["/schedules"])
    assert {"get", "patch", "delete"} <= set(paths["/schedules/{schedule_id}"])
    assert "post" in paths["/schedules/{schedule_id}/trigger"]
    assert "get" in paths["/schedules/preview"]


def test_a_schedules_runs_carry_its_admission_fields_and_a_null_removes_one(api):
    from datetime import timedelta

    from django.utils import timezone

    from schedules import services

    retry = {"maxAttempts": 3, "backoffSeconds": 2}
    concurrency = {"key": "customer-7", "limit": 2}
    schedule = create(api, retry=retry, concurrency=concurrency)
    assert (schedule["retry"], schedule["concurrency"], schedule["dependsOn"]) == (retry, concurrency, None)

    services.fire_due(timezone.now() + timedelta(days=2))  # its ticks fall due
    run = Run.objects.filter(schedule_id=schedule["id"]).get()
    wire = api.get(f"/runs/{run.id}").json()["run"]
    assert wire["retry"]["maxAttempts"] == 3 and wire["retry"]["backoffSeconds"] == 2
    assert wire["concurrency"] == concurrency

    changed = api.patch(f"/schedules/{schedule['id']}", {"retry": None}).json()["schedule"]
    assert (changed["retry"], changed["concurrency"]) == (None, concurrency)
    assert Schedule.objects.get(pk=schedule["id"]).admission == {"concurrency": concurrency}


def test_a_template_that_depends_on_an_unknown_run_is_a_422(api):
    response = api.post("/schedules", {**BODY, "dependsOn": ["00000000-0000-0000-0000-000000000001"]})

    assert response.status_code == 422
    assert "dependsOn" in response.json()["details"]["fields"]
