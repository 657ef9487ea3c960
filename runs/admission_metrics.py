"""Admission gauges read from the database at scrape time: how many pending
runs wait, by reason. One grouped count over the held runs (the partial
index on pending runs' `not_before` does not cover it, but held runs are a
small part of the table and the scrape is rare)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from django.db.models import Count
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runs.admission_display import REASONS
from runs.models import HELD, Run

logger = logging.getLogger("runs.metrics")


class WaitingCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        waiting = GaugeMetricFamily(
            "orchestrator_runs_waiting",
            "Pending runs held by an admission gate, by reason",
            labels=["reason"],
        )
        try:
            counts = dict(
                Run.objects.filter(HELD)
                .values_list("waiting_for__reason")
                .order_by()
                .annotate(count=Count("id"))
                .values_list("waiting_for__reason", "count")
            )
        except DatabaseError as exc:
            logger.warning(
                "waiting runs not counted: database unreachable", extra={"reason": type(exc).__name__}
            )
            return
        for reason in REASONS:
            waiting.add_metric([reason], counts.get(reason, 0))
        yield waiting


_registry: CollectorRegistry | None = None


def scrape_time_registry() -> CollectorRegistry:
    global _registry
    if _registry is None:
        _registry = CollectorRegistry(auto_describe=False)
        _registry.register(WaitingCollector())
    return _registry
