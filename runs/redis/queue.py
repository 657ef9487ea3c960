"""The Redis run queue, shared by the API (which enqueues) and the workers
(which take, hold and acknowledge runs): key names, the stream entry format
and the atomic scripts that keep a run queued once and held by one worker.

Layout, every name under REDIS_KEY_PREFIX:
- `runs` (REDIS_RUN_STREAM): the stream, read through the consumer group
  REDIS_CONSUMER_GROUP. An entry is deleted when its run is finished.
- `queued:{runId}`: the id of the run's live stream entry, so a sweep can tell
  a queued run from a lost one and never enqueue it twice.
- `lease:{runId}`: the worker holding the run, renewed by its heartbeat; a run
  is only executed under its lease.
- `cancel` (pub/sub channel) and `canceled:{runId}`: the word that a run was
  canceled.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings

from orchestrator import tracing
from orchestrator.database_check import shown_url
from runs import tokens
from runs.models import Run
from runs.wire import format_ts

ENTRY_VERSION = "1"
TOKEN_PLACEHOLDER = "<a worker token for this run, minted at dispatch>"  # noqa: S105 - not a secret
CANCEL_FLAG_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class QueueKeys:
    prefix: str
    stream_name: str
    group: str

    @property
    def stream(self) -> str:
        return f"{self.prefix}{self.stream_name}"

    @property
    def cancel_channel(self) -> str:
        return f"{self.prefix}cancel"

    @property
    def sweep_lock(self) -> str:
        return f"{self.prefix}sweep-lock"

    def guard(self, run_id: str) -> str:
        return f"{self.prefix}queued:{run_id}"

    def lease(self, run_id: str) -> str:
        return f"{self.prefix}lease:{run_id}"

    def cancel_flag(self, run_id: str) -> str:
        return f"{self.prefix}canceled:{run_id}"

    def orphan(self, run_id: str) -> str:
        return f"{self.prefix}orphan:{run_id}"


def queue_keys(stream_name: str | None = None) -> QueueKeys:
    return QueueKeys(
        prefix=settings.REDIS_KEY_PREFIX,
        stream_name=stream_name or settings.REDIS_RUN_STREAM,
        group=settings.REDIS_CONSUMER_GROUP,
    )


def redis_url() -> str:
    return settings.REDIS_URL or settings.REDIS_DEFAULT_URL


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def client(url: str | None = None) -> redis.Redis:
    """One thread-safe client (connection pool) per URL and process."""
    url = url or redis_url()
    with _clients_lock:
        if url not in _clients:
            timeout = settings.REDIS_SOCKET_TIMEOUT_SECONDS
            _clients[url] = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                health_check_interval=30,
            )
        return _clients[url]


TRACE_FIELDS = ("traceparent", "tracestate")


def entry_fields(run: Run, *, token: str | None = None) -> dict[str, str]:
    """The stream entry of a run. Every value is a string; `spec` is JSON."""
    spec = run.spec or {}
    return {
        "v": ENTRY_VERSION,
        "runId": str(run.id),
        "task": str(spec.get("task", "")),
        "spec": json.dumps(spec, separators=(",", ":"), sort_keys=True),
        "token": token if token is not None else tokens.mint(tokens.WORKER, str(run.id))[0],
        "createdAt": format_ts(run.created_at) or "",
        # The W3C trace context of the dispatch (none when tracing is off).
        **tracing.carrier(),
    }


@dataclass(frozen=True)
class Entry:
    entry_id: str
    run_id: str
    task: str
    spec: dict[str, Any]
    created_at: str
    trace: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, entry_id: str, fields: dict[str, str]) -> Entry:
        """Raises ValueError for an entry this worker cannot read."""
        if fields.get("v") != ENTRY_VERSION or not fields.get("runId"):
            raise ValueError(f"unsupported entry {entry_id}: v={fields.get('v')!r}")
        spec = json.loads(fields.get("spec") or "{}")
        if not isinstance(spec, dict):
            raise ValueError(f"entry {entry_id}: spec is not an object")
        trace = {name: fields[name] for name in TRACE_FIELDS if fields.get(name)}
        created_at = fields.get("createdAt", "")
        return cls(entry_id, fields["runId"], fields.get("task", ""), spec, created_at, trace)


# Enqueue unless the run's entry is still in the stream. The guard key holds
# the entry id, checked against the stream itself, so a guard that outlived its
# entry (a trimmed stream) does not block a re-send, and a wiped Redis loses
# both together.
_ENQUEUE = """
local gid = redis.call('GET', KEYS[1])
if gid and #redis.call('XRANGE', KEYS[2], gid, gid) > 0 then return false end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV))
redis.call('SET', KEYS[1], id)
return id
"""

# Renew the lease while we hold it; take it back if it vanished (a Redis
# restart); report 0 when another worker holds it.
_RENEW_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0
"""

