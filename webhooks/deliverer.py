"""Sends deliveries: what `manage.py runwebhooks` runs.

Claiming: a deliverer takes due deliveries with `SELECT … FOR UPDATE SKIP
LOCKED` and, in the same short transaction, stamps them with a claim token
and moves their `next_attempt_at` to the claim's expiry. Deliverers skip
each other's locked rows, and a committed claim hides the row from every
other deliverer until it expires, so one attempt is never sent by two at
once. The HTTP exchange runs outside any transaction; its outcome is
written only where the claim token still matches. A deliverer killed
mid-attempt leaves its claim to expire: the delivery is then due again and
another deliverer (or the same one, restarted) sends it: at least once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import lru_cache
from types import FrameType

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from journal.wakeups import JournalWakeups
from webhooks import fanout, metrics, secrets, selectors, services, signing, transport
from webhooks.models import Delivery

logger = logging.getLogger("webhooks.deliverer")

_DB_ERRORS = (OperationalError, InterfaceError)
_GAUGE_INTERVAL_SECONDS = 5.0
_MAX_BACKOFF_SECONDS = 5.0
_GATHER_SECONDS = 0.02


@lru_cache(maxsize=4096)
def _decrypted(token: str) -> str:
    return secrets.decrypt(token)


def signing_secrets(delivery: Delivery, now: datetime) -> list[str]:
    """What signs an attempt made at `now`: a subscription's secret, and the one
    its last rotation replaced while that overlap lasts; or WEBHOOK_SECRET's for
    a per-run webhook."""
    webhook = delivery.webhook
    if webhook is None:
        return secrets.server_secrets()
    signing = [_decrypted(webhook.secret_encrypted)]
    if webhook.previous_secret_signs_until(now):
        signing.append(_decrypted(webhook.previous_secret_encrypted))
    return signing


def release_connection() -> None:
    """Give this thread's database connection back to the pool."""
    connection.close()


def heal_database() -> None:
    """After a database error: drop this thread's connection and have the pool
    test its idle ones (a restart leaves every one of them dead)."""
    pool = getattr(connection, "pool", None) if connection.vendor == "postgresql" else None
    try:
        connection.close()
        if pool is not None:
            pool.check()
    except Exception:  # the database may still be down; the next try heals
        logger.debug("pool check failed", exc_info=True)


