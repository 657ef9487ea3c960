"""Redis mode: runs go on a Redis Stream that `manage.py runworker` (or any
worker speaking docs/references/worker-protocol.md) reads through a consumer
group.

Dispatch checks that Redis answers inside the run's create transaction, so a
run is only recorded when Redis can take it (503 `backend_unavailable`
otherwise, as in Kubernetes mode), and adds the entry after the commit, so a
worker never reads a run that is not there yet. Should Redis fail between the
two, the run stays `pending`: the workers' sweep (at start-up, when they
notice a wiped Redis, and every WORKER_SWEEP_INTERVAL_SECONDS) sends it.

A run without a spec is never queued: no task to run, so it waits for an
external worker that drives it over HTTP.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db import transaction

from orchestrator import tracing
from runs import metrics, tokens
from runs.backends.base import Backend, NullBackend
from runs.exceptions import BackendUnavailable
from runs.models import Run
from runs.redis import fleet
from runs.redis import queue as run_queue

logger = logging.getLogger("runs.backends.redis")


# The columns a run's queue entry is built from.
ENTRY_FIELDS = ("id", "spec", "created_at", "priority")

# How long after its run's time gate opens a queue entry built ahead is
# still sent as built. Its worker token was minted to expire when one minted
# at the gate would; a hand-over this late (a stalled scheduler) mints anew.
PREPARED_SLACK_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A queue entry built ahead of its run's time gate, untraced."""

    level: int
    packed: str
    use_by: float  # epoch seconds


