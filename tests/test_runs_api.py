"""A REST consumer creates, finds, lists, drives and cancels runs."""

from __future__ import annotations

import pytest

from runs.models import Run
from tests.conftest import assert_wire

pytestmark = pytest.mark.django_db


def test_creating_a_redis_run_answers_201_with_location_and_a_pending_run(api):
    response = api.post(
        "/runs?mode=redis", {"spec": {"task": "sleep", "input": {"seconds": 0}}, "metadata": {"team": "a"}}
    )

    assert response.status_code == 201
    body = response.json()
    assert_wire("run.schema.json#/$defs/createRunResponse", body)
    run = body["run"]
    assert body["runId"] == run["id"]
    assert response["Location"] == f"/runs/{run['id']}"
    assert run["status"] == "pending"
    assert run["mode"] == "redis"
    assert run["metadata"] == {"team": "a"}
    assert run["attempt"] == 1 and run["checkpointCount"] == 0
    assert run["startedAt"] is None and run["finishedAt"] is None
    assert Run.objects.filter(pk=run["id"]).exists()


def test_a_k8s_run_needs_an_image(api):
    response = api.post("/runs?mode=k8s", {"spec": {"command": ["echo"]}})

    assert response.status_code == 422
    assert "spec.image" in response.json()["details"]["fields"]
    assert Run.objects.count() == 0


def test_a_run_without_a_body_is_recorded_for_an_external_worker(api):
    response = api.client.generic("POST", "/runs?mode=redis")

    assert response.status_code == 201
    assert response.json()["run"]["spec"] is None


def test_owner_comes_from_the_actor_header_or_the_query(api):
    by_header = api.post("/runs?mode=redis", {}, **{"X-Actor-ID": "alice"}).json()["run"]
    by_query = api.post("/runs?mode=redis&owner=bob", {}).json()["run"]

    assert by_header["owner"] == "alice"
    assert by_query["owner"] == "bob"


def test_plan_mode_is_the_default_and_creates_nothing(api):
    response = api.post("/runs", {"spec": {"task": "sleep", "input": {}}})

    assert response.status_code == 200
    body = response.json()
    assert_wire("run.schema.json#/$defs/planResponse", body)
    assert body["mode"] == "plan"
    assert body["plan"]["target"] == "redis"
    assert body["plan"]["run"]["spec"] == {"task": "sleep", "input": {}}
    assert body["plan"]["steps"]
    assert Run.objects.count() == 0


def test_plan_takes_its_target_from_the_query(api):
    body = api.post("/runs?mode=plan&target=k8s", {"spec": {"image": "busybox"}}).json()

    assert body["plan"]["target"] == "k8s"
    assert body["plan"]["run"]["mode"] == "k8s"


def test_get_returns_the_run_and_404_for_unknown_ones(api, make_run):
    run = make_run()

    response = api.get(f"/runs/{run['id']}")
    assert response.status_code == 200
    assert_wire("run.schema.json#/$defs/runResponse", response.json())
    assert response.json()["run"]["id"] == run["id"]

    missing = api.get("/runs/6f1c1f4e-8d8a-4d8c-9a53-3b1b0f7c2a11")
    assert missing.status_code == 404
    assert missing.json()["error"] == "run not found"
    assert api.get("/runs/not-a-uuid").status_code == 404


def test_list_is_newest_first_and_pages_with_a_cursor_without_gaps(api, make_run):
    created = [make_run()["id"] for _ in range(7)]

    seen: list[str] = []
    cursor = ""
    while True:
        body = api.get(f"/runs?limit=3&cursor={cursor}").json()
        assert_wire("run.schema.json#/$defs/runListResponse", body)
        seen += [run["id"] for run in body["runs"]]
        if body["nextCursor"] is None:
            break
        cursor = body["nextCursor"]

    assert seen == created[::-1]


