"""A worker whose checkpoint commits are cut before it hears them (the write
stored, the answer lost) retries with the same keys: every checkpoint is
stored exactly once, in order."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from runs.models import Checkpoint, Run
from tests import servers
from tests.pg_cutter import CommitCutter
from tests.redis_workers import WorkerProcess, drop_keys, unique_prefix
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = 40


def _cut_run(api, tmp_path, steps: int, seconds: float, every: int):
    """A run of the `sleep` task emitting `steps` checkpoints over `seconds`, every `every`th commit cut."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL")
    db = settings.DATABASES["default"]
    upstream = (db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))
    prefix = unique_prefix()
    with CommitCutter(upstream, every=every) as cutter:
        proxied = servers.test_database_url().replace(
            f"{upstream[0]}:{upstream[1]}", f"127.0.0.1:{cutter.port}"
        )
        # Plain text on the wire, so that the proxy can read it.
        url = f"{proxied}?sslmode=disable&gssencmode=disable"
        worker = WorkerProcess(tmp_path, prefix, concurrency=1, DATABASE_URL=url).start()
        try:
            with override_settings(REDIS_KEY_PREFIX=prefix):
                created = api.post(
                    "/runs?mode=redis",
                    {"spec": {"task": "sleep", "input": {"seconds": seconds, "checkpoints": steps}}},
                )
            run_id = created.json()["runId"]
            run = wait_for(
                lambda: (r := Run.objects.get(pk=run_id)).is_final and r, timeout=60, what="the run to end"
            )
        finally:
            worker.stop()
            drop_keys(prefix)

    stored = list(Checkpoint.objects.filter(run_id=run_id).order_by("seq").values_list("seq", "data", "key"))
    return run, stored, cutter.cuts, worker.log()


def test_checkpoints_survive_commits_whose_answer_was_lost_exactly_once(api, tmp_path):
    # One checkpoint per 30 ms, longer than the worker coalesces: one commit each.
    run, stored, cuts, log = _cut_run(api, tmp_path, STEPS, STEPS * 0.03, every=5)

    assert run.status == "completed", (run.error, log)
    assert stored == [(n, {"step": n, "of": STEPS}, f"a1-{n}") for n in range(1, STEPS + 1)]
    # Checkpoints emitted while a write is being retried go out with the next one.
    assert cuts >= STEPS // 10
    assert "retrying with the same keys" in log


def test_coalesced_checkpoints_survive_lost_commit_answers_exactly_once(api, tmp_path):
    # All at once: written 100 to a commit, and every third commit's answer is lost.
    steps = 250
    run, stored, cuts, log = _cut_run(api, tmp_path, steps, 0, every=3)

    assert run.status == "completed", (run.error, log)
    assert stored == [(n, {"step": n, "of": steps}, f"a1-{n}") for n in range(1, steps + 1)]
    assert cuts >= 1
    assert "retrying with the same keys" in log