class RedisBackend(Backend):
    name = "redis"
    sends_after_commit = True

    def __init__(self, mode: str) -> None:
        super().__init__(mode)
        self._down_until = 0.0
        self._lock = threading.Lock()
        # Run id -> its entry, built by prepare_dispatch; taken by dispatch_opened.
        self._prepared: dict[str, _Prepared] = {}

    def dispatch(self, run: Run) -> None:
        if run.spec is None:
            return
        self._check_reachable()
        # robust: whatever goes wrong here is logged and the run stays pending for the
        # sweep; the request that created the run still succeeds.
        transaction.on_commit(lambda: self._send(run, after_failure_skip=True), robust=True)

    def dispatch_many(self, runs: list[Run]) -> None:
        queued = [run for run in runs if run.spec is not None]
        if not queued:
            return
        self._check_reachable()
        transaction.on_commit(lambda: self._send_many(queued), robust=True)

    def prepare_dispatch(self, runs: list[Run]) -> None:
        """Build the queue entries of held runs, worker tokens and all, so that
        when their gate opens only the UPDATE that opens it and the XADD are
        left: for 10,000 schedules' runs handed over at one tick, minting the
        tokens and building the entries was a quarter of the hand-over's
        Python time. Kept in this process; a run that another process hands
        over is built there."""
        now = time.time()
        built: dict[str, _Prepared] = {}
        for run in runs:
            if run.spec is None or run.not_before is None:
                continue
            due = run.not_before.timestamp()
            # Expires when a token minted at the gate would.
            ttl = settings.WORKER_TOKEN_TTL_SECONDS + max(0, math.ceil(due - now))
            token, _ = tokens.mint(tokens.WORKER, str(run.id), ttl_seconds=ttl)
            run_id, level, packed = run_queue.packed_entry(
                str(run.id), run_queue.entry_fields(run, token=token, traced=False)
            )
            built[run_id] = _Prepared(level, packed, due + PREPARED_SLACK_SECONDS)
        with self._lock:
            # Entries never sent (their run canceled, or handed over elsewhere) go once stale.
            for run_id in [run_id for run_id, entry in self._prepared.items() if entry.use_by < now]:
                del self._prepared[run_id]
            self._prepared.update(built)

    def dispatch_opened(self, run_ids: list[str]) -> None:
        """Send, after the commit, the entries prepare_dispatch built for these
        runs, and build the others' from their rows."""
        now = time.time()
        ready: list[run_queue.PackedEntry] = []
        missing: list[str] = []
        with self._lock:
            for run_id in run_ids:
                entry = self._prepared.pop(run_id, None)
                if entry is not None and entry.use_by >= now:
                    ready.append((run_id, entry.level, entry.packed))
                else:
                    missing.append(run_id)
        runs: list[Run] = []
        if missing:
            runs = [
                run for run in Run.objects.filter(pk__in=missing).only(*ENTRY_FIELDS) if run.spec is not None
            ]
        if not ready and not runs:
            return
        self._check_reachable()
        transaction.on_commit(lambda: self._send_many(runs, ready), robust=True)

    def send_handed_over(self, runs: list[Run]) -> None:
        """Runs that waited for a gate, handed over: no reachability check
        (unlike a create, nothing is refused); what does not reach Redis
        stays pending for the workers' sweep."""
        queued = [run for run in runs if run.spec is not None]
        if queued:
            self._send_many(queued)

    def _send_many(self, runs: list[Run], built: Sequence[run_queue.PackedEntry] = ()) -> None:
        """Send the runs' entries, and those `built` ahead (untraced)."""
        count = len(runs) + len(built)
        if time.monotonic() < self._down_until:
            metrics.DISPATCH_FAILURES.inc(count)
            logger.warning(
                "redis recently unreachable: runs left pending for the sweep",
                extra={"runs": count, "event": "dispatch_deferred"},
            )
            return
        try:
            with tracing.span("run.dispatch_many", **{"runs": count, "run.mode": self.mode}):
                items = [run_queue.packed_entry(str(run.id), run_queue.entry_fields(run)) for run in runs]
                items += [(run_id, level, run_queue.traced_packed(packed)) for run_id, level, packed in built]
                run_queue.run_queue().enqueue_packed(items)
        except redis.RedisError as exc:
            with self._lock:
                self._down_until = time.monotonic() + settings.REDIS_DISPATCH_BACKOFF_SECONDS
            metrics.DISPATCH_FAILURES.inc(count)
            logger.warning(
                "dispatch to redis failed: runs left pending for the sweep",
                extra={"runs": count, "event": "dispatch_failed", "reason": exc.__class__.__name__},
            )

    def _check_reachable(self) -> None:
        """BackendUnavailable unless Redis answers; during the back-off after
        a failure, at once, so an outage does not slow every POST /runs."""
        retry_after = math.ceil(settings.REDIS_DISPATCH_BACKOFF_SECONDS)
        if time.monotonic() < self._down_until:
            reason = "unreachable moments ago"
        else:
            try:
                run_queue.client().ping()
                return
            except redis.RedisError as exc:
                reason = exc.__class__.__name__
                with self._lock:
                    self._down_until = time.monotonic() + settings.REDIS_DISPATCH_BACKOFF_SECONDS
        metrics.DISPATCH_FAILURES.inc()
        logger.warning(
            "redis unreachable: run not created",
            extra={"event": "dispatch_refused", "reason": reason, "redis": run_queue.describe_redis()},
        )
        raise BackendUnavailable(self.name, "Redis not reachable", reason, retry_after=retry_after)

    def ensure_dispatched(self, run: Run) -> bool:
        return self._send(run, after_failure_skip=False)

    def _send(self, run: Run, *, after_failure_skip: bool) -> bool:
        if after_failure_skip and time.monotonic() < self._down_until:
            metrics.DISPATCH_FAILURES.inc()
            logger.warning(
                "redis recently unreachable: run left pending for the sweep",
                extra={"runId": str(run.id), "event": "dispatch_deferred"},
            )
            return False
        try:
            with tracing.span("run.dispatch", **{"run.id": str(run.id), "run.mode": self.mode}):
                entry_id = run_queue.run_queue().enqueue(str(run.id), run_queue.entry_fields(run))
        except redis.RedisError as exc:
            with self._lock:
                self._down_until = time.monotonic() + settings.REDIS_DISPATCH_BACKOFF_SECONDS
            metrics.DISPATCH_FAILURES.inc()
            logger.warning(
                "dispatch to redis failed: run left pending for the sweep",
                extra={"runId": str(run.id), "event": "dispatch_failed", "reason": exc.__class__.__name__},
            )
            return False
        return entry_id is not None

    def cancel(self, run: Run) -> None:
        try:
            run_queue.run_queue().announce_cancel(str(run.id))
        except redis.RedisError as exc:
            # The run is canceled in the database; its worker finds out at its next heartbeat.
            logger.warning(
                "cancel not announced on redis",
                extra={"runId": str(run.id), "event": "cancel_unannounced", "reason": exc.__class__.__name__},
            )

    def lost_running(self, runs: list[Run]) -> list[Run]:
        """Runs no live worker holds: neither a lease nor a queue entry, or an
        entry delivered to a worker whose heartbeat is gone (and no lease)."""
        if not runs:
            return []
        queue = run_queue.run_queue()
        abandoned = self._abandoned(queue, [str(run.id) for run in runs])
        return [run for run in runs if str(run.id) in abandoned]

    @staticmethod
    def _abandoned(queue: run_queue.RunQueue, run_ids: list[str]) -> dict[str, str | None]:
        """{run id: the gone consumer holding its entry, or None when nothing holds it}."""
        holders = queue.holders(run_ids)
        consumers = {holder for holder in holders.values() if holder and holder.startswith("consumer:")}
        alive = fleet.alive_names(queue) if consumers else set()
        abandoned: dict[str, str | None] = {}
        for run_id, holder in holders.items():
            if holder is None:
                abandoned[run_id] = None
            elif holder.startswith("consumer:") and holder.removeprefix("consumer:") not in alive:
                abandoned[run_id] = holder.removeprefix("consumer:")
        return abandoned

    def release_lost(self, run: Run) -> dict[str, Any] | None:
        """Back on the queue: the worker that takes it counts another attempt.
        An entry still delivered to a gone worker is dropped first, so the
        fresh one goes to whichever worker reads next."""
        queue = run_queue.run_queue()
        consumer = self._abandoned(queue, [str(run.id)]).get(str(run.id))
        if consumer:
            queue.drop_abandoned(str(run.id), consumer)
        queue.enqueue(str(run.id), run_queue.entry_fields(run))
        return None

    def describe(self, run: Run) -> dict[str, Any] | None:
        if run.spec is None:
            return NullBackend(self.mode).describe(run)
        keys = run_queue.queue_keys()
        return {
            "backend": self.name,
            "command": "XADD",
            "stream": keys.stream_for(run.priority),
            "consumerGroup": keys.group,
            "entry": run_queue.entry_fields(run, token=run_queue.TOKEN_PLACEHOLDER),
        }

    def plan_steps(self, run: Run) -> list[str]:
        if run.spec is None:
            return ["no spec: the run is not queued; it waits for an external worker driving it over HTTP"]
        keys = run_queue.queue_keys()
        task = (run.spec or {}).get("task", "")
        return [
            f"after commit, add the run to the Redis stream {keys.stream_for(run.priority)} of its priority, "
            f"{run.priority} (consumer group {keys.group})",
            f"a worker takes it, higher priorities first (but every {settings.REDIS_QUEUE_OLDEST_EVERY}th "
            f"run taken is the one that waited longest), runs the task {task!r} and reports checkpoints "
            "and status",
        ]
