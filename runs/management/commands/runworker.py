"""`manage.py runworker`: the reference Redis worker."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.db import connections

from orchestrator import tracing
from runs.management import options as checks
from runs.management.backends import reachable_redis, serve_metrics
from runs.management.base import OrchestratorCommand
from runs.redis.queue import run_queue
from runs.redis.worker import recovery
from runs.redis.worker.runner import Worker
from runs.redis.worker.tasks import load_task_modules, task_names

# Each slot is a thread holding a database connection: past this, a typo.
MAX_CONCURRENCY = 256


class Command(OrchestratorCommand):
    help = (
        "Run redis-mode runs: take them from the Redis stream through the consumer group, execute "
        "their registered task in N slots, and report checkpoints and status. SIGTERM stops taking "
        "runs, lets running ones finish for WORKER_SHUTDOWN_GRACE_SECONDS, then hands the rest back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help=f"runs executed at once, 1..{MAX_CONCURRENCY} "
            f"(default WORKER_CONCURRENCY={settings.WORKER_CONCURRENCY})",
        )
        parser.add_argument(
            "--queue",
            default=None,
            help=f"stream name under REDIS_KEY_PREFIX (default REDIS_RUN_STREAM={settings.REDIS_RUN_STREAM})",
        )
        parser.add_argument("--max-runs", type=int, default=None, help="exit after this many runs ended")
        parser.add_argument(
            "--sweep",
            action="store_true",
            help="re-send the runs the queue lost (pending runs, orphaned running runs) and exit",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.WORKER_METRICS_PORT,
            help="serve this worker's Prometheus metrics on this port (0: off; WORKER_METRICS_PORT)",
        )
        parser.add_argument("--list-tasks", action="store_true", help="print the registered tasks and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        # Every option is checked before anything starts, so a typo starts nothing.
        concurrency = options["concurrency"]
        if concurrency is None:
            concurrency = settings.WORKER_CONCURRENCY
        checks.int_between("--concurrency", concurrency, 1, MAX_CONCURRENCY)
        if options["max_runs"] is not None:
            checks.int_between("--max-runs", options["max_runs"], 1)
        metrics_port = checks.port("--metrics-port", options["metrics_port"])
        load_task_modules()
        if options["list_tasks"]:
            self.stdout.write("\n".join(task_names()))
            return
        if options["sweep"]:
            with reachable_redis():
                queue = run_queue(options["queue"])
                queue.ensure_group()
                sent = recovery.sweep(
                    queue,
                    holder="sweep-command",
                    interval_s=settings.WORKER_SWEEP_INTERVAL_SECONDS,
                    lease_ms=int(settings.WORKER_LEASE_SECONDS * 1000),
                    force=True,
                )
            self.stdout.write(f"re-sent {sent} run(s)")
            return
        if metrics_port:
            serve_metrics("--metrics-port", metrics_port)
        _size_database_pool(concurrency)
        tracing.configure("orchestrator-worker")
        worker = Worker(concurrency=concurrency, stream=options["queue"], max_runs=options["max_runs"])
        try:
            worker.run()
        finally:
            tracing.shutdown()


def _size_database_pool(concurrency: int) -> None:
    """Every slot, the heartbeat, timers and the fetch loop may hold a connection at once."""
    settings_dict = connections["default"].settings_dict
    options = settings_dict.setdefault("OPTIONS", {})
    pool = options.get("pool")
    if isinstance(pool, dict):
        pool["max_size"] = max(int(pool.get("max_size") or 0), concurrency + 4)
    if settings_dict["ENGINE"] == "django.db.backends.sqlite3":
        # Slots write concurrently: take the write lock at BEGIN, where SQLite waits for it,
        # rather than on the first write, where it fails at once with "database is locked".
        options.setdefault("transaction_mode", "IMMEDIATE")