class Deliverer:
    """Claims due deliveries and sends them, `concurrency` at a time, until stopped.

    Attempts run on a pool of threads that only talk HTTP; this loop records
    their outcomes in batches (successes in one statement per claim), fans
    out new journal entries, and claims as many deliveries as slots are
    free, so the database sees a few statements per round, not per attempt.
    """

    def __init__(self, *, concurrency: int | None = None, poll_seconds: float | None = None) -> None:
        self.concurrency = concurrency or settings.WEBHOOK_CONCURRENCY
        self.poll_seconds = poll_seconds if poll_seconds is not None else settings.WEBHOOK_POLL_SECONDS
        self.timeout = settings.WEBHOOK_TIMEOUT_SECONDS
        self.pool = transport.new_pool(self.concurrency)
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="webhook")
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self._in_flight = 0
        # (when it finished, delivery, outcome), waiting to be recorded.
        self._finished: list[tuple[float, Delivery, transport.Outcome]] = []
        self._fan_out_at = 0.0
        self.journal_woke = threading.Event()
        self._gauges_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            logger.info("stopping on %s: finishing attempts in flight", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        """Fan out, claim and send until stop(); then finish what is in flight."""
        listener = threading.Thread(target=self._listen_to_journal, name="webhook-journal", daemon=True)
        listener.start()
        logger.info("deliverer ready", extra={"concurrency": self.concurrency})
        try:
            self._loop()
        finally:
            listener.join(5)
            self._executor.shutdown(wait=True)
            self._record_what_is_left()
            self.pool.close()
            release_connection()
            logger.info("deliverer stopped")

    def _listen_to_journal(self) -> None:
        """Wake the loop to fan out as soon as a journal entry commits, rather
        than at the next poll (which still catches what a lost connection missed)."""
        while not self._stopping.is_set():
            try:
                with JournalWakeups(application_name="orchestrator-webhooks-listener") as wakeups:
                    while not self._stopping.is_set():
                        if wakeups.wait(min(self.poll_seconds, 1.0)):
                            self.journal_woke.set()
                            self._wake.set()
            except Exception as exc:  # the database is down: the poll fans out meanwhile
                logger.warning("journal wake-ups unavailable (%s)", exc.__class__.__name__)
                self._stopping.wait(_MAX_BACKOFF_SECONDS)
            finally:
                release_connection()

    def _loop(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                busy = self.step()
                backoff = 0.1
            except _DB_ERRORS as exc:
                logger.warning(
                    "database unavailable (%s): retrying in %.1fs", exc.__class__.__name__, backoff
                )
                heal_database()
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            if not busy:
                self._wake.wait(self.poll_seconds)
                self._gather()

    def _gather(self) -> None:
        """Under load, let finished attempts pile up a little (up to 20 ms, or
        until half the slots are free), so a round records and claims them in
        a few statements instead of a round per attempt."""
        wanted = max(1, self.concurrency // 2)
        with self._slot_freed:
            self._slot_freed.wait_for(
                lambda: (
                    self._in_flight == 0
                    or self.concurrency - self._in_flight >= wanted
                    or self._stopping.is_set()
                ),
                timeout=_GATHER_SECONDS,
            )

    def _record_what_is_left(self) -> None:
        """At shutdown: record the last outcomes, riding out a database outage
        while their claims last (after that they are sent again anyway)."""
        deadline = time.monotonic() + services.claim_seconds()
        backoff = 0.1
        while self._finished and time.monotonic() < deadline:
            try:
                self._record_finished()
            except _DB_ERRORS:
                heal_database()
                time.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
        if self._finished:
            logger.warning("%d outcomes not recorded: their deliveries are sent again", len(self._finished))

    # -- one round ---------------------------------------------------------------------------
    def step(self) -> bool:
        """One round: record finished attempts, fan out new journal entries
        (when woken, or every poll interval), claim as many due deliveries as
        slots are free and start them. True when there may be more to do now."""
        self._record_finished()
        fanned = 0
        now = time.monotonic()
        if self.journal_woke.is_set() or now - self._fan_out_at >= self.poll_seconds:
            self.journal_woke.clear()
            self._fan_out_at = now
            fanned = services.fan_out()
        free = self._free_slots()
        claimed = services.claim_deliveries(free)
        for delivery in claimed:
            self._start(delivery)
        self._update_gauges()
        release_connection()
        return fanned >= fanout.BATCH or (free > 0 and len(claimed) == free)

    def _free_slots(self) -> int:
        with self._lock:
            return self.concurrency - self._in_flight

    def _start(self, delivery: Delivery) -> None:
        with self._lock:
            self._in_flight += 1
        metrics.IN_FLIGHT.inc()
        self._executor.submit(self._attempt, delivery)

    def _attempt(self, delivery: Delivery) -> None:
        outcome: transport.Outcome | None = None
        try:
            outcome = self.send(delivery)
        except Exception:
            # Left claimed: another attempt follows when the claim expires.
            logger.exception("delivery attempt failed unexpectedly", extra={"deliveryId": str(delivery.id)})
        finally:
            with self._slot_freed:
                self._in_flight -= 1
                if outcome is not None:
                    self._finished.append((time.monotonic(), delivery, outcome))
                self._slot_freed.notify()
            metrics.IN_FLIGHT.dec()
            self._wake.set()

    def send(self, delivery: Delivery) -> transport.Outcome:
        """One attempt over HTTP (no database access: the loop records it)."""
        body = delivery.payload.encode()
        now = timezone.now()
        signers = signing_secrets(delivery, now)
        headers = signing.signed_headers(str(delivery.id), delivery.payload, signers, now)
        outcome = transport.post(self.pool, delivery.target.url, headers, body, self.timeout)
        metrics.DELIVERY_ATTEMPTS.labels(outcome=outcome.kind).inc()
        metrics.ATTEMPT_SECONDS.observe(outcome.seconds)
        if not outcome.succeeded:
            logger.warning(
                "delivery attempt %s",
                outcome.kind,
                extra={
                    "deliveryId": str(delivery.id),
                    "attempt": delivery.attempts,
                    "status": outcome.status,
                    "error": outcome.error,
                    "event": "webhook_attempt",
                },
            )
        return outcome

    def _record_finished(self) -> None:
        """Write the outcomes of finished attempts. On a database error they
        stay queued for the next round, unless their claim has expired by then
        (another deliverer may have taken the delivery over)."""
        with self._lock:
            batch, self._finished = self._finished, []
        if not batch:
            return
        expired_before = time.monotonic() - services.claim_seconds()
        batch = [item for item in batch if item[0] > expired_before]
        try:
            successes = [(delivery, outcome) for _, delivery, outcome in batch if outcome.succeeded]
            if successes:
                recorded = services.record_successes(successes)
                self._note_successes([delivery for delivery, _ in successes], recorded)
            for _, delivery, outcome in batch:
                if not outcome.succeeded and not services.record_attempt(delivery, outcome):
                    logger.info(
                        "claim lost before the outcome was recorded", extra={"deliveryId": str(delivery.id)}
                    )
        except BaseException:
            with self._lock:
                self._finished = batch + self._finished
            raise

    def _note_successes(self, deliveries: list[Delivery], recorded: int) -> None:
        now = timezone.now()
        for delivery in deliveries:
            metrics.DELIVERY_LAG_SECONDS.observe((now - delivery.event_at).total_seconds())
        if recorded < len(deliveries):
            logger.info("%d succeeded attempts had lost their claim", len(deliveries) - recorded)

    def _update_gauges(self) -> None:
        now = time.monotonic()
        if now - self._gauges_at < _GAUGE_INTERVAL_SECONDS:
            return
        self._gauges_at = now
        due, oldest = selectors.backlog()
        metrics.BACKLOG.set(due)
        metrics.OLDEST_PENDING_SECONDS.set((timezone.now() - oldest).total_seconds() if oldest else 0.0)
