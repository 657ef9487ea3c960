"""The worker's heartbeat: tells the fleet it is alive (runs.redis.fleet),
renews the leases of the runs it holds, and catches a cancel or takeover
that the pub/sub listener missed."""

from __future__ import annotations

import logging
import os
import socket
import threading

import redis
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from runs import selectors, states
from runs.redis import fleet
from runs.redis.queue import RunQueue
from runs.redis.worker.context import CANCELED, SUPERSEDED
from runs.redis.worker.slots import Slot, Slots

logger = logging.getLogger("runs.worker")


class Heartbeat:
    def __init__(self, queue: RunQueue, worker_id: str, lease_ms: int, slots: Slots, slot_count: int) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.lease_ms = lease_ms
        self.slots = slots
        self.slot_count = slot_count
        self.started_at = timezone.now()

    def announce(self, *, stopped: bool = False) -> None:
        """This worker's fleet record: alive (or stopped) now, and the runs it holds."""
        try:
            fleet.publish(
                self.queue,
                name=self.worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                slots=self.slot_count,
                runs=[] if stopped else [slot.ctx.run_id for slot in self.slots.all()],
                started_at=self.started_at,
                stopped=stopped,
            )
        except redis.RedisError as exc:
            logger.warning("fleet heartbeat failed", extra={"reason": exc.__class__.__name__})

    def run(self, closing: threading.Event) -> None:
        """Beat every third of the lease until `closing` is set."""
        interval = settings.WORKER_LEASE_SECONDS / 3
        self.announce()
        while not closing.wait(interval):
            self.announce()
            slots = [slot for slot in self.slots.all() if not slot.ctx.stopping]
            if not slots:
                continue
            try:
                self.renew(slots)
            except redis.RedisError as exc:
                # Keep working: nobody can take the runs over while Redis is away either.
                logger.warning("heartbeat failed", extra={"reason": exc.__class__.__name__})
            try:
                self.check_database(slots)
            except DatabaseError as exc:
                logger.warning("status check failed", extra={"reason": exc.__class__.__name__})
            finally:
                close_old_connections()

    def renew(self, slots: list[Slot]) -> None:
        held = [(slot.ctx.run_id, slot.entry.entry_id, slot.entry.stream) for slot in slots]
        renewed = self.queue.renew_leases(held, self.worker_id, self.lease_ms)
        for slot, kept in zip(slots, renewed, strict=True):
            if not kept:
                logger.warning("lease taken by another worker: stopping", extra={"runId": slot.ctx.run_id})
                slot.ctx.request_stop(SUPERSEDED)

    def check_database(self, slots: list[Slot]) -> None:
        """The slow path behind pub/sub: a cancel or takeover the listener missed."""
        current = selectors.statuses_of([slot.ctx.run_id for slot in slots])
        for slot in slots:
            status, attempt = current.get(slot.ctx.run_id, (states.CANCELED, slot.ctx.attempt))
            if slot.ctx.attempt and attempt != slot.ctx.attempt:
                slot.ctx.request_stop(SUPERSEDED)
            elif status == states.CANCELED:
                slot.ctx.request_stop(CANCELED)
