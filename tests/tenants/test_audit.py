"""The audit trail: an entry per change, in the change's transaction, for every kind of actor."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from audit.models import AppendOnly, AuditEvent
from runs import services, tokens
from tenants import scopes
from tests.conftest import assert_wire

pytestmark = pytest.mark.django_db

SPEC = {"spec": {"task": "sleep", "input": {}}}


def entries(**filters: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_api_changes_name_the_key_or_master_with_request_id_and_address(api, master, tenant_key):
    key = tenant_key("acme", [scopes.RUNS_WRITE])
    prefix = key["Authorization"].split()[1].split(".")[0]

    created = api.post("/runs?mode=redis", SPEC, **key, **{"X-Request-ID": "req-create-1"})
    run_id = created.json()["runId"]
    api.delete(f"/runs/{run_id}", **master, **{"X-Request-ID": "req-cancel-1"})

    create, cancel = entries(action="run.create")[-1], entries(action="run.cancel")[-1]
    assert (create.actor, create.target_type, create.target_id) == (f"key:{prefix}", "run", run_id)
    assert (create.request_id, create.ip, create.owner) == ("req-create-1", "127.0.0.1", "acme")
    assert create.details == {"status": "pending", "mode": "redis"}
    assert (cancel.actor, cancel.target_id, cancel.request_id) == ("master", run_id, "req-cancel-1")


def test_a_refused_change_writes_no_entry(api, master):
    run_id = api.post("/runs?mode=redis", SPEC, **master).json()["runId"]
    api.delete(f"/runs/{run_id}", **master)

    again = api.delete(f"/runs/{run_id}", **master)

    assert again.status_code == 409
    assert len(entries(action="run.cancel", target_id=run_id)) == 1


def test_a_worker_token_reports_as_its_run(api, master):
    run_id = api.post("/runs?mode=redis", SPEC, **master).json()["runId"]
    token, _ = tokens.mint(tokens.WORKER, run_id)

    api.patch(f"/runs/{run_id}", {"status": "running"}, Authorization=f"Bearer {token}")

    status = entries(action="run.status", target_id=run_id)[-1]
    assert (status.actor, status.details) == (f"worker:{run_id}", {"status": "running"})


def test_a_command_is_the_actor_of_what_it_changes(db):
    run, _ = services.create_run(mode="redis", spec={"task": "sleep"})

    call_command("runs_cancel", str(run.id), stdout=io.StringIO())
    call_command(
        "apikeys_create", "--name", "n", "--owner", "acme", "--scope", "runs:read", stdout=io.StringIO(),
        stderr=io.StringIO(),
    )  # fmt: skip

    assert entries(action="run.cancel")[-1].actor == "command:runs_cancel"
    assert entries(action="apikey.create")[-1].actor == "command:apikeys_create"
    # Outside any request or command (a shell, a library call): "system".
    assert entries(action="run.create")[-1].actor == "system"


def test_the_admin_user_is_the_actor_and_the_run_history_shows_cancel_and_retry(admin_client, admin_user):
    run, _ = services.create_run(mode="redis", spec={"task": "sleep"})
    changelist = reverse("admin:runs_run_changelist")

    admin_client.post(
        changelist, {"action": "cancel_selected", "_selected_action": [str(run.pk)], "confirmed": "yes"}
    )
    admin_client.post(
        changelist, {"action": "retry_selected", "_selected_action": [str(run.pk)], "confirmed": "yes"}
    )

    cancel = entries(action="run.cancel", target_id=str(run.pk))
    retry = entries(action="run.retry")
    assert [e.actor for e in cancel] == [f"admin:{admin_user.username}"]
    assert [(e.actor, e.details["retryOf"]) for e in retry] == [(f"admin:{admin_user.username}", str(run.pk))]
    history = admin_client.get(reverse("admin:runs_run_history", args=[run.pk])).content.decode()
    assert "Canceled from the admin." in history and "Retried from the admin as run" in history
    assert LogEntry.objects.filter(object_id=str(run.pk)).count() == 2


def test_schedule_webhook_and_key_changes_are_recorded(api, master, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    schedule = api.post(
        "/schedules", {"name": "n", "cron": "0 3 * * *", "mode": "redis", "spec": {"task": "sleep"}}, **master
    ).json()["schedule"]
    api.patch(f"/schedules/{schedule['id']}", {"paused": True}, **master)
    api.post(f"/schedules/{schedule['id']}/trigger", **master)
    api.delete(f"/schedules/{schedule['id']}", **master)
    hook = api.post("/webhooks", {"url": "http://127.0.0.1:9/h"}, **master).json()["webhook"]
    api.patch(f"/webhooks/{hook['id']}", {"description": "d"}, **master)
    api.post(f"/webhooks/{hook['id']}/rotate-secret", **master)
    api.delete(f"/webhooks/{hook['id']}", **master)
    key = api.post("/api-keys", {"name": "k", "owner": "acme", "scopes": ["runs:read"]}, **master).json()
    api.delete(f"/api-keys/{key['apiKey']['id']}", **master)

    actions = [e.action for e in entries(actor="master")]
    assert actions == [
        "schedule.create", "schedule.pause", "schedule.trigger", "run.create", "schedule.delete",
        "webhook.create", "webhook.update", "webhook.rotate_secret", "webhook.delete",
        "apikey.create", "apikey.revoke",
    ]  # fmt: skip
    revoke = entries(action="apikey.revoke")[-1]
    assert revoke.details == {"prefix": key["apiKey"]["prefix"]}
    assert key["key"] not in str([e.details for e in entries()])


def test_get_audit_filters_pages_and_keeps_tenants_apart(api, master, tenant_key):
    acme = tenant_key("acme", [scopes.RUNS_WRITE, scopes.AUDIT_READ])
    globex = tenant_key("globex", [scopes.RUNS_WRITE])
    mine = [api.post("/runs?mode=redis", SPEC, **acme).json()["runId"] for _ in range(3)]
    theirs = api.post("/runs?mode=redis", SPEC, **globex).json()["runId"]
    api.delete(f"/runs/{mine[0]}", **acme)

    first = api.get("/audit?limit=2&action=run.create", **acme).json()
    rest = api.get(f"/audit?limit=2&action=run.create&cursor={first['nextCursor']}", **acme).json()
    assert_wire("tenant.schema.json#/$defs/auditListResponse", first)
    assert [e["targetId"] for e in first["entries"] + rest["entries"]] == mine[::-1]
    assert rest["nextCursor"] is None
    assert theirs not in str(api.get("/audit", **acme).json())
    assert [e["action"] for e in api.get(f"/audit?targetId={mine[0]}", **acme).json()["entries"]] == [
        "run.cancel",
        "run.create",
    ]
    # The master sees everyone's; time bounds and actor filter.
    everyone = api.get(f"/audit?targetId={theirs}", **master).json()["entries"]
    assert [e["actor"] for e in everyone] == [entries(target_id=theirs)[0].actor]
    later = (timezone.now() + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert api.get(f"/audit?after={later}", **master).json()["entries"] == []
    assert len(api.get(f"/audit?before={later}&actor=master", **master).json()["entries"]) == 0
    assert api.get("/audit?cursor=nonsense", **master).status_code == 400
    assert api.get("/audit", **globex).json()["code"] == "missing_scope"


def test_entries_are_append_only_and_pruned_by_age(db):
    services.create_run(mode="redis", spec={"task": "sleep"})
    old = entries()[-1]
    with pytest.raises(AppendOnly):
        old.save()
    with pytest.raises(AppendOnly):
        old.delete()
    AuditEvent.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=100))
    services.create_run(mode="redis", spec={"task": "sleep"})

    out = io.StringIO()
    call_command("audit_prune", "--older-than", "90d", "--dry-run", stdout=out)
    assert "would delete 1 " in out.getvalue() and AuditEvent.objects.filter(pk=old.pk).exists()
    call_command("audit_prune", "--older-than", "90d", stdout=io.StringIO())

    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    prune = entries(action="audit.prune")[-1]
    assert (prune.actor, prune.details["entries"]) == ("command:audit_prune", 1)


def test_the_admin_shows_the_trail_read_only(admin_client, db):
    services.create_run(mode="redis", spec={"task": "sleep"})
    entry = entries()[-1]

    listed = admin_client.get(reverse("admin:audit_auditevent_changelist"))
    page = admin_client.get(reverse("admin:audit_auditevent_change", args=[entry.pk]))

    assert listed.status_code == 200 and "run.create" in listed.content.decode()
    assert page.status_code == 200
    assert admin_client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert admin_client.post(reverse("admin:audit_auditevent_delete", args=[entry.pk])).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_redis_worker_is_the_actor_of_the_status_changes_it_makes(api, tmp_path):
    from django.test import override_settings

    from tests.redis_workers import WorkerProcess, drop_keys, unique_prefix
    from tests.waiting import wait_for

    prefix = unique_prefix()
    with override_settings(REDIS_KEY_PREFIX=prefix):
        worker = WorkerProcess(tmp_path, prefix, concurrency=1).start()
        try:
            run_id = api.post("/runs?mode=redis", SPEC).json()["runId"]
            wait_for(lambda: api.get(f"/runs/{run_id}").json()["run"]["status"] == "completed", timeout=20)
        finally:
            worker.stop()
            drop_keys(prefix)

    changes = [(e.actor, e.details["status"]) for e in entries(action="run.status", target_id=run_id)]
    assert changes == [(f"worker:{run_id}", "running"), (f"worker:{run_id}", "completed")]


@pytest.mark.django_db(transaction=True)
def test_a_commands_threads_act_as_the_command():
    import threading

    from audit import context

    run, _ = services.create_run(mode="redis", spec={"task": "sleep"})
    with context.process_actor("command:k8s_reconcile"):
        thread = threading.Thread(target=services.cancel_run, args=(run.id,))
        thread.start()
        thread.join()

    assert entries(action="run.cancel")[-1].actor == "command:k8s_reconcile"
    assert context.current() == ("system", "")


def test_webhook_changes_in_the_admin_name_the_user(admin_client, admin_user, settings):
    from webhooks.models import Webhook

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    add = reverse("admin:webhooks_webhook_add")
    admin_client.post(add, {"url": "http://127.0.0.1:9/h", "events": ["run.completed"], "active": "on"})
    webhook = Webhook.objects.get()
    admin_client.post(reverse("admin:webhooks_webhook_delete", args=[webhook.pk]), {"post": "yes"})

    assert not Webhook.objects.exists()
    actions = [(e.actor, e.action) for e in entries(target_id=str(webhook.pk))]
    actor = f"admin:{admin_user.username}"
    assert actions == [(actor, "webhook.create"), (actor, "webhook.delete")]
