"""Wake-ups for event streams, one hub per server process.

The hub keeps one `RunTail` per followed run. A tail reads the run and its
new checkpoints once per wake-up and hands the same encoded frames to every
subscriber of that run, so a burst of wake-ups for a popular run costs one
query, not one per subscriber, and an idle subscriber holds no database
connection: the tail borrows a pooled one for the read and gives it back.

A stream opening on a run whose tail is current (no wake-up since its last
read began) starts from the run that read found, without a query: every
commit after that read's start wakes the tail again, and the new subscriber
takes part in that read. Heartbeats come from one timer per hub, not one per
stream.

Its wake-ups come from `runs.stream.listener`; its reads are `runs.stream.reads`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from runs import notify, states
from runs.models import Run
from runs.stream import listener, sse
from runs.stream.journal_tail import JournalTail
from runs.stream.reads import TailRead, drop_broken_connections, load_run, observe_delivery, read_tail

logger = logging.getLogger("runs.stream")


class Subscriber:
    """One open stream: where it stands and the frames waiting to be written."""

    __slots__ = ("attempt", "done", "frames", "heartbeat", "pos", "quiet", "run_id", "status", "waiter")

    def __init__(
        self, run_id: uuid.UUID, pos: datetime | None, status: str, attempt: int | None = None
    ) -> None:
        self.run_id = run_id
        # The ts of the newest checkpoint queued for this client (its resume point).
        self.pos = pos
        self.status = status
        # The attempt of the last status sent: a retry changes it (None: not known yet).
        self.attempt = attempt
        # (frame, checkpoint ts or None) in write order.
        self.frames: list[tuple[bytes, datetime | None]] = []
        # Set while the stream waits for something to write: a bare future,
        # not an asyncio.Event (which holds a deque for its whole life), as
        # thousands of streams idle at once.
        self.waiter: asyncio.Future[None] | None = None
        # No more frames will come: write what is queued, then close.
        self.done = False
        # Nothing written since the hub's last heartbeat tick; `heartbeat`:
        # a whole tick passed so, and the stream owes its client a comment.
        self.quiet = False
        self.heartbeat = False

    def deliver(self, read: TailRead, max_buffered: int) -> None:
        if self.done:
            return
        new_attempt = read.attempt is not None and self.attempt is not None and read.attempt != self.attempt
        if self.attempt is None:
            self.attempt = read.attempt
        changed = read.status != self.status or new_attempt
        if (
            changed
            and self.status == states.PENDING
            and read.status != states.RUNNING
            and read.was_running_frame is not None
        ):
            # pending, running and a final status (or pending again, for a
            # retry), all between two reads: the run's status changes are
            # few and in one order, so the missed one is known, and every
            # subscriber sees each change.
            self.frames.append((read.was_running_frame, None))
            self.status = states.RUNNING
        if not read.final and changed:
            self.frames.append((read.status_frame, None))
            self.status = read.status
            self.attempt = read.attempt
        for ts, frame in read.checkpoints:
            # Tails read from the slowest subscriber's position; skip what
            # this one already has, so nothing is sent twice.
            if self.pos is None or ts > self.pos:
                self.frames.append((frame, ts))
                self.pos = ts
        if read.final and read.complete:
            if read.status != self.status:
                self.frames.append((read.status_frame, None))
                self.status = read.status
            self.frames.append((read.end_frame, None))
            self.done = True
        if len(self.frames) > max_buffered:
            # A client this far behind reconnects with its Last-Event-ID and
            # catches up from the table instead of growing our memory.
            logger.info("closing a lagging event stream", extra={"runId": str(self.run_id)})
            self.frames.clear()
            self.done = True
        if self.frames or self.done:
            self.wake()

    def close(self) -> None:
        self.done = True
        self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until there is something to write (or the stream is over)."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def take(self) -> bytes:
        """What to write now (frames, or a heartbeat when nothing else waits)."""
        frames, self.frames = self.frames, []
        self.quiet = False
        if frames:
            self.heartbeat = False
            return frames[0][0] if len(frames) == 1 else b"".join(frame for frame, _ in frames)
        if self.heartbeat:
            self.heartbeat = False
            return sse.KEEP_ALIVE
        return b""


class RunTail:
    """Reads one run for all its subscribers in this process; wake-ups coalesce."""

    def __init__(self, hub: Hub, run_id: uuid.UUID) -> None:
        self.hub = hub
        self.run_id = run_id
        self.subscribers: set[Subscriber] = set()
        self.dirty = False
        self.task: asyncio.Task[None] | None = None
        # The hub's wake count at this run's last change wake-up (a commit's
        # NOTIFY, or a listener reconnect), and the run as the last complete
        # read found it with the wake count when that read began. The
        # snapshot is current while no change wake-up came after that.
        self.notified = hub.wakes
        self.snapshot: Run | None = None
        self.snapshot_wakes = -1
        # Delivery latency is observed once per checkpoint and process, for
        # those newer than this (live ones, not a late subscriber's replay).
        self.observed_after = time.time()

    def current_snapshot(self) -> tuple[Run, int] | None:
        if self.snapshot is None or self.notified > self.snapshot_wakes:
            return None
        return self.snapshot, self.snapshot_wakes

    def changed(self) -> None:
        """The run or its checkpoints changed (or may have): read again."""
        self.notified = self.hub.count_wake()
        self.wake()

    def wake(self) -> None:
        self.dirty = True
        if self.task is None:
            self.task = self.hub.spawn(self._drain())

    async def _drain(self) -> None:
        failures = 0
        try:
            while self.dirty:
                # Cleared before the read: a wake-up arriving during the read
                # (a commit the read may not see) makes the loop read again.
                self.dirty = False
                subscribers = [s for s in self.subscribers if not s.done]
                if not subscribers:
                    break
                since = None if any(s.pos is None for s in subscribers) else min(s.pos for s in subscribers)
                wakes = self.hub.wakes
                try:
                    read = await self.hub.db(read_tail, self.run_id, since, self.hub.batch_size)
                except Exception:
                    failures += 1
                    logger.warning(
                        "event stream read failed", exc_info=True, extra={"runId": str(self.run_id)}
                    )
                    self.dirty = True
                    await self.hub.recover_reads(failures)
                    continue
                failures = 0
                if read is None:
                    for subscriber in subscribers:
                        subscriber.close()
                    continue
                if not read.complete:
                    self.dirty = True
                elif read.run is not None:
                    self.snapshot, self.snapshot_wakes = read.run, wakes
                for subscriber in subscribers:
                    subscriber.deliver(read, self.hub.max_buffered)
                self._observe(read)
        finally:
            self.task = None
            if not self.subscribers:
                self.hub.forget(self)

    def _observe(self, read: TailRead) -> None:
        """Once per fan-out, not once per subscriber: the frames were handed to
        every stream of the run in this process together."""
        after = self.observed_after
        for ts, _ in read.checkpoints:
            seconds = ts.timestamp()
            if seconds > after:
                observe_delivery(ts)
                after = seconds
        self.observed_after = after


@dataclass
class Hub:
    """The process's event-stream state, bound to its event loop."""

    loop: asyncio.AbstractEventLoop
    keepalive: float = 15.0
    batch_size: int = 500
    max_buffered: int = 5000
    db_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    tails: dict[uuid.UUID, RunTail] = field(default_factory=dict)
    listening: bool = False
    closing: bool = False
    background: list[asyncio.Task[None]] = field(default_factory=list)
    run_loads: dict[uuid.UUID, tuple[asyncio.Task[Run | None], int]] = field(default_factory=dict)
    # Change wake-ups so far (see RunTail.notified).
    wakes: int = 0
    heartbeats: asyncio.Task[None] | None = None
    # The run list streams (GET /runs/events) of this process.
    journal: JournalTail = field(init=False)

    def __post_init__(self) -> None:
        self.journal = JournalTail(self)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """A task serving every stream, so not in the context (request id) of
        whichever request happened to start it."""
        return self.loop.create_task(coro, context=contextvars.Context())

    async def db(self, func: Any, *args: Any) -> Any:
        """Run a sync ORM read off the loop; at most `db_slots` at once."""
        async with self.db_slots:
            return await sync_to_async(func, thread_sensitive=False)(*args)

    async def recover_reads(self, failures: int) -> None:
        """After the `failures`-th failed read in a row: a database restart
        leaves every pooled connection dead, so test them all at once, then
        back off before the next read."""
        try:
            await self.db(drop_broken_connections)
        except Exception:
            logger.warning("database unreachable for event streams", exc_info=True)
        await asyncio.sleep(min(0.05 * 2**failures, 5.0))

    def count_wake(self) -> int:
        self.wakes += 1
        return self.wakes

    async def run_snapshot(self, run_id: uuid.UUID) -> tuple[Run | None, int]:
        """The run, and the wake count it is current at (see `subscribe`).

        From the run's tail when that is current, without a query; otherwise
        as one read in flight finds it, shared by every stream opening on it
        meanwhile (a reconnect storm costs one query per run). Sharing a read
        that began before the caller arrived is safe: a final status never
        changes, and anything newer than the snapshot reaches the stream
        through its tail's reads.
        """
        tail = self.tails.get(run_id)
        found = tail.current_snapshot() if tail is not None else None
        if found is not None:
            return found
        pending = self.run_loads.get(run_id)
        if pending is None:
            # A task of its own: a caller that goes away must not cancel the
            # read the others are waiting for.
            task = self.spawn(self.db(load_run, run_id))
            pending = self.run_loads[run_id] = (task, self.wakes)
            task.add_done_callback(lambda _: self.run_loads.pop(run_id, None))
        task, wakes = pending
        return await asyncio.shield(task), wakes

    # --- subscribers -------------------------------------------------------
    def subscribe(self, subscriber: Subscriber, current_at: int | None = None) -> None:
        """Follow the subscriber's run. `current_at`: the subscriber holds
        everything committed before the wake count was `current_at` (its
        snapshot's); unless the run changed since, its tail need not read
        for it, as the next change wakes the tail with the subscriber in it."""
        if self.closing:
            subscriber.close()
            return
        if self.heartbeats is None:
            self.heartbeats = self.spawn(self._heartbeats())
            self.background.append(self.heartbeats)
        tail = self.tails.get(subscriber.run_id)
        if tail is None:
            # A run nobody followed here: its wake-ups were not counted.
            tail = self.tails[subscriber.run_id] = RunTail(self, subscriber.run_id)
            current_at = None
        tail.subscribers.add(subscriber)
        if current_at is None or tail.notified > current_at:
            tail.wake()

    async def _heartbeats(self) -> None:
        """Every half keep-alive interval, a comment to each stream that wrote
        nothing for a whole such interval: so no stream is silent for longer
        than the interval, with one timer for all of them."""
        period = self.keepalive / 2
        while True:
            await asyncio.sleep(period)
            for tail in self.tails.values():
                for subscriber in tail.subscribers:
                    if subscriber.quiet:
                        subscriber.heartbeat = True
                        subscriber.wake()
                    subscriber.quiet = True

    def unsubscribe(self, subscriber: Subscriber) -> None:
        tail = self.tails.get(subscriber.run_id)
        if tail is None:
            return
        tail.subscribers.discard(subscriber)
        if not tail.subscribers and tail.task is None:
            self.forget(tail)

    def forget(self, tail: RunTail) -> None:
        if self.tails.get(tail.run_id) is tail and not tail.subscribers:
            del self.tails[tail.run_id]

    def subscriber_count(self) -> int:
        return sum(len(tail.subscribers) for tail in self.tails.values())

    # --- wake-ups ----------------------------------------------------------
    def wake(self, run_id: str) -> None:
        try:
            key = uuid.UUID(run_id)
        except ValueError:
            return
        tail = self.tails.get(key)
        if tail is not None:
            tail.changed()

    def wake_all(self) -> None:
        for tail in list(self.tails.values()):
            tail.changed()
        self.journal.wake()

    def wake_journal(self, _entry_id: str = "") -> None:
        self.journal.wake()

    def wake_journal_threadsafe(self, entry_id: str) -> None:
        """For in-process wake-ups, called after commit on the writer's thread."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake_journal, entry_id)

    def wake_threadsafe(self, run_id: str) -> None:
        """For in-process wake-ups, called after commit on the writer's thread."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake, run_id)

    # --- shutdown ----------------------------------------------------------
    def close_all(self) -> None:
        """End every open stream after what is queued; clients resume with their Last-Event-ID."""
        for tail in list(self.tails.values()):
            for subscriber in list(tail.subscribers):
                subscriber.close()
        self.journal.close_all()

    def begin_shutdown(self) -> None:
        """Close every stream so that clients reconnect elsewhere with their Last-Event-ID."""
        self.closing = True
        self.close_all()
        for task in self.background:
            task.cancel()


