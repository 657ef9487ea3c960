"""The operator console in the admin, server side: the run list's columns and
search, confirmation and History for cancel and retry, the readable error,
the dashboard (its browser side is in test_console_browser.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from runs import services
from runs.models import Run
from runs.redis import fleet
from tests.factories import new_run
from tests.redis_workers import drop_keys, unique_prefix
from tests.servers import ROOT, process_env
from tests.test_admin import CHANGELIST, fast_password_hashing, listed_ids, run_page  # noqa: F401

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/runs/dashboard/"


def test_the_list_shows_short_ids_task_attempt_and_a_progress_bar(admin_client):
    stepping = new_run()
    services.set_run_status(stepping.id, "running")
    services.append_checkpoints(stepping.id, [{"type": "progress", "data": {"step": 3, "of": 4}}])
    fraction, _ = services.create_run(mode="k8s", spec={"image": "busybox:1.36"})
    services.append_checkpoints(fraction.id, [{"type": "p", "data": {"progress": 0.5}}, {"type": "log"}])
    quiet = new_run()
    Run.objects.filter(pk=quiet.pk).update(attempt=2)

    page = admin_client.get(CHANGELIST).content.decode()

    assert f"<span class='run-id' title='{stepping.id}'>{str(stepping.id)[:8]}</span>" in page
    assert '<td class="field-task_or_image">sleep</td>' in page
    assert '<td class="field-task_or_image">busybox:1.36</td>' in page
    assert '<td class="field-attempt">2</td>' in page
    bars = re.findall(r"aria-valuenow='(\d+)'", page)
    assert bars == ["75"]  # the k8s run's latest checkpoint states no progress
    assert "runs/admin-list.js" in page


def test_a_waiting_run_says_what_it_waits_for_under_its_status(admin_client):
    from datetime import timedelta

    from django.utils import timezone

    delayed, _ = services.create_run(
        mode="redis", spec={"task": "sleep"}, run_at=timezone.now() + timedelta(hours=1)
    )
    new_run()

    page = admin_client.get(CHANGELIST).content.decode()

    assert re.findall(r"<small class='run-waiting' title='runAt until [^']+'>(\w+)</small>", page) == [
        "runAt"
    ]
    assert str(delayed.id)[:8] in page


def test_id_prefix_and_labels_are_searched(admin_client):
    team = new_run(metadata={"labels": {"team": "ml"}})
    listed = new_run(metadata={"labels": ["nightly"]})
    new_run(metadata={"labels": {"team": "web"}})
    prefix = str(team.id)[:6]

    assert str(team.id) in listed_ids(admin_client.get(CHANGELIST, {"q": prefix}))
    assert listed_ids(admin_client.get(CHANGELIST, {"q": str(team.id)[:13]})) == {str(team.id)}
    assert listed_ids(admin_client.get(CHANGELIST, {"q": "team=ml"})) == {str(team.id)}
    assert listed_ids(admin_client.get(CHANGELIST, {"q": "nightly"})) == {str(listed.id)}


SQLITE_SEARCH = """
import json
from django.contrib import admin
from django.test import RequestFactory
from runs import services
from runs.models import Run
a = services.create_run(mode="redis", spec={"task": "sleep"}, metadata={"labels": {"team": "ml"}})[0]
b = services.create_run(mode="redis", spec={"task": "sleep"}, metadata={"labels": ["nightly", "gpu"]})[0]
c = services.create_run(mode="redis", spec={"task": "sleep"}, metadata={"labels": {"team": "web"}})[0]
model_admin = admin.site._registry[Run]
names = {str(a.id): "a", str(b.id): "b", str(c.id): "c"}
terms = {"team=ml": "team=ml", "nightly": "nightly", "gpu": "gpu", "team": "team", "nothing": "nothing",
         "a's id prefix": str(a.id)[:13], "b's id prefix": str(b.id)[:13]}
found = {}
for label, term in terms.items():
    qs, _ = model_admin.get_search_results(RequestFactory().get("/"), Run.objects.all(), term)
    found[label] = sorted(names[str(pk)] for pk in qs.values_list("pk", flat=True))
