"""A run list subscriber that catches up while the tail reads on gets every
entry exactly once, in id order, however the two overlap."""

from __future__ import annotations

import uuid

from journal.models import Entry
from journal.selectors import ANY
from runs.stream.journal_tail import ListEntry, ListSubscriber


def entries(*ids: int) -> list[ListEntry]:
    return [ListEntry(i, Entry(id=i, run_id=uuid.uuid4()), f"{i};".encode()) for i in ids]


def written(subscriber: ListSubscriber) -> list[int]:
    return [item.id for _, item in subscriber.frames if item is not None]


def test_held_entries_and_catch_up_reads_that_overlap_give_each_id_once():
    # Catching up from 3; the tail reads 5..9 and 10..11 meanwhile; the catch-up
    # reads find 4..8 and then 9..10 (a short read: caught up).
    for tail_first in (True, False):
        subscriber = ListSubscriber(ANY, pos=3)
        if tail_first:
            subscriber.offer(entries(5, 6, 7, 8, 9), max_buffered=100)
        subscriber.catch_up(entries(4, 5, 6, 7, 8))
        if not tail_first:
            subscriber.offer(entries(5, 6, 7, 8, 9), max_buffered=100)
        subscriber.offer(entries(10, 11), max_buffered=100)
        subscriber.catch_up(entries(9, 10))
        subscriber.go_live()
        subscriber.offer(entries(11, 12), max_buffered=100)
        assert written(subscriber) == list(range(4, 13)), tail_first


def test_nothing_reaches_the_client_before_the_catch_up_that_precedes_it():
    subscriber = ListSubscriber(ANY, pos=0)
    subscriber.offer(entries(7, 8), max_buffered=100)
    assert written(subscriber) == []  # held: 1..6 have not been read yet
    subscriber.catch_up(entries(1, 2, 3, 4, 5, 6, 7))
    subscriber.go_live()
    assert written(subscriber) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_subscriber_too_far_behind_is_closed_to_resume_from_the_table():
    subscriber = ListSubscriber(ANY, pos=0)
    subscriber.go_live()
    for first in range(1, 30, 5):
        subscriber.offer(entries(*range(first, first + 5)), max_buffered=20)
    assert subscriber.done
    assert subscriber.frames == []
