"""`manage.py runwebhooks`: the webhook deliverer."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.db import connections

from orchestrator.prometheus import serve_process_metrics
from runs.management.base import OrchestratorCommand
from webhooks.deliverer import Deliverer


class Command(OrchestratorCommand):
    help = (
        "Deliver webhooks: make deliveries from new run journal entries, send due ones (N at a time), "
        "retry failures on WEBHOOK_RETRY_SCHEDULE. Any number may run at once. SIGTERM stops claiming "
        "and lets the attempts in flight finish."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help=f"attempts in flight at once (default WEBHOOK_CONCURRENCY={settings.WEBHOOK_CONCURRENCY})",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.WEBHOOK_METRICS_PORT,
            help="serve this deliverer's Prometheus metrics on this port (0: off; WEBHOOK_METRICS_PORT)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        concurrency = options["concurrency"] or settings.WEBHOOK_CONCURRENCY
        _size_database_pool(concurrency)
        if options["metrics_port"]:
            serve_process_metrics(options["metrics_port"])
        deliverer = Deliverer(concurrency=concurrency)
        deliverer.install_signal_handlers()
        deliverer.run()


def _size_database_pool(concurrency: int) -> None:
    """Each attempt records its outcome on a connection of its own, and the claim loop needs one."""
    settings_dict = connections["default"].settings_dict
    options = settings_dict.setdefault("OPTIONS", {})
    pool = options.get("pool")
    if isinstance(pool, dict):
        pool["max_size"] = max(int(pool.get("max_size") or 0), concurrency + 2)
    if settings_dict["ENGINE"] == "django.db.backends.sqlite3":
        # Attempts record concurrently: take SQLite's write lock at BEGIN, where it waits.
        options.setdefault("transaction_mode", "IMMEDIATE")