print(json.dumps(found))
"""


def test_label_and_id_prefix_search_work_on_the_embedded_sqlite_database(tmp_path):
    env = process_env(DATABASE_URL=f"sqlite:///{tmp_path / 'search.sqlite3'}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SQLITE_SEARCH],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip

    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "team=ml": ["a"],
        "nightly": ["b"],
        "gpu": ["b"],
        "team": ["a", "c"],
        "nothing": [],
        "a's id prefix": ["a"],
        "b's id prefix": ["b"],
    }


def test_cancel_from_the_list_asks_first_then_cancels_and_records_history(admin_client, admin_user):
    run = new_run()
    selected = {"action": "cancel_selected", "_selected_action": [str(run.pk)], "index": "0"}

    asked = admin_client.post(CHANGELIST, selected)

    assert asked.status_code == 200
    assert "Yes, cancel this run" in asked.content.decode()
    assert Run.objects.get(pk=run.pk).status == "pending"
    done = admin_client.post(CHANGELIST, {**selected, "confirmed": "yes"}, follow=True)
    assert "Canceled 1 run(s)." in done.content.decode()
    assert Run.objects.get(pk=run.pk).status == "canceled"
    [entry] = LogEntry.objects.filter(object_id=str(run.pk))
    assert (entry.user_id, entry.get_change_message()) == (admin_user.pk, "Canceled from the admin.")
    history = admin_client.get(reverse("admin:runs_run_history", args=[run.pk])).content.decode()
    assert "Canceled from the admin." in history


def test_the_run_pages_buttons_lead_to_a_confirmation_and_retry_is_recorded_on_both_runs(admin_client):
    run = new_run()

    page = admin_client.get(run_page(run)).content.decode()
    asked = admin_client.get(reverse("admin:runs_run_retry", args=[run.pk])).content.decode()
    admin_client.post(reverse("admin:runs_run_retry", args=[run.pk]), {"confirmed": "yes"})

    assert f'href="{reverse("admin:runs_run_cancel", args=[run.pk])}"' in page
    assert "Yes, retry this run" in asked and 'name="confirmed" value="yes"' in asked
    retry = Run.objects.get(retry_of=run)
    assert LogEntry.objects.get(object_id=str(run.pk)).get_change_message() == (
        f"Retried from the admin as run {retry.id}."
    )
    assert LogEntry.objects.get(object_id=str(retry.pk)).get_change_message() == (
        f"Created from the admin as a retry of run {run.pk}."
    )


def test_a_failed_commands_error_reads_as_words_with_its_stderr_tail(admin_client):
    run = new_run()
    services.set_run_status(run.id, "running")
    error = {"code": "command_failed", "message": "command exited with 2", "exitCode": 2,
             "stderrTail": "Traceback...\nValueError: <bad> input\n"}  # fmt: skip
    services.set_run_status(run.id, "failed", error=error)

    page = admin_client.get(run_page(run)).content.decode()

    assert "<strong>command_failed</strong> command exited with 2" in page
    assert "<pre class='run-json run-error-tail'>Traceback...\nValueError: &lt;bad&gt; input\n</pre>" in page
    assert "&quot;exitCode&quot;: 2" in page or '"exitCode": 2' in page


def test_the_checkpoint_list_is_newest_first_across_runs(admin_client):
    first, second = new_run(), new_run()
    services.append_checkpoints(first.id, [{"type": "type-appended-first"}])
    services.append_checkpoints(second.id, [{"type": "type-appended-second"}])

    page = admin_client.get("/admin/runs/checkpoint/").content.decode()

    assert page.index("type-appended-second") < page.index("type-appended-first")


@pytest.fixture
def prefix(settings):
    value = settings.REDIS_KEY_PREFIX = unique_prefix()
    yield value
    drop_keys(value)


def test_the_dashboard_is_linked_from_the_admin_index_and_shows_the_fleet_queue_and_day(
    admin_client, prefix, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from runs.redis.queue import run_queue

    queue = run_queue()
    fleet.publish(queue, name="host-a-1-abc", host="host-a", pid=1, slots=4, runs=["r" * 36],
                  started_at=timezone.now())  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):  # dispatch to the queue happens on commit
        waiting = new_run()
    failed = new_run()
    services.set_run_status(failed.id, "running")
    services.set_run_status(failed.id, "failed", error={"code": "x", "message": "y"})

    index = admin_client.get("/admin/").content.decode()
    page = admin_client.get(DASHBOARD).content.decode()
    fragment = admin_client.get(DASHBOARD, {"fragment": "1"}).content.decode()

    assert f'href="{DASHBOARD}"' in index
    assert 'data-status-count="pending">1<' in page and 'data-status-count="failed">1<' in page
    assert 'data-queue="depth">1<' in page and str(waiting.id) not in page
    assert 'data-worker="host-a-1-abc" data-worker-state="alive"' in page
    assert 'data-day="failed">1<' in page
    assert page.count('<svg class="dash-chart') == 2
    assert "runs/admin-dashboard.js" in page
    # Nothing from another origin: every script, style and image is the app's own.
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', page)
    assert fragment.lstrip().startswith('<p class="dash-updated">') and "<html" not in fragment


def test_the_dashboard_needs_the_view_permission(client, django_user_model):
    staff = django_user_model.objects.create_user("nobody", password="x", is_staff=True)
    client.force_login(staff)

    assert client.get(DASHBOARD).status_code == 403
    client.logout()
    assert client.get(DASHBOARD).status_code == 302  # to the login page


def test_the_dashboard_shows_waiting_reasons_schedules_due_webhook_backlog_and_kubernetes_jobs(
    admin_client, fake_cluster
):
    from datetime import timedelta

    from django.utils import timezone

    from schedules import services as schedule_services
    from webhooks.models import Delivery, Webhook

    services.create_run(mode="redis", spec={"task": "sleep"}, run_at=timezone.now() + timedelta(hours=1))
    job_run, _ = services.create_run(mode="k8s", spec={"image": "busybox:1.36"})
    schedule_services.create_schedule(
        name="nightly report", interval_seconds=3600, mode="redis", spec={"task": "sleep"}
    )
    hook = Webhook.objects.create(url="https://receiver.example/hook", events=["run.completed"])
    Delivery.objects.create(webhook=hook, journal_id=1, event_type="run.completed", run_id=job_run.id,
                            payload="{}", next_attempt_at=timezone.now())  # fmt: skip

    page = admin_client.get(DASHBOARD).content.decode()

    assert 'data-waiting="runAt">1<' in page
    assert 'id="dash-schedules"' in page and "nightly report" in page
    assert 'data-panel-row="due now">1<' in page
    assert 'id="dash-jobs"' in page and 'data-jobs="active">0<' in page
    fake_cluster.set_job_status("default", f"run-{job_run.id}", {"active": 1})  # the cluster starts its pod
    page = admin_client.get(DASHBOARD).content.decode()
    assert 'data-jobs="active">1<' in page
