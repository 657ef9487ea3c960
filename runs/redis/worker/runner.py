"""The worker process: a fetch loop feeding N slot threads, a heartbeat that
keeps their leases (`heartbeat`) and a pub/sub listener that carries cancels
(`cancels`).

A run is executed only under its lease (`lease:{runId}`, renewed every third
of WORKER_LEASE_SECONDS); every write carries the attempt number, so a worker
that lost its lease cannot touch the run any more. The stream entry is
acknowledged only once the run is final; a worker that dies leaves it pending
in the consumer group, where another worker reclaims it (XAUTOCLAIM).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from types import FrameType
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from audit import context as audit_context
from orchestrator import tracing
from runs import metrics, services, states
from runs.exceptions import AttemptSuperseded, RunFinished, RunNotFound
from runs.redis.queue import Entry, RunQueue, run_queue
from runs.redis.worker import recovery
from runs.redis.worker.cancels import CancelListener
from runs.redis.worker.context import CANCELED, SHUTDOWN, SUPERSEDED, TIMEOUT, TaskContext, TaskStopped
from runs.redis.worker.heartbeat import Heartbeat
from runs.redis.worker.slots import Slot, Slots
from runs.redis.worker.tasks import TaskError, get_task

logger = logging.getLogger("runs.worker")

READ_BLOCK_MS = 500
HAND_BACK_IDLE_MS = 10**9
RETRYING = "retrying"  # makes a handed-back entry look long abandoned: reclaimable at once


class Worker:
    def __init__(
        self,
        *,
        concurrency: int | None = None,
        stream: str | None = None,
        max_runs: int | None = None,
    ) -> None:
        self.concurrency = settings.WORKER_CONCURRENCY if concurrency is None else concurrency
        self.max_runs = max_runs
        self.queue: RunQueue = run_queue(stream)
        self.id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.lease_ms = int(settings.WORKER_LEASE_SECONDS * 1000)
        self.reclaimer = recovery.Reclaimer(self.queue, self.id, self.lease_ms)
        self.slots = Slots()
        self.heartbeat = Heartbeat(self.queue, self.id, self.lease_ms, self.slots, self.concurrency)
        self.cancels = CancelListener(self.queue, self.id, self.slots)
        self._inflight: set[Future[None]] = set()
        self._slot_freed = threading.Event()
        self._stopping = threading.Event()  # no new runs
        self._closing = threading.Event()  # helper threads end
        self._finished_runs = 0
        self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="slot")

    # ---- life cycle -------------------------------------------------------

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (or --max-runs), then hand back what is left."""
        self._install_signal_handlers()
        logger.info(
            "worker started",
            extra={"worker": self.id, "concurrency": self.concurrency, "stream": self.queue.keys.stream},
        )
        helpers = [
            threading.Thread(target=self.heartbeat.run, args=(self._closing,), name="heartbeat", daemon=True),
            threading.Thread(target=self.cancels.run, args=(self._closing,), name="cancels", daemon=True),
        ]
        for thread in helpers:
            thread.start()
        try:
            self._prepare_queue()
            self.cancels.listening.wait(5)
            logger.info("worker ready", extra={"worker": self.id})
            self._fetch_loop()
        finally:
            self._shutdown()
            self._closing.set()
            for thread in helpers:
                thread.join(timeout=3)
            self.heartbeat.announce(stopped=True)
            close_old_connections()
            logger.info("worker stopped", extra={"worker": self.id})

    def stop(self) -> None:
        self._stopping.set()
        self._slot_freed.set()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._stopping.is_set():
                logger.warning("second signal: handing back runs now", extra={"worker": self.id})
                self._hand_back_all()
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _prepare_queue(self) -> None:
        while not self._stopping.is_set():
            try:
                self.queue.ensure_group(self.id)
                self._sweep(force=True)
                return
            except redis.RedisError as exc:
                logger.warning("redis unreachable, retrying", extra={"reason": exc.__class__.__name__})
                self._stopping.wait(1.0)

    def _shutdown(self) -> None:
        deadline = time.monotonic() + settings.WORKER_SHUTDOWN_GRACE_SECONDS
        while self._inflight and time.monotonic() < deadline:
            self._slot_freed.clear()
            self._slot_freed.wait(0.2)
        if self._inflight:
            self._hand_back_all()
        self._executor.shutdown(wait=True)
        try:
            # Gone from the group, unless it still holds entries handed back for others to reclaim.
            self.queue.forget_consumers(idle_ms=0, name=self.id)
        except redis.RedisError as exc:
            logger.warning("could not leave the consumer group", extra={"reason": exc.__class__.__name__})

    def _hand_back_all(self) -> None:
        for slot in self.slots.all():
            slot.ctx.request_stop(SHUTDOWN)

    # ---- fetching ---------------------------------------------------------

    def _fetch_loop(self) -> None:
        next_reclaim = next_sweep = 0.0
        while not self._stopping.is_set():
            self._slot_freed.clear()  # before counting, so a slot freed meanwhile is not missed
            free = self.concurrency - len(self._inflight)
            if free <= 0:
                self._slot_freed.wait(0.5)
                continue
            now = time.monotonic()
            try:
                if now >= next_reclaim:
                    next_reclaim = now + settings.WORKER_LEASE_SECONDS / 2
                    for entry in self.reclaimer.reclaim(free):
                        self._submit(entry)
                    free = self.concurrency - len(self._inflight)
                if now >= next_sweep:
                    next_sweep = now + settings.WORKER_SWEEP_INTERVAL_SECONDS
                    self._sweep(force=False)
                if free <= 0:
                    continue
                entries, last_ids = self.queue.take(
                    self.id, free, oldest_every=settings.REDIS_QUEUE_OLDEST_EVERY
                )
                if not entries:
                    # Nothing waits: until something is added after what the take saw.
                    self.queue.wait(last_ids, READ_BLOCK_MS)
                    continue
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis lost the stream (a restart without persistence): rebuild and re-send.
                logger.warning("consumer group missing: recreating it", extra={"worker": self.id})
                self._prepare_queue()
                continue
            except redis.RedisError as exc:
                logger.warning("redis unreachable", extra={"reason": exc.__class__.__name__})
                self._stopping.wait(1.0)
                continue
            for entry in entries:
                self._submit(entry)

    def _sweep(self, *, force: bool) -> None:
        try:
            recovery.safe_sweep(
                self.queue,
                holder=self.id,
                interval_s=settings.WORKER_SWEEP_INTERVAL_SECONDS,
                lease_ms=self.lease_ms,
                force=force,
            )
        except DatabaseError as exc:
            logger.warning("sweep skipped: database unreachable", extra={"reason": exc.__class__.__name__})
        finally:
            close_old_connections()

    def _submit(self, entry: Entry) -> None:
        future = self._executor.submit(self._execute, entry)
        self._inflight.add(future)
        future.add_done_callback(self._on_done)

    def _on_done(self, future: Future[None]) -> None:
        self._inflight.discard(future)
        self._slot_freed.set()

    # ---- one run ----------------------------------------------------------

    def _execute(self, entry: Entry) -> None:
        # What this thread changes now, the audit trail credits to the run's worker.
        actor = audit_context.begin(audit_context.worker_actor(entry.run_id))
        try:
            self._execute_entry(entry)
        except Exception:
            # Leave the entry unacknowledged: it is reclaimed once the lease lapses.
            logger.exception("run handling failed", extra={"runId": entry.run_id, "worker": self.id})
            self._release(entry.run_id)
        finally:
            close_old_connections()
            audit_context.end(actor)

    def _execute_entry(self, entry: Entry) -> None:
        run_id = entry.run_id
        if not self.queue.acquire_lease(run_id, self.id, self.lease_ms):
            # Another worker is executing it (a duplicate entry): leave ours pending; it is
            # reclaimed later and dropped once the run is final.
            logger.info("run held by another worker", extra={"runId": run_id, "worker": self.id})
            return
        ctx = TaskContext(run_id, 0, entry.spec)
        self.slots.add(Slot(entry, ctx))
        try:
            with tracing.continued(entry.trace, "run.attempt", **{"run.id": run_id, "worker": self.id}):
                self._run_attempt(entry, ctx)
        finally:
            slot = self.slots.pop(run_id)
            if slot and slot.timer:
                slot.timer.cancel()

    def _run_attempt(self, entry: Entry, ctx: TaskContext) -> None:
        run_id = entry.run_id
        try:
            with tracing.span("run.begin_attempt", **{"run.id": run_id}):
                run = services.begin_attempt(run_id)
        except (RunNotFound, RunFinished):
            self.queue.finish(entry, self.id)  # canceled or deleted before it started
            return
        if run.is_final:  # attempts spent: failed with worker_lost
            metrics.WORKER_RUNS_FINISHED.labels(outcome="worker_lost").inc()
            self.queue.finish(entry, self.id)
            return
        if run.status != states.RUNNING:
            # Held by an admission gate (a stale entry): admission sends a fresh one when it opens.
            self.queue.finish(entry, self.id)
            return
        ctx.attempt = run.attempt
        ctx.spec = run.spec or {}
        ctx.input = ctx.spec.get("input")
        close_old_connections()
        metrics.WORKER_RUNS_STARTED.inc()
        if run.attempt == 1 and run.started_at is not None:
            metrics.WORKER_START_DELAY_SECONDS.observe(
                max(0.0, (timezone.now() - run.created_at).total_seconds())
            )
        self._arm_timeout(ctx)
        metrics.WORKER_ACTIVE_SLOTS.inc()
        try:
            error = self._call_task(ctx)
        finally:
            metrics.WORKER_ACTIVE_SLOTS.dec()
            slot = self.slots.get(run_id)
            if slot and slot.timer:
                slot.timer.cancel()
        outcome = self._record_outcome(ctx, error)
        metrics.WORKER_RUNS_FINISHED.labels(outcome=outcome).inc()
        self._finished_runs += 1
        if self.max_runs and self._finished_runs >= self.max_runs:
            self.stop()
        if outcome == SUPERSEDED:
            return  # not ours any more: no ack, no lease to give back
        if outcome == SHUTDOWN:
            self._hand_back(entry)
            return
        self.queue.finish(entry, self.id)

    def _call_task(self, ctx: TaskContext) -> dict[str, Any] | None:
        """Run the task; the run's error when it failed, else None."""
        name = str(ctx.spec.get("task", ""))
        func = get_task(name)
        if func is None:
            return {"code": "unknown_task", "message": f"no task named {name!r} on this worker"}
        if ctx.stopping:
            return None
        try:
            func(ctx.input, ctx)
            ctx.flush()  # every checkpoint stored before the run's status changes
        except TaskStopped:
            return None
        except TaskError as exc:
            return {"code": exc.code, "message": str(exc)[:4000], **exc.fields}
        except Exception as exc:
            if ctx.stopping:
                return None
            logger.exception("task raised", extra={"runId": ctx.run_id, "task": name})
            return {"code": "task_error", "message": f"{type(exc).__name__}: {exc}"[:4000]}
        finally:
            ctx.flush_quietly()  # a failed task's checkpoints too, before its status changes
            ctx.close()
            close_old_connections()
        return None

    def _record_outcome(self, ctx: TaskContext, error: dict[str, Any] | None) -> str:
        """Write the run's end unless a stop already decided it; the outcome's name."""
        reason = ctx.stop_reason
        if reason in (CANCELED, SUPERSEDED, SHUTDOWN):
            return reason
        if reason == TIMEOUT:
            self._fail_timeout(ctx)  # normally done by the timer already
            return TIMEOUT
        status = states.FAILED if error else states.COMPLETED
        try:
            with tracing.span("run.finish", **{"run.id": ctx.run_id, "run.status": status}):
                run = services.finish_attempt(ctx.run_id, ctx.attempt, status, error=error)
            if run.status == states.PENDING:
                return RETRYING  # back to pending for a later attempt, which admission sends anew
        except RunFinished:
            return CANCELED  # canceled (or timed out) while finishing
        except AttemptSuperseded:
            return SUPERSEDED
        finally:
            close_old_connections()
        return status

    def _arm_timeout(self, ctx: TaskContext) -> None:
        seconds = ctx.spec.get("timeoutSeconds")
        if not seconds:
            return

        def expire() -> None:
            if ctx.stopping:
                return
            # Fail first, then stop: once the task returns the worker must find the run final.
            ctx.flush_quietly()  # what the task emitted in time is kept
            self._fail_timeout(ctx)
            ctx.request_stop(TIMEOUT)

        timer = threading.Timer(float(seconds), expire)
        timer.daemon = True
        slot = self.slots.get(ctx.run_id)
        if slot is None:
            return
        slot.timer = timer
        timer.start()

    def _fail_timeout(self, ctx: TaskContext) -> None:
        seconds = ctx.spec.get("timeoutSeconds")
        actor = audit_context.begin(audit_context.worker_actor(ctx.run_id))  # a timer thread of its own
        try:
            services.fail_run(
                ctx.run_id, "timeout", f"the run exceeded timeoutSeconds ({seconds})", attempt=ctx.attempt
            )
        except (RunFinished, AttemptSuperseded):
            pass
        except DatabaseError:
            logger.exception("could not record the timeout", extra={"runId": ctx.run_id})
        finally:
            close_old_connections()
            audit_context.end(actor)

    def _hand_back(self, entry: Entry) -> None:
        """Shutting down mid-run: make the entry reclaimable now by another worker."""
        keys = self.queue.keys
        try:
            self.queue.redis.xclaim(
                entry.stream or keys.stream,
                keys.group,
                self.id,
                0,
                [entry.entry_id],
                idle=HAND_BACK_IDLE_MS,
                justid=True,
            )
        finally:
            self._release(entry.run_id)
        logger.info("run handed back", extra={"runId": entry.run_id, "worker": self.id})

    def _release(self, run_id: str) -> None:
        try:
            self.queue.release_lease(run_id, self.id)
        except redis.RedisError:
            logger.warning("lease not released (it lapses)", extra={"runId": run_id})