_hub: Hub | None = None
_hub_lock = threading.Lock()


def _install_shutdown_hook(hub: Hub) -> None:
    """Chain onto the server's SIGTERM/SIGINT handler: the server then waits
    for open responses to finish, so streams must end on their own."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            hub.loop.call_soon_threadsafe(hub.begin_shutdown)
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

        signal.signal(sig, handler)


def get_hub() -> Hub:
    """The hub of the running event loop, started on first use."""
    global _hub
    loop = asyncio.get_running_loop()
    with _hub_lock:
        if _hub is not None and _hub.loop is loop:
            return _hub
        hub = Hub(
            loop=loop,
            keepalive=settings.SSE_KEEPALIVE_SECONDS,
            batch_size=settings.SSE_BATCH_SIZE,
            max_buffered=settings.SSE_MAX_BUFFERED_EVENTS,
            db_slots=asyncio.Semaphore(settings.SSE_DB_CONCURRENCY),
        )
        if connection.vendor == "postgresql":
            params = listener.listener_params()
            listen = listener.listen_forever(hub, params, settings.SSE_LISTEN_MAX_BACKOFF_SECONDS)
            hub.background.append(hub.spawn(listen))
        else:
            notify.add_local_listener(hub.wake_threadsafe)
            notify.add_local_listener(hub.wake_journal_threadsafe, notify.JOURNAL_CHANNEL)
        interval = listener.poll_interval()
        if interval > 0:
            hub.background.append(hub.spawn(listener.poll_forever(hub, interval)))
        _install_shutdown_hook(hub)
        _hub = hub
        return hub


def current_hub() -> Hub | None:
    """The hub started last in this process, if any (for diagnostics)."""
    return _hub
