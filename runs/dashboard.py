"""What the admin dashboard shows, read in one place: the fleet and the queue
from Redis, runs by status and the last day's finished runs per minute from
the database. Reads only; the view (runs.admin_dashboard) renders it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone
from kubernetes.client.rest import ApiException

from runs import dashboard_panels, states
from runs.k8s import client as k8s
from runs.k8s.manifests import selector
from runs.models import Run
from runs.redis import fleet
from runs.redis.queue import QueueStats, run_queue

WINDOW = timedelta(hours=24)


@dataclass
class Series:
    """Finished runs per minute over WINDOW, oldest minute first."""

    start: datetime
    finished: list[int]
    failed: list[int]

    @property
    def total_finished(self) -> int:
        return sum(self.finished)

    @property
    def total_failed(self) -> int:
        return sum(self.failed)


@dataclass
class Dashboard:
    now: datetime
    redis_error: str | None
    workers: list[fleet.WorkerRecord] = field(default_factory=list)
    queue: QueueStats | None = None
    by_status: dict[str, int] = field(default_factory=dict)
    by_mode_status: dict[str, dict[str, int]] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] | None = None  # Kubernetes Jobs by state; None: no k8s runs
    jobs_error: str | None = None
    panels: list[dashboard_panels.Panel] = field(default_factory=list)
    series: Series | None = None

    @property
    def alive(self) -> int:
        return sum(1 for worker in self.workers if worker.alive)

    @property
    def gone(self) -> int:
        return sum(1 for worker in self.workers if worker.state == fleet.GONE)


def _minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def finished_per_minute(now: datetime) -> Series:
    """Runs that reached a final status, and those of them that failed, per minute."""
    start = _minute(now - WINDOW) + timedelta(minutes=1)
    minutes = int(WINDOW.total_seconds() // 60)
    finished = [0] * minutes
    failed = [0] * minutes
    rows = (
        Run.objects.filter(finished_at__gte=start)
        .annotate(minute=TruncMinute("finished_at"))
        .values("minute", "status")
        .annotate(n=Count("id"))
    )
    for row in rows:
        index = int((row["minute"] - start).total_seconds() // 60)
        if 0 <= index < minutes:
            finished[index] += row["n"]
            if row["status"] == states.FAILED:
                failed[index] += row["n"]
    return Series(start=start, finished=finished, failed=failed)


def waiting_by_reason() -> dict[str, int]:
    """Pending runs held by a gate, by the gate (runAt, backoff, dependencies, concurrency)."""
    rows = (
        Run.objects.filter(status=states.PENDING, waiting_for__isnull=False)
        .order_by()
        .values("waiting_for__reason")
        .annotate(n=Count("id"))
    )
    return {str(row["waiting_for__reason"]): row["n"] for row in rows if row["waiting_for__reason"]}


JOB_STATES = ("active", "succeeded", "failed", "waiting")


def jobs_by_state() -> tuple[dict[str, int] | None, str | None]:
    """This installation's Jobs in the namespace by state, or why they could not be read."""
    try:
        jobs = k8s.batch_api().list_namespaced_job(
            k8s.namespace(),
            label_selector=selector(settings.K8S_INSTANCE),
            _request_timeout=k8s.request_timeout(),
        )
    except (ApiException, *k8s.CONNECTION_ERRORS) as exc:
        return None, f"Kubernetes unreachable ({k8s.describe_error(exc)})"
    counts = dict.fromkeys(JOB_STATES, 0)
    for job in jobs.items:
        status = job.status
        if status is None:
            counts["waiting"] += 1
        elif status.active:
            counts["active"] += 1
        elif status.succeeded:
            counts["succeeded"] += 1
        elif status.failed:
            counts["failed"] += 1
        else:
            counts["waiting"] += 1
    return counts, None


def _runs_by_status() -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    by_status = dict.fromkeys(states.STATUSES, 0)
    by_mode: dict[str, dict[str, int]] = {mode: dict.fromkeys(states.STATUSES, 0) for mode in states.MODES}
    for row in Run.objects.order_by().values("mode", "status").annotate(n=Count("id")):
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        by_mode.setdefault(row["mode"], dict.fromkeys(states.STATUSES, 0))[row["status"]] = row["n"]
    return by_status, by_mode


def read() -> Dashboard:
    now = timezone.now()
    board = Dashboard(now=now, redis_error=None)
    board.by_status, board.by_mode_status = _runs_by_status()
    board.waiting = waiting_by_reason()
    board.series = finished_per_minute(now)
    board.panels = dashboard_panels.read_all()
    if any(board.by_mode_status.get("k8s", {}).values()):
        board.jobs, board.jobs_error = jobs_by_state()
    if not settings.REDIS_URL:
        board.redis_error = "REDIS_URL is not set: no Redis workers configured"
        return board
    try:
        queue = run_queue()
        board.queue = queue.stats()
        board.workers = fleet.list_workers(queue)
    except redis.RedisError as exc:
        board.redis_error = f"Redis unreachable ({type(exc).__name__})"
    return board


# --- charts: server-rendered SVG, nothing fetched from anywhere ---

CHART_WIDTH = 1440
CHART_HEIGHT = 120
BIN_MINUTES = 10


def bar_chart(
    title: str, per_minute: list[int], start: datetime, *, css: str = "", bin_minutes: int = BIN_MINUTES
) -> dict[str, Any]:
    """Bars of the per-minute rate, averaged over `bin_minutes`: 144 bars a day,
    each wide enough to see, scaled to the busiest bin."""
    bins = [per_minute[i : i + bin_minutes] for i in range(0, len(per_minute), bin_minutes)]
    rates = [sum(chunk) / bin_minutes for chunk in bins]
    peak = max(rates, default=0.0)
    width = CHART_WIDTH / max(1, len(rates))
    bars = []
    for index, (rate, chunk) in enumerate(zip(rates, bins, strict=True)):
        if not rate:
            continue
        height = max(2.0, (CHART_HEIGHT - 4) * rate / peak)
        when = start + timedelta(minutes=index * bin_minutes)
        bars.append(
            {
                "x": f"{index * width:.1f}",
                "y": f"{CHART_HEIGHT - height:.1f}",
                "width": f"{max(1.0, width - 1):.1f}",
                "height": f"{height:.1f}",
                "label": f"{when:%H:%M} UTC: {sum(chunk)} in {bin_minutes} min",
            }
        )
    return {
        "title": title,
        "css": css,
        "bars": bars,
        "peak": peak,
        "bin_minutes": bin_minutes,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
    }
