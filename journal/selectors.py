"""Reading the run journal: the live run list, webhook deliveries and the
commands all read through these.

Ids become visible in increasing order (journal.services), so "every entry
after N" is gap-free: a reader that keeps the last id it handled and asks
for what comes after it never misses or repeats an entry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Max, Min, QuerySet

from journal.models import Clock, Entry


@dataclass(frozen=True)
class EntryFilter:
    """Which entries a reader wants; None (or empty) means any."""

    owner: str | None = None
    mode: str | None = None
    types: frozenset[str] = frozenset()
    schedule_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None

    def apply(self, queryset: QuerySet[Entry]) -> QuerySet[Entry]:
        if self.owner is not None:
            queryset = queryset.filter(owner=self.owner)
        if self.mode is not None:
            queryset = queryset.filter(mode=self.mode)
        if self.types:
            queryset = queryset.filter(type__in=sorted(self.types))
        if self.schedule_id is not None:
            queryset = queryset.filter(schedule_id=self.schedule_id)
        if self.run_id is not None:
            queryset = queryset.filter(run_id=self.run_id)
        return queryset

    def matches(self, entry: Entry) -> bool:
        """The same test as `apply`, for entries already read."""
        return (
            (self.owner is None or entry.owner == self.owner)
            and (self.mode is None or entry.mode == self.mode)
            and (not self.types or entry.type in self.types)
            and (self.schedule_id is None or entry.schedule_id == self.schedule_id)
            and (self.run_id is None or entry.run_id == self.run_id)
        )


ANY = EntryFilter()


def entries_after(after_id: int, *, limit: int, filters: EntryFilter = ANY) -> list[Entry]:
    """Matching entries with id > `after_id`, oldest first, at most `limit`."""
    return list(filters.apply(Entry.objects.filter(id__gt=after_id)).order_by("id")[:limit])


def replay_start(count: int, filters: EntryFilter = ANY) -> int:
    """The id after which the newest `count` matching entries come (0: from the first)."""
    if count <= 0:
        return newest_id()
    ids = filters.apply(Entry.objects.all()).order_by("-id").values_list("id", flat=True)
    before = ids[count : count + 1].first()
    return before if before is not None else 0


def newest_id() -> int:
    """The id of the newest entry, 0 when there is none."""
    return Entry.objects.aggregate(newest=Max("id"))["newest"] or 0


def oldest_id() -> int | None:
    """The id of the oldest entry retention kept, None when there is none."""
    return Entry.objects.aggregate(oldest=Min("id"))["oldest"]


def entries_of_run(run_id: uuid.UUID | str) -> list[Entry]:
    """A run's entries, oldest first (the admin and `runs_show`)."""
    return list(Entry.objects.filter(run_id=run_id).order_by("id"))


def next_id() -> int:
    """The id the next entry will get (retention never lowers it)."""
    last = Clock.objects.values_list("last_id", flat=True).first()
    return max(last or 0, newest_id()) + 1


def first_kept_id() -> int:
    """The oldest entry's id; when retention left none, the id of the next one."""
    oldest = oldest_id()
    return oldest if oldest is not None else next_id()
