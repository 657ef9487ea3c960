"""The scheduler's Prometheus metrics (served by `runscheduler --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from runs.metrics import SCHEDULER_LAG_SECONDS

__all__ = ["SCHEDULER_LAG_SECONDS", "SCHEDULER_UP", "TICKS"]

# outcome: fired (a run for a tick on time), caught_up (a run for a missed
# tick), skipped (a recorded skip: overlap, or a missed tick under catchup none/latest).
TICKS = Counter(
    "orchestrator_schedule_ticks_total",
    "Schedule ticks handled, by schedule and outcome",
    ["schedule", "outcome"],
)
SCHEDULER_UP = Gauge(
    "orchestrator_scheduler_database_up",
    "1 while the scheduler reaches the database, 0 while it waits for it to come back",
    multiprocess_mode="mostrecent",
)
