"""The Redis run queue, shared by the API (which enqueues) and the workers
(which take, hold and acknowledge runs): key names, the stream entry format
and the atomic scripts that keep a run queued once and held by one worker.

Layout, every name under REDIS_KEY_PREFIX:
- `runs` (REDIS_RUN_STREAM) and `runs:p0` … `runs:p9`: one stream per
  priority (the default, 5, keeps the plain name), each read through the
  consumer group REDIS_CONSUMER_GROUP. An entry is deleted when its run is
  finished.
- `runs:takes`: how many entries the fleet has taken, for the rule below.
- `queued:{runId}`: the id of the run's live stream entry, so a sweep can tell
  a queued run from a lost one and never enqueue it twice.
- `lease:{runId}`: the worker holding the run, renewed by its heartbeat; a run
  is only executed under its lease.
- `cancel` (pub/sub channel) and `canceled:{runId}`: the word that a run was
  canceled.

Priority: workers take entries through one script (`take`), which gives
them the highest priority waiting, oldest first within a priority; but
every REDIS_QUEUE_OLDEST_EVERY-th entry the fleet takes (10 by default) is
the one that has waited longest, whatever its priority. However busy the
fleet and however much urgent work keeps coming, a waiting run therefore
moves up: it waits at most that many takes for each run queued before it
(and as many for itself), so none waits for ever.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings

from orchestrator import tracing
from orchestrator.database_check import shown_url
from runs import priority, tokens
from runs.models import Run
from runs.wire import format_ts

ENTRY_VERSION = "1"
logger = logging.getLogger("runs.worker")

TOKEN_PLACEHOLDER = "<a worker token for this run, minted at dispatch>"  # noqa: S105 - not a secret
CANCEL_FLAG_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class QueueKeys:
    prefix: str
    stream_name: str
    group: str

    @property
    def stream(self) -> str:
        """The stream of the default priority (the queue's name before priorities)."""
        return f"{self.prefix}{self.stream_name}"

    def stream_for(self, level: int) -> str:
        return self.stream if level == priority.DEFAULT else f"{self.stream}:p{level}"

    @property
    def streams(self) -> list[str]:
        """Every priority's stream, highest first."""
        return [self.stream_for(level) for level in priority.LEVELS]

    @property
    def takes(self) -> str:
        return f"{self.stream}:takes"

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


def entry_fields(run: Run, *, token: str | None = None, traced: bool = True) -> dict[str, str]:
    """The stream entry of a run. Every value is a string; `spec` is JSON.
    Without `traced`, the entry lacks the trace context (one built ahead of
    its dispatch takes the dispatch's when it is sent: `traced_packed`)."""
    spec = run.spec or {}
    fields = {
        "v": ENTRY_VERSION,
        "runId": str(run.id),
        "task": str(spec.get("task", "")),
        "spec": json.dumps(spec, separators=(",", ":"), sort_keys=True),
        "token": token if token is not None else tokens.mint(tokens.WORKER, str(run.id))[0],
        "createdAt": format_ts(run.created_at) or "",
        "priority": str(run.priority),
    }
    if traced:
        # The W3C trace context of the dispatch (none when tracing is off).
        fields.update(tracing.carrier())
    return fields


@dataclass(frozen=True)
class Entry:
    entry_id: str
    run_id: str
    task: str
    spec: dict[str, Any]
    created_at: str
    trace: dict[str, str] = field(default_factory=dict)
    stream: str = ""  # the stream it was read from (its priority's)

    @classmethod
    def parse(cls, entry_id: str, fields: dict[str, str], stream: str = "") -> Entry:
        """Raises ValueError for an entry this worker cannot read."""
        if fields.get("v") != ENTRY_VERSION or not fields.get("runId"):
            raise ValueError(f"unsupported entry {entry_id}: v={fields.get('v')!r}")
        spec = json.loads(fields.get("spec") or "{}")
        if not isinstance(spec, dict):
            raise ValueError(f"entry {entry_id}: spec is not an object")
        trace = {name: fields[name] for name in TRACE_FIELDS if fields.get(name)}
        created_at = fields.get("createdAt", "")
        return cls(entry_id, fields["runId"], fields.get("task", ""), spec, created_at, trace, stream)


def flat_fields(fields: dict[str, str]) -> list[str]:
    """An entry's fields as XADD takes them: name, value, name, value…"""
    return [part for pair in fields.items() for part in pair]


def packed_fields(fields: dict[str, str]) -> str:
    """An entry's flat fields as one JSON array, as the batch enqueue takes
    them: one argument per run instead of two per field, whose packing was
    most of a large hand-over's Python time."""
    return json.dumps(flat_fields(fields), separators=(",", ":"))


# An entry's run id, priority and packed fields, as RunQueue.enqueue_packed takes them.
PackedEntry = tuple[str, int, str]


def packed_entry(run_id: str, fields: dict[str, str]) -> PackedEntry:
    """An entry as RunQueue.enqueue_packed takes it."""
    return run_id, entry_priority(fields), packed_fields(fields)


def traced_packed(packed: str) -> str:
    """An untraced entry's packed fields with the current trace context added."""
    context = tracing.carrier()
    if not context:
        return packed
    return json.dumps([*json.loads(packed), *flat_fields(context)], separators=(",", ":"))


def entry_priority(fields: dict[str, str]) -> int:
    """The priority an entry's fields give (entries written before priorities: the default)."""
    try:
        level = int(fields.get("priority", priority.DEFAULT))
    except ValueError:
        return priority.DEFAULT
    return level if priority.LOWEST <= level <= priority.HIGHEST else priority.DEFAULT


# The stream of KEYS[from..] holding entry `gid`, or nil. A run's entry is
# in its priority's stream; every stream is looked at, so that nothing here
# depends on knowing the run's priority.
_FIND = """
local function find(gid, from)
  if not gid then return nil end
  for i = from, #KEYS do
    if #redis.call('XRANGE', KEYS[i], gid, gid) > 0 then return KEYS[i] end
  end
  return nil
end
"""

# Enqueue unless the run's entry is still in a stream. The guard key holds
# the entry id, checked against the streams themselves, so a guard that
# outlived its entry (a trimmed stream) does not block a re-send, and a wiped
# Redis loses both together. KEYS: guard, the stream to add to, every stream.
_ENQUEUE = _FIND + """
if find(redis.call('GET', KEYS[1]), 3) then return false end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV))
redis.call('SET', KEYS[1], id)
return id
"""

# enqueue() for many runs in one call. KEYS: one guard per run, then every
# stream; ARGV: the number of runs, then per run the place of its priority's
# stream among the streams and its fields as a JSON array (packed_fields).
# One script call per chunk instead of one per run: packing a command per
# run, with every stream's key in each, was most of a large hand-over's
# Redis cost.
_ENQUEUE_MANY = _FIND + """
local runs, added = tonumber(ARGV[1]), 0
for g = 1, runs do
  local stream = KEYS[runs + tonumber(ARGV[2 * g])]
  if not find(redis.call('GET', KEYS[g]), runs + 1) then
    local fields = cjson.decode(ARGV[2 * g + 1])
    redis.call('SET', KEYS[g], redis.call('XADD', stream, '*', unpack(fields)))
    added = added + 1
  end
end
return added
"""
# Runs per _ENQUEUE_MANY call: each call blocks Redis while it runs.
_ENQUEUE_CHUNK = 500

# Take up to ARGV[3] entries for consumer ARGV[2] of group ARGV[1]: the
# highest priority first (KEYS: the streams highest first, then the takes
# counter), but every ARGV[4]-th take the entry that has waited longest in
# any stream (the smallest id after its group's last delivered one). Returns
# {stream, id, fields} triples; with none, each stream's last generated id,
# from which the caller blocks for new entries without missing any.
_TAKE = """
local n = #KEYS - 1
local group, consumer, want, every = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local taken = {}
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 0 then return redis.error_reply('NOGROUP ' .. KEYS[i] .. ' is gone') end
end
local function read(key)
  local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', key, '>')
  if not reply then return false end
  local entry = reply[1][2][1]
  taken[#taken + 1] = {key, entry[1], entry[2]}
  return true
end
local function oldest()
  local best, best_id, best_ms, best_seq = nil, nil, nil, nil
  for i = 1, n do
    for _, row in ipairs(redis.call('XINFO', 'GROUPS', KEYS[i])) do
      local info = {}
      for j = 1, #row, 2 do info[row[j]] = row[j + 1] end
      if info['name'] == group then
        local first = redis.call('XRANGE', KEYS[i], '(' .. info['last-delivered-id'], '+', 'COUNT', 1)
        if #first > 0 then
          local id = first[1][1]
          local dash = string.find(id, '-')
          local ms, seq = tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
          if not best or ms < best_ms or (ms == best_ms and seq < best_seq) then
            best, best_id, best_ms, best_seq = KEYS[i], id, ms, seq
          end
        end
      end
    end
  end
  return best
end
while #taken < want do
  local turn = every > 0 and (tonumber(redis.call('GET', KEYS[n + 1]) or '0') + 1) % every == 0
  local got = false
  if turn then
    local key = oldest()
    got = key ~= nil and read(key)
  else
    for i = 1, n do
      if read(KEYS[i]) then got = true break end
    end
  end
  if not got then break end
  redis.call('INCR', KEYS[n + 1])
end
if #taken > 0 then return {1, taken} end
local last = {}
for i = 1, n do
  local info = redis.call('XINFO', 'STREAM', KEYS[i])
  for j = 1, #info, 2 do
    if info[j] == 'last-generated-id' then last[#last + 1] = info[j + 1] end
  end
end
return {0, last}
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
# KEYS: lease, guard, every stream.
_HOLDER = _FIND + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'lease' end
local gid = redis.call('GET', KEYS[2])
local stream = find(gid, 3)
if not stream then return false end
local ok, pending = pcall(redis.call, 'XPENDING', stream, ARGV[1], gid, gid, 1)
if not ok or #pending == 0 then return 'queued' end
return 'consumer:' .. pending[1][2]
"""

# Drop the run's entry if it is still delivered to ARGV[2] and no lease is held:
# that consumer is gone, and a fresh entry goes to whichever worker reads next.
_DROP_ABANDONED = _FIND + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local gid = redis.call('GET', KEYS[2])
local stream = find(gid, 3)
if not stream then return 0 end
local pending = redis.call('XPENDING', stream, ARGV[1], gid, gid, 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
redis.call('XACK', stream, ARGV[1], gid)
redis.call('XDEL', stream, gid)
redis.call('DEL', KEYS[2])
return 1
"""

# Consumers that hold no entry and have been idle for ARGV[2] ms (only ARGV[3],
# when given), in each stream of KEYS (a stream's group has consumers of its
# own). Checked and removed in one step: a consumer that takes an entry
# meanwhile cannot lose it, for removing a consumer drops its pending entries.
# Returns how many distinct names went.
_FORGET_CONSUMERS = """
local gone = {}
local forgotten = 0
for _, stream in ipairs(KEYS) do
  local ok, rows = pcall(redis.call, 'XINFO', 'CONSUMERS', stream, ARGV[1])
  if ok then
    for _, row in ipairs(rows) do
      local info = {}
      for i = 1, #row, 2 do info[row[i]] = row[i + 1] end
      if info['pending'] == 0 and info['idle'] >= tonumber(ARGV[2])
         and (ARGV[3] == '' or info['name'] == ARGV[3]) then
        redis.call('XGROUP', 'DELCONSUMER', stream, ARGV[1], info['name'])
        if not gone[info['name']] then gone[info['name']] = true forgotten = forgotten + 1 end
      end
    end
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
        self._enqueue_many = conn.register_script(_ENQUEUE_MANY)
        self._take = conn.register_script(_TAKE)
        self._renew = conn.register_script(_RENEW_LEASE)
        self._release = conn.register_script(_RELEASE_LEASE)
        self._finish = conn.register_script(_FINISH)
        self._forget = conn.register_script(_FORGET_CONSUMERS)
        self._holder = conn.register_script(_HOLDER)
        self._drop_abandoned = conn.register_script(_DROP_ABANDONED)

    def _enqueue_keys(self, run_id: str, fields: dict[str, str]) -> list[str]:
        return [self.keys.guard(run_id), self.keys.stream_for(entry_priority(fields)), *self.keys.streams]

    def enqueue(self, run_id: str, fields: dict[str, str]) -> str | None:
        """XADD the run to its priority's stream (`fields["priority"]`) unless
        its entry is already in one. The new entry id, or None."""
        result = self._enqueue(keys=self._enqueue_keys(run_id, fields), args=flat_fields(fields))
        return result or None

    def enqueue_many(self, items: list[tuple[str, dict[str, str]]]) -> int:
        """enqueue() for many runs in one round trip; how many were added."""
        return self.enqueue_packed([packed_entry(run_id, fields) for run_id, fields in items])

    def enqueue_packed(self, items: list[PackedEntry]) -> int:
        """enqueue_many() for entries already packed (packed_fields), each
        with its run id and priority; how many were added."""
        streams = self.keys.streams
        place = {stream: index for index, stream in enumerate(streams, start=1)}
        pipe = self.redis.pipeline(transaction=False)
        for start in range(0, len(items), _ENQUEUE_CHUNK):
            chunk = items[start : start + _ENQUEUE_CHUNK]
            args: list[str | int] = [len(chunk)]
            for _, level, packed in chunk:
                args += [place[self.keys.stream_for(level)], packed]
            guards = [self.keys.guard(run_id) for run_id, _, _ in chunk]
            self._enqueue_many(keys=[*guards, *streams], args=args, client=pipe)
        return sum(int(added) for added in pipe.execute())

    def take(self, consumer: str, count: int, *, oldest_every: int) -> tuple[list[Entry], list[str]]:
        """Up to `count` entries for `consumer`, highest priority first but
        every `oldest_every`-th the longest waiting (see the module's
        docstring). With none, each stream's last id, for `wait`."""
        keys = self.keys
        found, rows = self._take(
            keys=[*keys.streams, keys.takes], args=[keys.group, consumer, count, oldest_every]
        )
        if not found:
            return [], list(rows)
        entries = []
        for stream, entry_id, flat in rows:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            try:
                entries.append(Entry.parse(entry_id, fields, stream))
            except ValueError:
                logger.warning("unreadable queue entry dropped", extra={"entryId": entry_id})
                self.redis.xack(stream, keys.group, entry_id)
        return entries, []

    def wait(self, last_ids: list[str], block_ms: int) -> None:
        """Until an entry is added after `last_ids` (from `take`) to any stream, or `block_ms`."""
        self.redis.xread(dict(zip(self.keys.streams, last_ids, strict=True)), count=1, block=block_ms)

    def ensure_group(self, consumer: str | None = None) -> None:
        """Create every priority's stream and its group if missing (and join them as `consumer`)."""
        for stream in self.keys.streams:
            try:
                self.redis.xgroup_create(stream, self.keys.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        if consumer:
            # Visible in XINFO CONSUMERS from the start, not only after a first delivery.
            pipe = self.redis.pipeline(transaction=False)
            for stream in self.keys.streams:
                pipe.xgroup_createconsumer(stream, self.keys.group, consumer)
            pipe.execute()

    def holders(self, run_ids: list[str]) -> dict[str, str | None]:
        """{run id: 'lease', 'queued', 'consumer:<name>' or None} (see _HOLDER); one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for run_id in run_ids:
            self._holder(
                keys=[self.keys.lease(run_id), self.keys.guard(run_id), *self.keys.streams],
                args=[self.keys.group],
                client=pipe,
            )
        return {run_id: holder or None for run_id, holder in zip(run_ids, pipe.execute(), strict=True)}

    def drop_abandoned(self, run_id: str, consumer: str) -> bool:
        """Remove the run's entry if `consumer` still holds it without a lease."""
        keys = [self.keys.lease(run_id), self.keys.guard(run_id), *self.keys.streams]
        return bool(self._drop_abandoned(keys=keys, args=[self.keys.group, consumer]))

    def forget_consumers(self, *, idle_ms: int, name: str = "") -> int:
        """Remove from the groups the consumers (or the one `name`) that hold no
        entry and have been idle `idle_ms`; how many went. A live worker so
        removed is added back by its next read."""
        try:
            return int(self._forget(keys=self.keys.streams, args=[self.keys.group, idle_ms, name]))
        except redis.ResponseError as exc:
            if "no such key" in str(exc).lower() or "NOGROUP" in str(exc):
                return 0
            raise

    def acquire_lease(self, run_id: str, holder: str, ttl_ms: int) -> bool:
        return bool(self.redis.set(self.keys.lease(run_id), holder, nx=True, px=ttl_ms))

    def renew_lease(self, run_id: str, holder: str, ttl_ms: int) -> bool:
        return bool(self._renew(keys=[self.keys.lease(run_id)], args=[holder, ttl_ms]))

    def renew_leases(self, held: list[tuple[str, str, str]], holder: str, ttl_ms: int) -> list[bool]:
        """Heartbeat for (run id, entry id, stream) triples: renew each lease
        and touch each entry so its idle time stays below the reclaim
        threshold. False where another worker holds the lease now."""
        pipe = self.redis.pipeline(transaction=False)
        for run_id, entry_id, stream in held:
            self._renew(keys=[self.keys.lease(run_id)], args=[holder, ttl_ms], client=pipe)
            pipe.xclaim(stream or self.keys.stream, self.keys.group, holder, 0, [entry_id], justid=True)
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
            keys=[
                entry.stream or self.keys.stream,
                self.keys.guard(entry.run_id),
                self.keys.lease(entry.run_id),
            ],
            args=[self.keys.group, entry.entry_id, holder],
        )

    def announce_cancel(self, run_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.keys.cancel_flag(run_id), "1", ex=CANCEL_FLAG_TTL_SECONDS)
        pipe.publish(self.keys.cancel_channel, run_id)
        pipe.execute()

    def depth(self) -> int:
        """Runs waiting for a worker: entries not yet delivered to any."""
        return self.stats().depth

    def stats(self) -> QueueStats:
        """Depth (in all and per priority), delivered-but-unfinished entries,
        and how long the oldest waiting run has waited."""
        keys = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for stream in keys.streams:
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)
        pipe.time()
        replies = pipe.execute(raise_on_error=False)
        seconds, micros = replies[-1]
        depths: dict[int, int] = {}
        pending_total = 0
        oldest_ms: int | None = None
        for index, level in enumerate(priority.LEVELS):
            length, groups = replies[2 * index], replies[2 * index + 1]
            if isinstance(length, Exception) or isinstance(groups, Exception):
                depths[level] = 0  # no stream or no group yet: nothing queued
                continue
            group = next((g for g in groups if g["name"] == keys.group), None)
            pending = int(group["pending"]) if group else 0
            pending_total += pending
            depths[level] = max(0, int(length) - pending)
            if depths[level] and group is not None:
                # Entries after the group's last delivered id are the ones no worker has taken.
                first = self.redis.xrange(
                    keys.stream_for(level), f"({group['last-delivered-id']}", "+", count=1
                )
                if first:
                    enqueued_ms = int(first[0][0].split("-")[0])
                    oldest_ms = enqueued_ms if oldest_ms is None else min(oldest_ms, enqueued_ms)
        oldest = None
        if oldest_ms is not None:
            oldest = max(0.0, (int(seconds) * 1000 + int(micros) / 1000 - oldest_ms) / 1000)
        return QueueStats(
            depth=sum(depths.values()),
            pending=pending_total,
            oldest_waiting_seconds=oldest,
            depth_by_priority=depths,
        )


@dataclass(frozen=True)
class QueueStats:
    depth: int  # waiting for a worker
    pending: int  # delivered to a worker, not finished
    oldest_waiting_seconds: float | None  # None when nothing waits
    depth_by_priority: dict[int, int] = field(default_factory=dict)  # waiting, per priority

    @property
    def waiting_priorities(self) -> list[tuple[int, int]]:
        """(priority, runs waiting) for the priorities with runs waiting, highest first."""
        levels = sorted(self.depth_by_priority.items(), reverse=True)
        return [(level, depth) for level, depth in levels if depth]


def run_queue(stream_name: str | None = None, url: str | None = None) -> RunQueue:
    return RunQueue(client(url), queue_keys(stream_name))


def describe_redis() -> str:
    """Which Redis the queue uses, without its password, for logs and /ready."""
    shown = shown_url(redis_url())
    return shown if settings.REDIS_URL else f"{shown} (the default: REDIS_URL is unset)"
