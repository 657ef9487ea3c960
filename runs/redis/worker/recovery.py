"""Finding runs that nobody is working on: entries of dead workers (reclaim)
and runs the queue lost (sweep)."""

from __future__ import annotations

import logging

import redis

from runs import metrics, selectors, states
from runs.redis import queue as run_queue
from runs.redis.queue import Entry, RunQueue

logger = logging.getLogger("runs.worker")

SWEEP_BATCH = 500
# A consumer that holds nothing and was idle this many lease periods belongs
# to a worker that is gone (a live one reads every few seconds).
FORGET_CONSUMER_AFTER_LEASES = 10

# A running run is an orphan when no worker holds its lease and its stream
# entry is gone (Redis lost both). A live worker re-takes a vanished lease at
# its next heartbeat, so the run is only re-sent once it has been seen
# without a lease for a whole lease period, by Redis' own clock.
# KEYS: guard, lease, orphan mark, then every priority's stream.
_ORPHAN_CHECK = """
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DEL', KEYS[3]) return 0 end
local gid = redis.call('GET', KEYS[1])
if gid then
  for i = 4, #KEYS do
    if #redis.call('XRANGE', KEYS[i], gid, gid) > 0 then redis.call('DEL', KEYS[3]) return 0 end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen = redis.call('GET', KEYS[3])
if not seen then redis.call('SET', KEYS[3], now, 'PX', tonumber(ARGV[1]) * 10) return 0 end
if now - tonumber(seen) >= tonumber(ARGV[1]) then redis.call('DEL', KEYS[3]) return 1 end
return 0
"""


class Reclaimer:
    """Takes over entries that sat unacknowledged, with no heartbeat, for a
    lease period: from every priority's stream, highest first."""

    def __init__(self, queue: RunQueue, consumer: str, lease_ms: int) -> None:
        self.queue = queue
        self.consumer = consumer
        self.lease_ms = lease_ms
        self._cursors = dict.fromkeys(queue.keys.streams, "0-0")

    def reclaim(self, count: int) -> list[Entry]:
        keys = self.queue.keys
        entries: list[Entry] = []
        for stream in keys.streams:
            if len(entries) >= count:
                break
            next_cursor, claimed, *_deleted = self.queue.redis.xautoclaim(
                stream,
                keys.group,
                self.consumer,
                self.lease_ms,
                start_id=self._cursors[stream],
                count=count - len(entries),
            )
            self._cursors[stream] = next_cursor
            for entry_id, fields in claimed:
                if not fields:
                    continue
                try:
                    entries.append(Entry.parse(entry_id, fields, stream))
                except ValueError:
                    logger.warning("unreadable queue entry dropped", extra={"entryId": entry_id})
                    self.queue.redis.xack(stream, keys.group, entry_id)
        if entries:
            metrics.WORKER_RUNS_RECLAIMED.inc(len(entries))
            logger.info(
                "reclaimed runs of a silent worker",
                extra={"runIds": [entry.run_id for entry in entries], "event": "runs_reclaimed"},
            )
        return entries


def sweep(queue: RunQueue, *, holder: str, interval_s: float, lease_ms: int, force: bool = False) -> int:
    """Send again the pending runs the queue lost, and the running runs whose
    worker and entry are both gone. Returns how many were sent.

    At most one worker sweeps per interval (a lock key), unless `force`.
    """
    if not force and not queue.redis.set(queue.keys.sweep_lock, holder, nx=True, px=int(interval_s * 1000)):
        return 0
    sent = _resend_pending(queue) + _resend_orphans(queue, lease_ms)
    if sent:
        logger.info("sweep re-sent runs", extra={"count": sent, "event": "sweep"})
    forgotten = queue.forget_consumers(idle_ms=lease_ms * FORGET_CONSUMER_AFTER_LEASES)
    if forgotten:
        logger.info("sweep removed consumers of gone workers", extra={"count": forgotten, "event": "sweep"})
    return sent


def _batches(statuses: tuple[str, ...]):
    batch = []
    for run in selectors.redis_runs_in(statuses).iterator(chunk_size=SWEEP_BATCH):
        batch.append(run)
        if len(batch) == SWEEP_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _resend_pending(queue: RunQueue) -> int:
    sent = 0
    for batch in _batches((states.PENDING,)):
        sent += queue.enqueue_many([(str(run.id), run_queue.entry_fields(run)) for run in batch])
    return sent


def _resend_orphans(queue: RunQueue, lease_ms: int) -> int:
    check = queue.redis.register_script(_ORPHAN_CHECK)
    sent = 0
    for batch in _batches((states.RUNNING,)):
        pipe = queue.redis.pipeline(transaction=False)
        for run in batch:
            run_id = str(run.id)
            keys = queue.keys
            check(
                keys=[keys.guard(run_id), keys.lease(run_id), keys.orphan(run_id), *keys.streams],
                args=[lease_ms],
                client=pipe,
            )
        for run, orphaned in zip(batch, pipe.execute(), strict=True):
            if orphaned and queue.enqueue(str(run.id), run_queue.entry_fields(run)):
                logger.warning(
                    "running run lost its worker and its queue entry: sent again",
                    extra={"runId": str(run.id), "event": "orphan_resent"},
                )
                sent += 1
    return sent


def safe_sweep(queue: RunQueue, **kwargs: object) -> int:
    try:
        return sweep(queue, **kwargs)
    except redis.RedisError as exc:
        logger.warning("sweep skipped: redis unreachable", extra={"reason": exc.__class__.__name__})
        return 0
