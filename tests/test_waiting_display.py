"""Why a pending run waits, as the admin and the `runs_*` commands show it."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from runs import services

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/runs/run/"
SPEC = {"task": "sleep", "input": {}}
BOOM = {"code": "task_error", "message": "boom"}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def runs(queue):
    """One run in backoff, one delayed, one handed over."""
    retrying, _ = services.create_run(
        mode="redis", spec=SPEC, retry={"maxAttempts": 2, "backoffSeconds": 600}
    )
    services.begin_attempt(retrying.pk)
    services.finish_attempt(retrying.pk, 1, "failed", error=BOOM)
    delayed, _ = services.create_run(mode="redis", spec=SPEC, run_at=timezone.now() + timedelta(hours=1))
    queued, _ = services.create_run(mode="redis", spec=SPEC)
    return {"backoff": str(retrying.pk), "runAt": str(delayed.pk), "none": str(queued.pk)}


def listed_ids(response) -> set[str]:
    assert response.status_code == 200, response.content[:500]
    return set(re.findall(r'href="/admin/runs/run/([0-9a-f-]{36})/change/', response.content.decode()))


def test_the_admin_lists_the_reason_and_filters_on_it(admin_client, runs) -> None:
    page = admin_client.get(CHANGELIST).content.decode()
    assert "waiting for" in page.lower() and "backoff until" in page

    assert listed_ids(admin_client.get(CHANGELIST, {"waiting_for": "backoff"})) == {runs["backoff"]}
    assert listed_ids(admin_client.get(CHANGELIST, {"waiting_for": "runAt"})) == {runs["runAt"]}
    assert listed_ids(admin_client.get(CHANGELIST, {"waiting_for": "any"})) == {
        runs["backoff"],
        runs["runAt"],
    }
    assert listed_ids(admin_client.get(CHANGELIST, {"waiting_for": "none"})) == {runs["none"]}


def test_the_admin_run_page_shows_the_reason_and_the_retry_policy(admin_client, runs) -> None:
    page = admin_client.get(f"{CHANGELIST}{runs['backoff']}/change/").content.decode()

    assert "backoff until" in page and "maxAttempts" in page


def test_runs_show_and_runs_list_say_what_a_run_waits_for(runs) -> None:
    shown = StringIO()
    call_command("runs_show", runs["backoff"], stdout=shown)
    assert re.search(r"^waiting for:  backoff until \S+ attempt 2$", shown.getvalue(), re.M)
    assert "retry:" in shown.getvalue()

    listed = StringIO()
    call_command("runs_list", stdout=listed)
    rows = {line.split()[0]: line.split()[2] for line in listed.getvalue().splitlines()[1:]}
    assert rows == {runs["backoff"]: "backoff", runs["runAt"]: "runAt", runs["none"]: "-"}

    as_json = StringIO()
    call_command("runs_list", "--json", stdout=as_json)
    reasons = {run["id"]: run["waitingFor"] for run in map(json.loads, as_json.getvalue().splitlines())}
    assert reasons[runs["backoff"]]["reason"] == "backoff" and reasons[runs["none"]] is None
