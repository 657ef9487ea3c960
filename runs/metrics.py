"""The service's own Prometheus metrics, defined once so every module
(API, stream, workers, reconciler) counts into the same series.

A change is counted by the process that records it: an API process for what
clients and Jobs report over HTTP, each Redis worker for the runs it
executes, the reconciler for what it applies. So the totals are the sum over
every scraped process (each worker serves its own on WORKER_METRICS_PORT).
The queue and fleet gauges are read from Redis at scrape time by the API
(runs.redis.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS_CREATED = Counter("orchestrator_runs_created_total", "Runs created", ["mode"])
RUNS_FINISHED = Counter(
    "orchestrator_runs_finished_total", "Runs that reached a final status", ["mode", "status"]
)
RUN_STATUS_CHANGES = Counter(
    "orchestrator_run_status_changes_total", "Status changes recorded, by the new status", ["mode", "status"]
)
RUN_RETRIES = Counter(
    "orchestrator_run_retries_total",
    "Failed attempts sent back to pending for another attempt (runs.retries), by mode",
    ["mode"],
)
RUN_DURATION_SECONDS = Histogram(
    "orchestrator_run_duration_seconds",
    "From a run's start (its creation, when it never started) to its final status",
    ["mode", "status"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600),
)
CHECKPOINTS_APPENDED = Counter("orchestrator_checkpoints_appended_total", "Checkpoints appended")
CHECKPOINT_APPENDS_WAITING = Gauge(
    "orchestrator_checkpoint_appends_waiting",
    "Append requests waiting for the group before them to commit (group commit)",
    multiprocess_mode="livesum",
)
CHECKPOINT_GROUPS = Counter(
    "orchestrator_checkpoint_groups_total", "Groups of append requests sent to the database together"
)
EVENT_STREAMS_OPEN = Gauge(
    "orchestrator_event_streams_open", "Event streams open now", multiprocess_mode="livesum"
)
EVENT_DELIVERY_SECONDS = Histogram(
    "orchestrator_event_delivery_seconds",
    "From a checkpoint's commit to its hand-over to the event streams of its run (once per server process)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RUN_LIST_STREAMS_OPEN = Gauge(
    "orchestrator_run_list_streams_open",
    "Run list streams (GET /runs/events) open now",
    multiprocess_mode="livesum",
)
RUN_LIST_DELIVERY_SECONDS = Histogram(
    "orchestrator_run_list_delivery_seconds",
    "From a run change to its journal entry's write on a run list stream",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
JOURNAL_ENTRIES = Counter("orchestrator_journal_entries_total", "Run journal entries written", ["type"])
RECONCILER_LAG_SECONDS = Gauge(
    "orchestrator_reconciler_lag_seconds",
    "Age of the newest Kubernetes event the reconciler has applied",
    multiprocess_mode="mostrecent",
)

# Redis mode: the API's dispatches and the workers' own series.
DISPATCH_FAILURES = Counter(
    "orchestrator_dispatch_failures_total", "Redis dispatches that failed or were deferred (run left pending)"
)
WORKER_RUNS_STARTED = Counter("orchestrator_worker_runs_started_total", "Run attempts a worker started")
WORKER_RUNS_FINISHED = Counter(
    "orchestrator_worker_runs_finished_total",
    "Run attempts a worker ended, by outcome",
    ["outcome"],
)
WORKER_RUNS_RECLAIMED = Counter(
    "orchestrator_worker_runs_reclaimed_total",
    "Queue entries taken over from a worker that stopped answering",
)
WORKER_ACTIVE_SLOTS = Gauge(
    "orchestrator_worker_active_slots", "Worker slots running a task now", multiprocess_mode="livesum"
)
WORKER_START_DELAY_SECONDS = Histogram(
    "orchestrator_worker_start_delay_seconds",
    "From a run's creation to a worker starting it",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# Admission and schedules (runs.admission, manage.py runscheduler).
RUNS_ADMITTED = Counter(
    "orchestrator_runs_admitted_total", "Held runs handed to their backend once their gate opened", ["reason"]
)
ADMISSION_LATENCY_SECONDS = Histogram(
    "orchestrator_admission_latency_seconds",
    "From a gate opening (its time passed, the last dependency completed, a slot freed) to the handover",
    ["reason"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SCHEDULER_LAG_SECONDS = Histogram(
    "orchestrator_scheduler_lag_seconds",
    "From a tick's time to its run's creation (kind=tick), or from runAt to the handover (kind=runAt)",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
