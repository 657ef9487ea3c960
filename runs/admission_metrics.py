"""Admission gauges read from the database at scrape time: how many pending
runs wait, by reason (`selectors.held_counts`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runs import selectors
from runs.admission_display import REASONS

logger = logging.getLogger("runs.metrics")


class WaitingCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        waiting = GaugeMetricFamily(
            "orchestrator_runs_waiting",
            "Pending runs held by an admission gate, by reason",
            labels=["reason"],
        )
        try:
            counts = selectors.held_counts()
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
