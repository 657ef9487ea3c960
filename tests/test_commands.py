"""The operators' `manage.py runs_*` commands: happy paths and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.utils import timezone

from runs import services
from runs.models import Checkpoint, Run
from runs.wire import format_ts
from tests.factories import new_run
from tests.servers import ROOT, process_env

pytestmark = pytest.mark.django_db

COMMANDS = (
    "runs_list", "runs_show", "runs_tail", "runs_cancel", "runs_prune", "runs_requeue_stale", "runs_workers",
)  # fmt: skip


def run_command(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def finished_run(status: str = "completed", *, days_ago: float, checkpoints: int = 0) -> Run:
    run = new_run()
    if checkpoints:
        services.append_checkpoints(run.id, [{"type": "step", "data": n} for n in range(checkpoints)])
    if status == "canceled":
        services.cancel_run(run.id)
    else:
        services.set_run_status(run.id, "running")
        services.set_run_status(run.id, status)
    Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days_ago))
    return run


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_explains_itself_with_help(name):
    parser = load_command_class("runs", name).create_parser("manage.py", name)

    text = parser.format_help()

    assert text.startswith(f"usage: manage.py {name}")
    assert len(text.split("\n\n")[1]) > 40  # a real description, not just usage


def test_bad_input_exits_non_zero_with_one_clear_line():
    result = subprocess.run(
        [sys.executable, "manage.py", "runs_prune", "--older-than", "soon"],
        cwd=ROOT,
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: --older-than: 'soon' is not a duration like 90s, 15m, 12h, 30d or 2w"
    )


# --- runs_list ---


def test_runs_list_filters_like_the_api_and_pages_with_a_cursor():
    first = new_run(owner="ana")
    second = new_run(owner="ana")
    services.cancel_run(second.id)
    new_run(owner="bob")

    out, _ = run_command("runs_list", "--owner", "ana")
    canceled, _ = run_command("runs_list", "--status", "canceled,failed")
    page_one, more = run_command("runs_list", "--owner", "ana", "--limit", "1", "--json")
    page_two, _ = run_command("runs_list", "--owner", "ana", "--limit", "1", "--json", *more.split()[1:])

    assert out.splitlines()[0].startswith("ID")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(second.id), str(first.id)]
    assert [line.split()[0] for line in canceled.splitlines()[1:]] == [str(second.id)]
    assert json.loads(page_one)["id"] == str(second.id)
    assert json.loads(page_two)["id"] == str(first.id)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "done"], "--status: done is not one of"),
        (["--created-after", "yesterday"], "--created-after: 'yesterday' is not an RFC 3339 timestamp"),
        (["--limit", "0"], "--limit must be between 1 and 200"),
        (["--cursor", "not-a-cursor"], "--cursor: invalid parameter cursor"),
    ],
)
def test_runs_list_rejects_bad_filters(args, message):
    with pytest.raises(CommandError, match=message):
        run_command("runs_list", *args)


# --- runs_show ---


def test_runs_show_prints_the_run_its_spec_and_latest_checkpoints():
    run = new_run(owner="ana")
    services.append_checkpoints(run.id, [{"type": f"step-{n}", "data": {"n": n}} for n in range(5)])

    out, _ = run_command("runs_show", str(run.id), "--checkpoints", "2")
    as_json, _ = run_command("runs_show", str(run.id), "--json")

    assert f"id:           {run.id}" in out
    assert '"task": "sleep"' in out
    assert "checkpoints (last 2 of 5, oldest first):" in out
    assert "step-3" in out and "step-4" in out and "step-2" not in out
    assert [c["seq"] for c in json.loads(as_json)["checkpoints"]] == [1, 2, 3, 4, 5]


def test_runs_show_rejects_a_bad_or_unknown_id():
    with pytest.raises(CommandError, match="'nope' is not a run id"):
        run_command("runs_show", "nope")
    with pytest.raises(CommandError, match="run 00000000-0000-0000-0000-000000000000 not found"):
        run_command("runs_show", "00000000-0000-0000-0000-000000000000")


# --- runs_cancel ---


def test_runs_cancel_cancels_each_run_through_the_service_layer():
    first, second = new_run(), new_run()
    services.set_run_status(second.id, "running")

    out, _ = run_command("runs_cancel", str(first.id), str(second.id))

    assert out.splitlines() == [f"{first.id}: canceled", f"{second.id}: canceled"]
    assert set(Run.objects.values_list("status", flat=True)) == {"canceled"}
    assert all(run.finished_at for run in Run.objects.all())


def test_runs_cancel_reports_finished_and_unknown_runs_and_exits_non_zero():
    pending = new_run()
    done = finished_run(days_ago=0)
    unknown = "00000000-0000-0000-0000-000000000000"
    err = StringIO()

    with pytest.raises(CommandError, match="2 of 3 runs could not be canceled"):
        call_command("runs_cancel", str(pending.id), str(done.id), unknown, stdout=StringIO(), stderr=err)

    assert Run.objects.get(pk=pending.pk).status == "canceled"
    assert f"{done.id}: already completed, not canceled" in err.getvalue()
    assert f"{unknown}: not found" in err.getvalue()


def test_runs_cancel_json_gives_each_runs_result_and_still_exits_non_zero():
    pending = new_run()
    done = finished_run(days_ago=0)
    unknown = "00000000-0000-0000-0000-000000000000"
    out = StringIO()

    with pytest.raises(CommandError, match="2 of 3 runs could not be canceled"):
        call_command(
            "runs_cancel", str(pending.id), str(done.id), unknown, "--json", stdout=out, stderr=StringIO()
        )

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["runId"], r["result"]) for r in records] == [
        (str(pending.id), "canceled"),
        (str(done.id), "already_final"),
        (unknown, "not_found"),
    ]
    assert records[0]["run"]["status"] == "canceled"
    assert records[1]["run"]["status"] == "completed"
    assert records[2]["run"] is None


def test_runs_cancel_with_a_malformed_id_cancels_nothing():
    run = new_run()

    with pytest.raises(CommandError, match="'x' is not a run id"):
        run_command("runs_cancel", str(run.id), "x")

    assert Run.objects.get(pk=run.pk).status == "pending"


# --- runs_prune ---


def test_runs_prune_deletes_exactly_the_old_finished_runs_and_their_checkpoints():
    old_done = finished_run("completed", days_ago=40, checkpoints=3)
    old_failed = finished_run("failed", days_ago=31, checkpoints=2)
    old_canceled = finished_run("canceled", days_ago=45)
    recent_done = finished_run("completed", days_ago=29, checkpoints=1)
    old_pending = new_run(created_at=timezone.now() - timedelta(days=90))
    old_running = new_run(created_at=timezone.now() - timedelta(days=90))
    services.set_run_status(old_running.id, "running")
    services.append_checkpoints(old_running.id, [{"type": "step"}])
    retried = services.retry_run(old_done.id)

    out, _ = run_command("runs_prune", "--older-than", "30d", "--batch-size", "2")

    kept = set(Run.objects.values_list("pk", flat=True))
    assert kept == {recent_done.pk, old_pending.pk, old_running.pk, retried.pk}
    assert not {old_done.pk, old_failed.pk, old_canceled.pk} & kept
    assert Checkpoint.objects.filter(run_id__in=[old_done.pk, old_failed.pk]).count() == 0
    assert Checkpoint.objects.count() == 2  # recent_done's and old_running's
    assert Run.objects.get(pk=retried.pk).retry_of_id is None
    assert "3 finished runs older than 30d to prune" in out
    assert out.strip().endswith("deleted 3 runs and 5 checkpoints")


def test_runs_prune_shows_progress_on_stderr_after_each_batch():
    for _ in range(5):
        finished_run("completed", days_ago=40, checkpoints=1)

    _, err = run_command("runs_prune", "--older-than", "30d", "--batch-size", "2")

    progress = err.splitlines()
    assert [line.split(",")[0].strip() for line in progress] == [
        "deleted 2/5 runs (40%)",
        "deleted 4/5 runs (80%)",
        "deleted 5/5 runs (100%)",
    ]
    assert "s left" in progress[0] and "s left" not in progress[-1]


def test_runs_prune_json_prints_one_summary_for_scripts():
    finished_run("completed", days_ago=40, checkpoints=3)
    finished_run("failed", days_ago=40)

    out, _ = run_command("runs_prune", "--older-than", "30d", "--json")
    dry, _ = run_command("runs_prune", "--older-than", "30d", "--json", "--dry-run")

    assert json.loads(out) == {"dryRun": False, "olderThan": "30d", "matched": 2, "runs": 2, "checkpoints": 3}
    assert json.loads(dry) == {"dryRun": True, "olderThan": "30d", "matched": 0, "runs": 0, "checkpoints": 0}


def test_runs_prune_by_status_only_deletes_that_status():
    old_done = finished_run("completed", days_ago=40)
    old_failed = finished_run("failed", days_ago=40)

    run_command("runs_prune", "--older-than", "30d", "--status", "failed")

    assert list(Run.objects.values_list("pk", flat=True)) == [old_done.pk]
    assert not Run.objects.filter(pk=old_failed.pk).exists()


def test_runs_prune_dry_run_counts_and_deletes_nothing():
    finished_run("completed", days_ago=40, checkpoints=4)
    finished_run("canceled", days_ago=40)

    out, _ = run_command("runs_prune", "--older-than", "2w", "--dry-run")

    assert Run.objects.count() == 2 and Checkpoint.objects.count() == 4
    assert out.strip().endswith("dry run: would delete 2 runs and 4 checkpoints")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: --older-than"),
        (["--older-than", "30 days"], "is not a duration"),
        (["--older-than", "30d", "--status", "running"], "--status: running is not one of canceled"),
        (["--older-than", "30d", "--batch-size", "0"], "--batch-size must be between 1 and 10000"),
    ],
)
def test_runs_prune_rejects_bad_input_and_deletes_nothing(args, message):
    finished_run(days_ago=40)

    with pytest.raises(CommandError, match=message):
        run_command("runs_prune", *args)

    assert Run.objects.count() == 1


# --- runs_requeue_stale ---


class RecordingBackend:
    """Stands in for an executor that lost every run handed to it."""

    asked: list[str] = []

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def dispatch(self, run: Run) -> None:
        return None

    def ensure_dispatched(self, run: Run) -> bool:
        RecordingBackend.asked.append(str(run.id))
        return True


@pytest.fixture
def recording_backend(settings):
    RecordingBackend.asked = []
    settings.ORCHESTRATOR_BACKENDS = {
        **settings.ORCHESTRATOR_BACKENDS,
        "redis": "tests.test_commands.RecordingBackend",
    }
    yield RecordingBackend


def test_runs_requeue_stale_asks_the_backend_about_old_pending_runs_only(recording_backend):
    stale = new_run(created_at=timezone.now() - timedelta(minutes=30))
    new_run()  # too young
    running = new_run(created_at=timezone.now() - timedelta(minutes=30))
    services.set_run_status(running.id, "running")

    dry, _ = run_command("runs_requeue_stale", "--older-than", "10m", "--dry-run")
    assert recording_backend.asked == []
    out, _ = run_command("runs_requeue_stale", "--older-than", "10m")

    assert recording_backend.asked == [str(stale.id)]
    assert str(stale.id) in dry and "dry run: 1 pending runs would be checked, 0 running" in dry
    assert "1 pending runs sent to their backend again" in out


@pytest.fixture
def queue_prefix(settings):
    from tests.redis_workers import drop_keys, unique_prefix

    prefix = settings.REDIS_KEY_PREFIX = unique_prefix()
    yield prefix
    drop_keys(prefix)


def quiet_running_run() -> Run:
    """A redis run that started a while ago and has said nothing since."""
    run = new_run()
    services.set_run_status(run.id, "running")
    Run.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(minutes=30))
    return Run.objects.get(pk=run.pk)


def test_runs_requeue_stale_sends_a_running_run_nobody_holds_again(queue_prefix):
    from runs.redis import queue as run_queue

    lost = quiet_running_run()
    held = quiet_running_run()
    queue = run_queue.run_queue()
    assert queue.acquire_lease(str(held.id), "a-live-worker", 60_000)

    dry, _ = run_command("runs_requeue_stale", "--older-than", "10m", "--dry-run")
    assert queue.redis.get(queue.keys.guard(str(lost.id))) is None  # a dry run sends nothing
    out, _ = run_command("runs_requeue_stale", "--older-than", "10m", "--confirm-after", "0")

    assert str(lost.id) in dry and str(held.id) not in dry
    assert "1 running runs look lost" in dry
    assert f"{lost.id}  redis  resent" in out
    assert "1 running runs sent again, 0 failed" in out
    entry_id = queue.redis.get(queue.keys.guard(str(lost.id)))
    [(_, fields)] = queue.redis.xrange(queue.keys.stream, entry_id, entry_id)
    assert fields["runId"] == str(lost.id)
    assert queue.redis.get(queue.keys.guard(str(held.id))) is None
    assert Run.objects.get(pk=lost.pk).status == "running"  # the worker that takes it counts an attempt


def test_runs_requeue_stale_json_prints_one_record_per_run_and_nothing_else(queue_prefix):
    pending = new_run(created_at=timezone.now() - timedelta(minutes=30))
    lost = quiet_running_run()

    dry, dry_err = run_command("runs_requeue_stale", "--older-than", "10m", "--dry-run", "--json")
    out, err = run_command("runs_requeue_stale", "--older-than", "10m", "--confirm-after", "0", "--json")

    assert [(r["runId"], r["status"], r["action"]) for r in map(json.loads, dry.splitlines())] == [
        (str(pending.id), "pending", "would_check"),
        (str(lost.id), "running", "looks_lost"),
    ]
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["runId"], r["mode"], r["status"], r["action"]) for r in records] == [
        (str(pending.id), "redis", "pending", "sent_again"),
        (str(lost.id), "redis", "running", "resent"),
    ]
    assert records[1]["since"] == format_ts(lost.updated_at)
    assert "dry run: 1 pending runs would be checked, 1 running runs look lost" in dry_err
    assert "1 running runs sent again, 0 failed" in err


def test_runs_requeue_stale_leaves_a_running_run_that_speaks(queue_prefix):
    run = new_run()
    services.set_run_status(run.id, "running")  # just now: not quiet

    out, _ = run_command("runs_requeue_stale", "--older-than", "10m", "--confirm-after", "0")

    assert str(run.id) not in out


def test_runs_requeue_stale_rejects_a_negative_wait():
    with pytest.raises(CommandError, match="--confirm-after: -1 is negative"):
        run_command("runs_requeue_stale", "--confirm-after", "-1")


def test_runs_requeue_stale_rejects_a_bad_age():
    with pytest.raises(CommandError, match="--older-than: '10 minutes' is not a duration"):
        run_command("runs_requeue_stale", "--older-than", "10 minutes")
