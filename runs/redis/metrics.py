"""Gauges read from Redis when `/metrics` is scraped: the queue and the fleet.

Read at scrape time by the API, rather than set by each worker, so there is
one value however many workers (or none) run, and it is never stale. Only
served with REDIS_URL set; with Redis unreachable `orchestrator_queue_up` is 0
and the other gauges are left out of that scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from django.conf import settings
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runs.redis import fleet
from runs.redis.queue import run_queue

logger = logging.getLogger("runs.metrics")


class QueueCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("orchestrator_queue_up", "1 when the scrape could read the Redis queue")
        try:
            queue = run_queue()
            stats = queue.stats()
            workers = fleet.list_workers(queue)
        except redis.RedisError as exc:
            logger.warning("queue metrics skipped: redis unreachable", extra={"reason": type(exc).__name__})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "orchestrator_queue_depth", "Runs waiting in the Redis queue for a worker", value=stats.depth
        )
        by_priority = GaugeMetricFamily(
            "orchestrator_queue_depth_by_priority",
            "Runs waiting in the Redis queue for a worker, by priority",
            labels=["priority"],
        )
        for level, depth in sorted(stats.depth_by_priority.items(), reverse=True):
            by_priority.add_metric([str(level)], depth)
        yield by_priority
        yield GaugeMetricFamily(
            "orchestrator_queue_pending",
            "Queue entries delivered to a worker and not finished",
            value=stats.pending,
        )
        yield GaugeMetricFamily(
            "orchestrator_queue_oldest_waiting_seconds",
            "How long the oldest run waiting in the queue has waited (0 when none waits)",
            value=stats.oldest_waiting_seconds or 0.0,
        )
        by_state = GaugeMetricFamily("orchestrator_workers", "Redis workers by state", labels=["state"])
        slots = GaugeMetricFamily("orchestrator_worker_slots", "Slots of live workers", labels=["state"])
        for state in (fleet.ALIVE, fleet.GONE, fleet.STOPPED):
            by_state.add_metric([state], sum(1 for worker in workers if worker.state == state))
        live = [worker for worker in workers if worker.alive]
        slots.add_metric(["busy"], sum(worker.busy for worker in live))
        slots.add_metric(["total"], sum(worker.slots for worker in live))
        yield by_state
        yield slots


_registry: CollectorRegistry | None = None


def scrape_time_registry() -> CollectorRegistry | None:
    """The registry of these gauges, or None when Redis mode is not configured."""
    global _registry
    if not settings.REDIS_URL:
        return None
    if _registry is None:
        _registry = CollectorRegistry(auto_describe=False)
        _registry.register(QueueCollector())
    return _registry
