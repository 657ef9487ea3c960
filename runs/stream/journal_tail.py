"""The live run list (`GET /runs/events`): journal entries for many subscribers.

One `JournalTail` per process reads the journal once per wake-up, from the
newest id it has read, and hands each entry (encoded once) to every live
subscriber whose filters match it, so 2,000 open lists cost one query per
burst of changes, not 2,000, and an idle list holds no database connection.

A subscriber that starts behind the head (a resume, a replay) catches up on
its own with filtered reads, while the entries the tail reads meanwhile are
held for it; it goes live once a read comes back short. Every entry reaches
it exactly once, in id order (see docs/orchestrator_design.md, "The live
run list").
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from journal import selectors
from journal.models import Entry
from runs.stream import sse
from runs.stream.reads import release_connection
from runs.wire import format_ts

if TYPE_CHECKING:
    from runs.stream.hub import Hub

logger = logging.getLogger("runs.stream")


def entry_payload(entry: Entry) -> dict[str, Any]:
    return {
        "type": entry.type,
        "runId": str(entry.run_id),
        "status": entry.status,
        "at": format_ts(entry.at),
        "run": entry.run,
    }


@dataclass(frozen=True, slots=True)
class ListEntry:
    """A journal entry as read once for every subscriber of the process."""

    id: int
    entry: Entry
    frame: bytes


def read_entries(after_id: int, limit: int, filters: selectors.EntryFilter) -> list[ListEntry]:
    try:
        rows = selectors.entries_after(after_id, limit=limit, filters=filters)
    finally:
        release_connection()
    return [
        ListEntry(row.id, row, sse.event("run", entry_payload(row), event_id=str(row.id))) for row in rows
    ]


def read_newest_id() -> int:
    try:
        return selectors.newest_id()
    finally:
        release_connection()


class ListSubscriber:
    """One open run list: its filters, the last id queued for it, its frames."""

    __slots__ = ("done", "filters", "frames", "held", "live", "pos", "ready")

    def __init__(self, filters: selectors.EntryFilter, pos: int) -> None:
        self.filters = filters
        # The id of the newest entry queued for this client (its resume point).
        self.pos = pos
        # (frame, entry) in write order; entry None for frames that are not entries.
        self.frames: list[tuple[bytes, ListEntry | None]] = []
        # What the tail read while this subscriber was catching up.
        self.held: list[ListEntry] = []
        self.live = False
        self.ready = asyncio.Event()
        self.done = False

    def _queue(self, entries: list[ListEntry]) -> None:
        for item in entries:
            if item.id > self.pos:
                self.frames.append((item.frame, item))
                self.pos = item.id

    def offer(self, entries: list[ListEntry], max_buffered: int) -> None:
        """Entries the tail read, in id order, already matched against the filters."""
        if self.done:
            return
        if self.live:
            self._queue(entries)
        else:
            self.held.extend(entries)
        if len(self.frames) + len(self.held) > max_buffered:
            # A client this far behind reconnects with its Last-Event-ID and
            # catches up from the table instead of growing our memory.
            logger.info("closing a lagging run list stream")
            self.frames.clear()
            self.held.clear()
            self.done = True
        if self.frames or self.done:
            self.ready.set()

    def catch_up(self, entries: list[ListEntry]) -> None:
        self._queue(entries)

    def go_live(self) -> None:
        """After a short catch-up read: what was held, past what the reads found, then live."""
        self._queue(self.held)
        self.held = []
        self.live = True

    def close(self) -> None:
        self.done = True
        self.ready.set()


class JournalTail:
    """Reads the journal for every run list of this process; wake-ups coalesce."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        # Every entry up to `head` was handed to the subscribers present when
        # it was read. None: not started (no subscribers).
        self.head: int | None = None
        self.subscribers: set[ListSubscriber] = set()
        # The same subscribers by owner filter, then by filters: an entry is
        # matched once per distinct filter among the lists that may want it,
        # not once per subscriber (2,000 lists of 100 teams are 100 checks).
        self._groups: dict[str | None, dict[selectors.EntryFilter, set[ListSubscriber]]] = {}
        self.dirty = False
        self.task: asyncio.Task[None] | None = None
        self.starting: asyncio.Task[int] | None = None

    async def join(self, subscriber: ListSubscriber) -> None:
        """Add a subscriber; entries committed from now on reach it through `offer`.

        The head is read before the first subscriber joins: an entry that
        commits after that read has a larger id, so the tail reads it after
        its wake-up; one that committed before the subscriber joined is
        found by the subscriber's own catch-up reads.
        """
        while self.head is None:
            if self.starting is None:
                self.starting = self.hub.spawn(self.hub.db(read_newest_id))
            starting = self.starting
            try:
                head = await asyncio.shield(starting)
            except Exception:
                if self.starting is starting:
                    self.starting = None
                raise
            if self.head is None and self.starting is starting:
                self.head = head
        if self.hub.closing:
            subscriber.close()
            return
        self.subscribers.add(subscriber)
        filters = subscriber.filters
        self._groups.setdefault(filters.owner, {}).setdefault(filters, set()).add(subscriber)

    def leave(self, subscriber: ListSubscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.discard(subscriber)
            filters = subscriber.filters
            by_filters = self._groups[filters.owner]
            group = by_filters[filters]
            group.discard(subscriber)
            if not group:
                del by_filters[filters]
                if not by_filters:
                    del self._groups[filters.owner]
        self._stop_if_idle()

    def _stop_if_idle(self) -> None:
        if not self.subscribers and self.task is None:
            # Nobody follows the journal here: stop reading it until someone does.
            self.head = None
            self.starting = None

    def wake(self) -> None:
        if self.head is None or not self.subscribers:
            return
        self.dirty = True
        if self.task is None:
            self.task = self.hub.spawn(self._drain())

    def close_all(self) -> None:
        for subscriber in list(self.subscribers):
            subscriber.close()

    def _deliver(self, entries: list[ListEntry]) -> None:
        owners: set[str | None] = {None}
        owners.update(item.entry.owner for item in entries)
        for owner in owners:
            for filters, group in list(self._groups.get(owner, {}).items()):
                matching = [item for item in entries if filters.matches(item.entry)]
                if matching:
                    for subscriber in list(group):
                        subscriber.offer(matching, self.hub.max_buffered)

    async def _drain(self) -> None:
        failures = 0
        try:
            while self.dirty and self.head is not None and self.subscribers:
                # Cleared before the read: a wake-up during the read (a commit
                # it may not see) makes the loop read again.
                self.dirty = False
                try:
                    entries = await self.hub.db(read_entries, self.head, self.hub.batch_size, selectors.ANY)
                except Exception:
                    failures += 1
                    logger.warning("run list read failed", exc_info=True)
                    self.dirty = True
                    await self.hub.recover_reads(failures)
                    continue
                failures = 0
                if not entries:
                    continue
                self.head = entries[-1].id
                if len(entries) == self.hub.batch_size:
                    self.dirty = True
                self._deliver(entries)
        finally:
            self.task = None
            self._stop_if_idle()
