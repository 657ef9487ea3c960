"""`manage.py k8s_reconcile`: follow Kubernetes Jobs and keep their runs in step."""

from __future__ import annotations

import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from audit.commands import AuditedCommand
from runs.k8s.reconciler import Reconciler
from runs.management import options as checks
from runs.management.backends import reachable_cluster, serve_metrics

logger = logging.getLogger("runs.k8s.reconciler")


class Command(AuditedCommand):
    help = "Watch the run Jobs and Pods in the configured namespace and map them to run status."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one resync (list and repair), then exit")
        parser.add_argument("--resync-seconds", type=float, default=None, help="default K8S_RESYNC_SECONDS")
        parser.add_argument(
            "--watch-timeout-seconds", type=int, default=None, help="default K8S_WATCH_TIMEOUT_SECONDS"
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.RECONCILER_METRICS_PORT,
            help="serve the reconciler's Prometheus metrics on this port (0: off; RECONCILER_METRICS_PORT)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        metrics_port = checks.port("--metrics-port", options["metrics_port"])
        if options["resync_seconds"] is not None and options["resync_seconds"] <= 0:
            raise CommandError(f"--resync-seconds: {options['resync_seconds']:g} is not positive")
        if options["watch_timeout_seconds"] is not None:
            checks.int_between("--watch-timeout-seconds", options["watch_timeout_seconds"], 1)
        reconciler = Reconciler(
            resync_seconds=options["resync_seconds"], watch_timeout_seconds=options["watch_timeout_seconds"]
        )
        if options["once"]:
            with reachable_cluster():
                reconciler.resync()
            return

        def shut_down(signum: int, frame: Any) -> None:
            logger.info("stopping on signal %s", signal.Signals(signum).name)
            reconciler.stop()

        signal.signal(signal.SIGTERM, shut_down)
        signal.signal(signal.SIGINT, shut_down)
        if metrics_port:
            serve_metrics("--metrics-port", metrics_port)
        logger.info("reconciler watching namespace %s", reconciler.namespace)
        reconciler.run()
        logger.info("reconciler stopped")