_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# The run is finished: forget its entry, its guard (if it points at this
# entry, not at a newer duplicate) and our lease.
_FINISH = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
if redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
return 1
"""


# Who holds the run: 'lease' (a worker renews it), 'queued' (its entry waits
# for a worker), 'consumer:<name>' (its entry was delivered to that consumer,
# which no longer renews the lease), or false (nothing: lost).
_HOLDER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'lease' end
local gid = redis.call('GET', KEYS[2])
if not gid or #redis.call('XRANGE', KEYS[3], gid, gid) == 0 then return false end
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[3], ARGV[1], gid, gid, 1)
if not ok or #pending == 0 then return 'queued' end
return 'consumer:' .. pending[1][2]
"""

# Drop the run's entry if it is still delivered to ARGV[2] and no lease is held:
# that consumer is gone, and a fresh entry goes to whichever worker reads next.
_DROP_ABANDONED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local gid = redis.call('GET', KEYS[2])
if not gid then return 0 end
local pending = redis.call('XPENDING', KEYS[3], ARGV[1], gid, gid, 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
redis.call('XACK', KEYS[3], ARGV[1], gid)
redis.call('XDEL', KEYS[3], gid)
redis.call('DEL', KEYS[2])
return 1
"""

# Consumers that hold no entry and have been idle for ARGV[2] ms (only ARGV[3],
# when given). Checked and removed in one step: a consumer that takes an entry
# meanwhile cannot lose it, for removing a consumer drops its pending entries.
_FORGET_CONSUMERS = """
local forgotten = 0
for _, row in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #row, 2 do info[row[i]] = row[i + 1] end
  if info['pending'] == 0 and info['idle'] >= tonumber(ARGV[2])
     and (ARGV[3] == '' or info['name'] == ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    forgotten = forgotten + 1
  end
end
return forgotten
"""


class RunQueue:
    """The queue operations, on one Redis and one set of keys."""

    def __init__(self, conn: redis.Redis, keys: QueueKeys) -> None:
        self.redis = conn
        self.keys = keys
        self._enqueue = conn.register_script(_ENQUEUE)
        self._renew = conn.register_script(_RENEW_LEASE)
        self._release = conn.register_script(_RELEASE_LEASE)
        self._finish = conn.register_script(_FINISH)
        self._forget = conn.register_script(_FORGET_CONSUMERS)
        self._holder = conn.register_script(_HOLDER)
        self._drop_abandoned = conn.register_script(_DROP_ABANDONED)

    def enqueue(self, run_id: str, fields: dict[str, str]) -> str | None:
        """XADD the run unless its entry is already there. The new entry id, or None."""
        flat = [part for pair in fields.items() for part in pair]
        result = self._enqueue(keys=[self.keys.guard(run_id), self.keys.stream], args=flat)
        return result or None

    def enqueue_many(self, items: list[tuple[str, dict[str, str]]]) -> int:
        """enqueue() for many runs in one round trip; how many were added."""
        pipe = self.redis.pipeline(transaction=False)
        for run_id, fields in items:
            flat = [part for pair in fields.items() for part in pair]
            self._enqueue(keys=[self.keys.guard(run_id), self.keys.stream], args=flat, client=pipe)
        return sum(1 for result in pipe.execute() if result)

    def ensure_group(self, consumer: str | None = None) -> None:
        """Create the stream and its group if missing (and join it as `consumer`)."""
        try:
            self.redis.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        if consumer:
            # Visible in XINFO CONSUMERS from the start, not only after a first delivery.
            self.redis.xgroup_createconsumer(self.keys.stream, self.keys.group, consumer)

    def holders(self, run_ids: list[str]) -> dict[str, str | None]:
        """{run id: 'lease', 'queued', 'consumer:<name>' or None} (see _HOLDER); one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for run_id in run_ids:
            self._holder(
                keys=[self.keys.lease(run_id), self.keys.guard(run_id), self.keys.stream],
                args=[self.keys.group],
                client=pipe,
            )
        return {run_id: holder or None for run_id, holder in zip(run_ids, pipe.execute(), strict=True)}

    def drop_abandoned(self, run_id: str, consumer: str) -> bool:
        """Remove the run's entry if `consumer` still holds it without a lease."""
        keys = [self.keys.lease(run_id), self.keys.guard(run_id), self.keys.stream]
        return bool(self._drop_abandoned(keys=keys, args=[self.keys.group, consumer]))

    def forget_consumers(self, *, idle_ms: int, name: str = "") -> int:
        """Remove from the group the consumers (or the one `name`) that hold no
        entry and have been idle `idle_ms`; how many went. A live worker so
        removed is added back by its next read."""
        try:
            return int(self._forget(keys=[self.keys.stream], args=[self.keys.group, idle_ms, name]))
        except redis.ResponseError as exc:
            if "no such key" in str(exc).lower() or "NOGROUP" in str(exc):
                return 0
            raise

    def acquire_lease(self, run_id: str, holder: str, ttl_ms: int) -> bool:
        return bool(self.redis.set(self.keys.lease(run_id), holder, nx=True, px=ttl_ms))

    def renew_lease(self, run_id: str, holder: str, ttl_ms: int) -> bool:
        return bool(self._renew(keys=[self.keys.lease(run_id)], args=[holder, ttl_ms]))

    def renew_leases(self, held: list[tuple[str, str]], holder: str, ttl_ms: int) -> list[bool]:
        """Heartbeat for (run id, entry id) pairs: renew each lease and touch each
        entry so its idle time stays below the reclaim threshold. False where
        another worker holds the lease now."""
        pipe = self.redis.pipeline(transaction=False)
        for run_id, entry_id in held:
            self._renew(keys=[self.keys.lease(run_id)], args=[holder, ttl_ms], client=pipe)
            pipe.xclaim(self.keys.stream, self.keys.group, holder, 0, [entry_id], justid=True)
        results = pipe.execute(raise_on_error=False)
        renewed = results[::2]
        for result in renewed:
            if isinstance(result, Exception):
                raise result
        return [bool(result) for result in renewed]

    def release_lease(self, run_id: str, holder: str) -> None:
        self._release(keys=[self.keys.lease(run_id)], args=[holder])

    def finish(self, entry: Entry, holder: str) -> None:
        self._finish(
            keys=[self.keys.stream, self.keys.guard(entry.run_id), self.keys.lease(entry.run_id)],
            args=[self.keys.group, entry.entry_id, holder],
        )

    def announce_cancel(self, run_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.keys.cancel_flag(run_id), "1", ex=CANCEL_FLAG_TTL_SECONDS)
        pipe.publish(self.keys.cancel_channel, run_id)
        pipe.execute()

    def depth(self) -> int:
        """Runs waiting for a worker: entries not yet delivered to any."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xlen(self.keys.stream)
        pipe.xpending(self.keys.stream, self.keys.group)
        try:
            length, pending = pipe.execute()
        except redis.ResponseError:
            return 0  # no stream or no group yet: nothing queued
        return max(0, int(length) - int(pending["pending"]))

    def stats(self) -> QueueStats:
        """Depth, delivered-but-unfinished entries, and how long the oldest waiting run has waited."""
        keys = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.xlen(keys.stream)
        pipe.xinfo_groups(keys.stream)
        pipe.time()
        try:
            length, groups, (seconds, micros) = pipe.execute()
        except redis.ResponseError:
            return QueueStats(depth=0, pending=0, oldest_waiting_seconds=None)  # no stream yet
        group = next((g for g in groups if g["name"] == keys.group), None)
        if group is None:
            return QueueStats(depth=int(length), pending=0, oldest_waiting_seconds=None)
        pending = int(group["pending"])
        depth = max(0, int(length) - pending)
        oldest = None
        if depth:
            # Entries after the group's last delivered id are the ones no worker has taken.
            first = self.redis.xrange(keys.stream, f"({group['last-delivered-id']}", "+", count=1)
            if first:
                enqueued_ms = int(first[0][0].split("-")[0])
                oldest = max(0.0, (int(seconds) * 1000 + int(micros) / 1000 - enqueued_ms) / 1000)
        return QueueStats(depth=depth, pending=pending, oldest_waiting_seconds=oldest)


@dataclass(frozen=True)
class QueueStats:
    depth: int  # waiting for a worker
    pending: int  # delivered to a worker, not finished
    oldest_waiting_seconds: float | None  # None when nothing waits


def run_queue(stream_name: str | None = None, url: str | None = None) -> RunQueue:
    return RunQueue(client(url), queue_keys(stream_name))


def describe_redis() -> str:
    """Which Redis the queue uses, without its password, for logs and /ready."""
    shown = shown_url(redis_url())
    return shown if settings.REDIS_URL else f"{shown} (the default: REDIS_URL is unset)"