def test_list_filters_by_status_mode_owner_and_creation_time(api, make_run):
    first = make_run()
    k8s = make_run(mode="k8s", spec={"image": "busybox"})
    canceled = make_run()
    api.delete(f"/runs/{canceled['id']}")

    def ids(query: str) -> set[str]:
        response = api.get(f"/runs?{query}")
        assert response.status_code == 200, response.content
        return {run["id"] for run in response.json()["runs"]}

    assert ids("status=canceled") == {canceled["id"]}
    assert ids("status=pending,canceled") == {first["id"], k8s["id"], canceled["id"]}
    assert ids("mode=k8s") == {k8s["id"]}
    assert ids(f"createdAfter={first['createdAt']}") == {k8s["id"], canceled["id"]}
    assert ids(f"createdBefore={k8s['createdAt']}") == {first["id"]}


def test_list_owner_filter(api):
    mine = api.post("/runs?mode=redis", {}, **{"X-Actor-ID": "carol"}).json()["run"]
    api.post("/runs?mode=redis", {})

    body = api.get("/runs?owner=carol").json()

    assert [run["id"] for run in body["runs"]] == [mine["id"]]


def test_cancel_marks_the_run_canceled_and_a_second_cancel_is_409(api, make_run):
    run = make_run()

    response = api.delete(f"/runs/{run['id']}")
    assert response.status_code == 200
    body = response.json()
    assert_wire("run.schema.json#/$defs/cancelResponse", body)
    assert body["ok"] is True and body["status"] == "canceled"
    assert body["run"]["finishedAt"] is not None

    again = api.delete(f"/runs/{run['id']}")
    assert again.status_code == 409
    assert again.json()["error"] == "invalid status transition"
    assert again.json()["from"] == "canceled" and again.json()["to"] == "canceled"


def test_workers_drive_the_state_machine_with_patch(api, make_run):
    run = make_run()
    url = f"/runs/{run['id']}"

    running = api.patch(url, {"status": "running"}).json()["run"]
    assert running["status"] == "running" and running["startedAt"] is not None
    assert api.patch(url, {"status": "running"}).status_code == 200

    failed = api.patch(url, {"status": "failed", "error": {"code": "boom", "message": "it broke"}})
    assert failed.status_code == 200
    assert failed.json()["run"]["error"] == {"code": "boom", "message": "it broke"}
    assert failed.json()["run"]["finishedAt"] is not None

    final = api.patch(url, {"status": "completed"})
    assert final.status_code == 409
    assert final.json()["from"] == "failed" and final.json()["to"] == "completed"


def test_a_pending_run_cannot_jump_to_completed(api, make_run):
    run = make_run()

    response = api.patch(f"/runs/{run['id']}", {"status": "completed"})

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert Run.objects.get(pk=run["id"]).status == "pending"


def test_patch_cannot_set_canceled_or_unknown_statuses(api, make_run):
    run = make_run()

    response = api.patch(f"/runs/{run['id']}", {"status": "canceled"})

    assert response.status_code == 422
    assert "status" in response.json()["details"]["fields"]


def test_idempotency_key_returns_the_first_run_and_refuses_another_body(api):
    body = {"spec": {"task": "sleep", "input": {"seconds": 1}}}
    first = api.post("/runs?mode=redis", body, **{"Idempotency-Key": "abc-1"})
    again = api.post("/runs?mode=redis", body, **{"Idempotency-Key": "abc-1"})
    other = api.post(
        "/runs?mode=redis",
        {"spec": {"task": "sleep", "input": {"seconds": 2}}},
        **{"Idempotency-Key": "abc-1"},
    )

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["runId"] == first.json()["runId"]
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_conflict"
    assert Run.objects.count() == 1


def test_idempotency_keys_are_scoped_to_their_owner(api):
    body = {"spec": {"task": "sleep", "input": {}}}
    alice = api.post("/runs?mode=redis", body, **{"Idempotency-Key": "k", "X-Actor-ID": "alice"})
    bob = api.post("/runs?mode=redis", body, **{"Idempotency-Key": "k", "X-Actor-ID": "bob"})

    assert alice.status_code == bob.status_code == 201
    assert alice.json()["runId"] != bob.json()["runId"]
