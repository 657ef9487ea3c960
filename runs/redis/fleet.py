"""The Redis workers as a fleet: each one's heartbeat record, and who is alive.

Every worker publishes `worker:{name}` (a hash) and its name in `workers` (a
sorted set scored by the last heartbeat) every third of WORKER_LEASE_SECONDS,
stamped with Redis' own clock so hosts with skewed clocks agree. A worker
whose last heartbeat is older than a lease period is gone; one that stopped
cleanly says so. Records are kept for WORKER_RECORD_KEEP_SECONDS after the
last heartbeat, so a crashed worker stays visible as gone for a while.

Workers that follow docs/references/worker-protocol.md without publishing a
heartbeat are simply not listed; their leases still protect their runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from runs.redis.queue import RunQueue, flat_fields
from runs.wire import format_ts

ALIVE = "alive"
GONE = "gone"
STOPPED = "stopped"

# ARGV: keep ms, name, then field/value pairs. The heartbeat time is Redis'.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'heartbeatAt', now, unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[1]))
return now
"""


@dataclass(frozen=True)
class WorkerRecord:
    """One worker as its heartbeat describes it (the wire form is `to_wire`)."""

    name: str
    host: str
    pid: int
    slots: int
    busy: int
    runs: list[str]
    stream: str
    started_at: datetime | None
    heartbeat_at: datetime | None
    state: str  # alive, gone or stopped
    seconds_since_heartbeat: float = 0.0

    @property
    def alive(self) -> bool:
        return self.state == ALIVE

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "slots": self.slots,
            "busy": self.busy,
            "runs": list(self.runs),
            "stream": self.stream,
            "startedAt": format_ts(self.started_at),
            "heartbeatAt": format_ts(self.heartbeat_at),
            "secondsSinceHeartbeat": round(self.seconds_since_heartbeat, 1),
            "state": self.state,
        }


def _keys(queue: RunQueue, name: str) -> list[str]:
    prefix = queue.keys.prefix
    return [f"{prefix}worker:{name}", f"{prefix}workers"]


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _from_ms(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def keep_ms() -> int:
    return int(settings.WORKER_RECORD_KEEP_SECONDS * 1000)


def publish(
    queue: RunQueue,
    *,
    name: str,
    host: str,
    pid: int,
    slots: int,
    runs: list[str],
    started_at: datetime,
    stopped: bool = False,
) -> None:
    """A worker's heartbeat (or, with `stopped`, its last word)."""
    fields = {
        "host": host,
        "pid": str(pid),
        "slots": str(slots),
        "busy": str(len(runs)),
        "runs": json.dumps(runs),
        "stream": queue.keys.stream,
        "startedAt": str(_ms(started_at)),
        "stopped": "1" if stopped else "0",
    }
    queue.redis.eval(_BEAT, 2, *_keys(queue, name), keep_ms(), name, *flat_fields(fields))


def _redis_now_ms(queue: RunQueue) -> int:
    seconds, micros = queue.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def list_workers(queue: RunQueue) -> list[WorkerRecord]:
    """Every worker heard from within WORKER_RECORD_KEEP_SECONDS, alive first, then by name."""
    now = _redis_now_ms(queue)
    names = queue.redis.zrangebyscore(_keys(queue, "")[1], now - keep_ms(), "+inf")
    pipe = queue.redis.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(_keys(queue, name)[0])
    lease_ms = settings.WORKER_LEASE_SECONDS * 1000
    records = []
    for name, raw in zip(names, pipe.execute(), strict=True):
        if not raw:
            continue  # expired between the two reads
        since_ms = max(0, now - int(raw.get("heartbeatAt") or 0))
        if raw.get("stopped") == "1":
            state = STOPPED
        else:
            state = ALIVE if since_ms <= lease_ms else GONE
        try:
            runs = [str(run_id) for run_id in json.loads(raw.get("runs") or "[]")]
        except ValueError:
            runs = []
        records.append(
            WorkerRecord(
                name=name,
                host=raw.get("host", ""),
                pid=int(raw.get("pid") or 0),
                slots=int(raw.get("slots") or 0),
                busy=int(raw.get("busy") or 0),
                runs=runs,
                stream=raw.get("stream", ""),
                started_at=_from_ms(raw.get("startedAt")),
                heartbeat_at=_from_ms(raw.get("heartbeatAt")),
                state=state,
                seconds_since_heartbeat=since_ms / 1000,
            )
        )
    order = {ALIVE: 0, GONE: 1, STOPPED: 2}
    return sorted(records, key=lambda record: (order[record.state], record.name))


def alive_names(queue: RunQueue) -> set[str]:
    return {record.name for record in list_workers(queue) if record.alive}
