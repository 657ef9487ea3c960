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
from tests.redis_workers import WorkerProcess, drop_keys, unique_prefix, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = 40


def test_checkpoints_survive_commits_whose_answer_was_lost_exactly_once(api, tmp_path):
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL")
    db = settings.DATABASES["default"]
    upstream = (db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))
    prefix = unique_prefix()
    with CommitCutter(upstream, every=5) as cutter:
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
                    {"spec": {"task": "sleep", "input": {"seconds": 0, "checkpoints": STEPS}}},
                )
            run_id = created.json()["runId"]
            run = wait_for(
                lambda: (r := Run.objects.get(pk=run_id)).is_final and r, timeout=60, what="the run to end"
            )
        finally:
            worker.stop()
            drop_keys(prefix)

    assert run.status == "completed", (run.error, worker.log())
    stored = list(Checkpoint.objects.filter(run_id=run_id).order_by("seq").values_list("seq", "data", "key"))
    assert stored == [(n, {"step": n, "of": STEPS}, f"a1-{n}") for n in range(1, STEPS + 1)]
    assert cutter.cuts >= STEPS // 5 - 1
    assert "retrying with the same keys" in worker.log()
