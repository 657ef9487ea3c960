"""`manage.py runscheduler`: fire schedule ticks and hand over delayed runs when due."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from audit.commands import AuditedCommand
from orchestrator.prometheus import serve_process_metrics
from schedules.scheduler import Scheduler

logger = logging.getLogger("schedules.scheduler")


class Command(AuditedCommand):
    help = (
        "Make each schedule's runs at their ticks and hand delayed runs (runAt) to their backend when due. "
        "Sleeps until the next due instant; woken at once when a schedule or a delayed run changes. "
        "Any number may run: each tick still makes exactly one run or one recorded skip. "
        "SIGTERM finishes the pass under way and exits."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass over what is due now, then exit")
        parser.add_argument(
            "--max-sleep-seconds",
            type=float,
            default=None,
            help="longest single sleep (default SCHEDULER_MAX_SLEEP_SECONDS)",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.SCHEDULER_METRICS_PORT,
            help="serve the scheduler's Prometheus metrics on this port (0: off; SCHEDULER_METRICS_PORT)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        scheduler = Scheduler(max_sleep=options["max_sleep_seconds"])
        if options["once"]:
            scheduler.run_pass(ahead=False)
            return
        scheduler.install_signal_handlers()
        if options["metrics_port"]:
            serve_process_metrics(options["metrics_port"])
        logger.info("scheduler started", extra={"event": "scheduler_started"})
        scheduler.run()
        logger.info("scheduler stopped", extra={"event": "scheduler_stopped"})
