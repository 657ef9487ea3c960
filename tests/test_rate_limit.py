"""Requests per window: per credential, else per address, across processes."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.test import Client
from redis import Redis

from orchestrator.middleware import ratelimit
from orchestrator.middleware.auth import fingerprint
from runs import tokens
from tests.servers import ServerProcess, running_server

pytestmark = pytest.mark.django_db

WINDOW_SECONDS = 60
# Longer than any test here takes from choosing its credentials (servers start
# after that) to its last counted request.
ROOM_SECONDS = 40


def with_room(candidates: Iterable[str], bucket: Callable[[str], str]) -> str:
    """The first candidate whose counting window will not turn over during the test.

    The limiter counts in fixed windows, and offsets each bucket's window
    edge by a hash of the bucket's name. A test whose requests straddled its
    bucket's edge would see the count start again from zero.
    """
    for candidate in candidates:
        now = time.time()
        if ratelimit.window_end(bucket(candidate), WINDOW_SECONDS, now) - now >= ROOM_SECONDS:
            return candidate
    raise AssertionError("no candidate had room in its window")


def a_key() -> str:
    fresh = (f"rate-key-{secrets.token_hex(12)}" for _ in range(100))
    return with_room(fresh, lambda key: f"cred:{fingerprint(key)}")


def a_worker_token(run_id: str) -> str:
    # Tokens minted in the same second differ only by their lifetime.
    fresh = (tokens.mint(tokens.WORKER, run_id, ttl_seconds=3600 + n)[0] for n in range(100))
    return with_room(fresh, lambda token: f"cred:{fingerprint(token)}")


def an_address() -> str:
    return with_room((f"192.0.2.{n}" for n in range(1, 255)), lambda address: f"ip:{address}")


@pytest.fixture
def key(settings) -> str:
    return settings.ORCHESTRATOR_API_KEYS[0]


@pytest.fixture
def other_key(settings) -> str:
    return settings.ORCHESTRATOR_API_KEYS[1]


@pytest.fixture(autouse=True)
def fresh_counters(settings):
    """Counters live in Redis across test runs; each test counts under its own prefix."""
    cache = dict(settings.CACHES["default"])
    cache["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": cache}
    settings.ORCHESTRATOR_API_KEYS = [a_key(), a_key()]
    settings.RATE_LIMIT_WINDOW_MS = 60_000
    settings.RATE_LIMIT_MAX = 3
    settings.RATE_LIMIT_WORKER_MAX = 6


def assert_rate_limited(response) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["error"] == "rate_limited"
    assert body["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert body["details"]["retryAfter"] == int(response["Retry-After"])


def test_a_key_over_its_budget_gets_429_with_retry_after(client, key, other_key):
    answers = [client.get("/runs", headers={"X-API-Key": key}).status_code for _ in range(3)]

    assert answers == [200, 200, 200]
    assert_rate_limited(client.get("/runs", headers={"X-API-Key": key}))
    assert client.get("/runs", headers={"X-API-Key": other_key}).status_code == 200


def test_ipv6_callers_are_counted_by_their_64_network():
    from orchestrator.middleware.ratelimit import client_address

    def address(raw: str) -> str:
        return client_address(Client(REMOTE_ADDR=raw).get("/health").wsgi_request)

    assert address("2001:db8:1:2::a") == address("2001:db8:1:2:ffff::b") != address("2001:db8:1:3::a")
    assert address("::ffff:192.0.2.1") == address("192.0.2.1") == "ip:192.0.2.1"


def test_callers_without_a_credential_are_counted_by_address(settings):
    settings.ORCHESTRATOR_API_KEYS = []
    first, second = Client(REMOTE_ADDR=an_address()), Client(REMOTE_ADDR="198.51.100.7")

    for _ in range(3):
        assert first.get("/runs").status_code == 200
    assert_rate_limited(first.get("/runs"))
    assert second.get("/runs").status_code == 200


def test_guessing_keys_spends_the_guessers_address_budget(key):
    client = Client(REMOTE_ADDR=an_address())
    for attempt in range(3):
        assert client.get("/runs", headers={"X-API-Key": f"guess-{attempt}"}).status_code == 401

    assert_rate_limited(client.get("/runs", headers={"X-API-Key": "guess-last"}))
    assert client.get("/runs", headers={"X-API-Key": key}).status_code == 200


def test_probes_and_metrics_are_not_counted(client, key):
    for _ in range(10):
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200

    assert client.get("/runs", headers={"X-API-Key": key}).status_code == 200


def test_a_workers_checkpoint_writes_have_their_own_higher_limit(client, key):
    from runs import services

    created, _ = services.create_run(mode="redis", spec={"task": "sleep"})
    run = {"id": str(created.id)}
    token = a_worker_token(run["id"])
    worker = {"Authorization": f"Bearer {token}"}
    url = f"/runs/{run['id']}/checkpoints"

    answers = [
        client.post(url, {"type": "log", "data": n}, content_type="application/json", headers=worker)
        for n in range(6)
    ]

    assert [a.status_code for a in answers] == [201] * 6
    assert_rate_limited(client.post(url, {"type": "log"}, content_type="application/json", headers=worker))
    assert client.get(f"/runs/{run['id']}", headers={"X-API-Key": key}).status_code == 200


def test_zero_means_no_limit(settings, client, key):
    settings.RATE_LIMIT_MAX = 0

    assert all(client.get("/runs", headers={"X-API-Key": key}).status_code == 200 for _ in range(10))


def test_an_unreachable_cache_lets_requests_through_and_says_so(settings, client, caplog, key):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }

    with caplog.at_level(logging.WARNING, logger="orchestrator.ratelimit"):
        answers = [client.get("/runs", headers={"X-API-Key": key}).status_code for _ in range(5)]

    assert answers == [200] * 5
    # One failed attempt, then the limiter stands aside instead of timing out on every request.
    assert caplog.text.count("rate limit cache unavailable") == 1


@contextmanager
def two_limited_servers(
    tmp_path: Path, key: str, *, limit: int
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes sharing one limit of `limit` requests a minute,
    under a cache prefix of their own."""

    env = {
        "ORCHESTRATOR_API_KEY": key,
        "RATE_LIMIT_MAX": str(limit),
        "RATE_LIMIT_WINDOW_MS": "60000",
        "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
    }
    with running_server(tmp_path, **env) as first, running_server(tmp_path, **env) as second:
        yield first, second


@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_across_two_server_processes(tmp_path, key):
    with two_limited_servers(tmp_path, key, limit=6) as (first, second):
        servers = [first, second] * 4
        answers = [
            httpx.get(f"{server.url}/runs", headers={"Authorization": f"Bearer {key}"}) for server in servers
        ]

    # Each process alone saw 4 requests, under the limit of 6; together they saw 8.
    assert [a.status_code for a in answers] == [200] * 6 + [429] * 2
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers[6:])


@pytest.mark.django_db(transaction=True)
def test_an_open_event_stream_counts_once(tmp_path, key):
    env = {
        "ORCHESTRATOR_API_KEY": key,
        "RATE_LIMIT_MAX": "3",
        "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
    }
    auth = {"X-API-Key": key}
    with running_server(tmp_path, **env) as server:
        created = httpx.post(f"{server.url}/runs?mode=redis", json={"spec": {"task": "sleep"}}, headers=auth)
        run_id = created.json()["runId"]
        worker = {"Authorization": f"Bearer {a_worker_token(run_id)}"}
        with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers=auth, timeout=10) as stream:
            for n in range(5):
                posted = httpx.post(
                    f"{server.url}/runs/{run_id}/checkpoints", json={"type": "log", "data": n}, headers=worker
                )
                assert posted.status_code == 201
            if stream.status_code == 200:
                received = 0
                for line in stream.iter_lines():
                    received += line == "event: checkpoint"
                    if received == 5:
                        break
        third = httpx.get(f"{server.url}/runs/{run_id}", headers=auth)
        fourth = httpx.get(f"{server.url}/runs/{run_id}", headers=auth)

    assert third.status_code == 200
    assert fourth.status_code == 429


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_over_two_processes_are_counted_exactly(tmp_path, key):
    """Requests racing in two processes at once: exactly the limit passes, none more, none fewer."""
    import asyncio

    async def burst(urls: list[str]) -> list[int]:
        async with httpx.AsyncClient(headers={"X-API-Key": key}, timeout=10) as http:
            answers = await asyncio.gather(*(http.get(f"{url}/runs?limit=1") for url in urls))
        return [answer.status_code for answer in answers]

    with two_limited_servers(tmp_path, key, limit=25) as (first, second):
        statuses = asyncio.run(burst([first.url, second.url] * 30))

    assert sorted(statuses) == [200] * 25 + [429] * 35


def test_a_request_costs_the_limiter_one_redis_round_trip(client, key, monkeypatch):
    from redis.connection import AbstractConnection

    sent: list[object] = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    assert client.get("/runs", headers={"X-API-Key": key}).status_code == 200  # the script is loaded
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    assert client.get("/runs", headers={"X-API-Key": key}).status_code == 200

    assert len(sent) == 1


def test_the_count_expires_with_its_window(settings, client, key):

    assert client.get("/runs", headers={"X-API-Key": key}).status_code == 200

    redis = Redis.from_url(settings.REDIS_URL)
    counted = redis.keys(f"{settings.CACHES['default']['KEY_PREFIX']}:*")
    assert len(counted) == 1
    assert int(redis.get(counted[0])) == 1
    assert 0 < redis.ttl(counted[0]) <= WINDOW_SECONDS + 10


async def _place(leases: ratelimit._Leases, key: str, limit: int) -> int:
    """A request's place in `key`'s count, from `leases` (one process's)."""
    import asyncio

    now = time.time()
    place = leases.take(ratelimit._redis(), key, 60, limit, int(now) + 60, now)
    return await place if isinstance(place, asyncio.Future) else place


def _taken_together(key: str, requests: int, limit: int = 1000) -> list[int]:
    """`requests` places in `key`'s count taken at one moment on an event
    loop, as the ASGI server's requests are."""
    import asyncio

    async def at_once() -> list[int]:
        leases = ratelimit._leases.get()
        return await asyncio.gather(*(_place(leases, key, limit) for _ in range(requests)))

    return asyncio.run(at_once())


@contextmanager
def round_trips() -> Iterator[list[object]]:
    from redis.connection import AbstractConnection

    sent: list[object] = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    AbstractConnection.send_packed_command = counting
    try:
        yield sent
    finally:
        AbstractConnection.send_packed_command = original


def test_the_requests_of_one_moment_ask_for_their_counts_in_one_round_trip(settings):
    key = f"{settings.CACHES['default']['KEY_PREFIX']}:together"
    assert _taken_together(key, 1) == [1]  # the script is loaded

    with round_trips() as sent:
        places = _taken_together(key, 5)  # a new event loop: a process that holds no lease yet

    # Each request its own place, all granted in one pipeline, and no more than they asked.
    assert sorted(places) == [2, 3, 4, 5, 6]
    assert len(sent) == 1
    assert int(Redis.from_url(settings.REDIS_URL).get(key)) == 6


def test_grants_sent_together_reload_a_script_redis_no_longer_holds(settings, monkeypatch):
    # A script Redis has never seen, as after a restart: EVALSHA is refused, the script sent, the counts made.
    monkeypatch.setattr(ratelimit, "_GRANT", f"-- {uuid.uuid4().hex}\n{ratelimit._GRANT}")
    monkeypatch.setattr(ratelimit, "_script", None)
    key = f"{settings.CACHES['default']['KEY_PREFIX']}:reloaded"

    assert sorted(_taken_together(key, 3)) == [1, 2, 3]
    assert Redis.from_url(settings.REDIS_URL).ttl(key) > 0


def test_a_process_spends_a_lease_of_counts_without_a_round_trip_each(settings):
    import asyncio

    key = f"{settings.CACHES['default']['KEY_PREFIX']}:leased"
    _taken_together(f"{key}-warm", 1)  # the script is loaded

    async def one_by_one() -> list[int]:
        leases = ratelimit._leases.get()
        return [await _place(leases, key, 10_000) for _ in range(200)]

    with round_trips() as sent:
        places = asyncio.run(one_by_one())

    assert places == list(range(1, 201))
    # The first request's count alone, then leases of LEASE_MAX.
    assert len(sent) == 1 + -(-199 // ratelimit.LEASE_MAX)
    assert int(Redis.from_url(settings.REDIS_URL).get(key)) < 200 + ratelimit.LEASE_MAX


def test_a_process_that_saw_its_window_spent_refuses_without_asking_again(settings):
    import asyncio

    key = f"{settings.CACHES['default']['KEY_PREFIX']}:spent"
    _taken_together(f"{key}-warm", 1)  # the script is loaded

    async def over_the_limit() -> tuple[list[int], list[object]]:
        leases = ratelimit._leases.get()
        places = [await _place(leases, key, 3) for _ in range(4)]
        with round_trips() as sent:
            places += [await _place(leases, key, 3) for _ in range(20)]
        return places, sent

    places, sent = asyncio.run(over_the_limit())

    assert places == [1, 2, 3] + [4] * 21
    assert sent == []
    assert int(Redis.from_url(settings.REDIS_URL).get(key)) == 3  # refusals are not counted


@pytest.mark.parametrize("seed", range(5))
def test_leases_of_two_processes_never_admit_more_than_the_limit_and_leave_little_unspent(settings, seed):
    """Two processes' leases of one window, requests coming to either in bursts
    at random: no place over the limit is given, none twice; a refusal in one
    leaves at most one lease unspent in the other; and once both have refused,
    exactly the limit was admitted."""
    import asyncio
    import random

    limit = 500
    key = f"{settings.CACHES['default']['KEY_PREFIX']}:two-{seed}"
    rng = random.Random(seed)

    async def traffic() -> list[int]:
        loop = asyncio.get_running_loop()
        processes = [ratelimit._Leases(loop), ratelimit._Leases(loop)]
        admitted: list[int] = []
        refused: set[int] = set()
        while refused != {0, 1}:
            index = rng.randrange(2)
            burst = await asyncio.gather(
                *(_place(processes[index], key, limit) for _ in range(rng.randint(1, 40)))
            )
            admitted += [place for place in burst if place <= limit]
            if any(place > limit for place in burst):
                refused.add(index)
                other = processes[1 - index]._leases.get(key)
                unspent = 0 if other is None else other.last - other.next + 1
                assert unspent <= ratelimit.LEASE_MAX
        return admitted

    admitted = asyncio.run(traffic())

    assert sorted(admitted) == list(range(1, limit + 1))
    assert int(Redis.from_url(settings.REDIS_URL).get(key)) == limit


def test_a_lease_ends_with_its_window(settings, key):
    """Counts left in a window's lease are not spent in the next one; a caller
    refused in one window is admitted in the next."""
    import asyncio

    from django.test import RequestFactory

    settings.RATE_LIMIT_WINDOW_MS = 1000
    address = "192.0.2.200"
    request = RequestFactory().get("/runs", REMOTE_ADDR=address)

    async def places(limit: int, count: int) -> list[int]:
        return [
            (await ratelimit.acount_request(request, ratelimit.API_GROUP, limit, 1))[0] for _ in range(count)
        ]

    async def across_a_window_edge(limit: int) -> tuple[list[int], list[int]]:
        ends = ratelimit.window_end(f"ip:{address}", 1, time.time())
        await asyncio.sleep(ends - time.time() + 0.02)  # a window's start: the test has most of it
        before = await places(limit, 5)
        await asyncio.sleep(ends + 1 - time.time() + 0.02)
        return before, await places(limit, 5)

    # A high limit: the first request's count, then a lease of LEASE_MAX with counts left.
    assert asyncio.run(across_a_window_edge(10_000)) == ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    # A limit of 3: exact counts, refusals in the first window only.
    assert asyncio.run(across_a_window_edge(3)) == ([1, 2, 3, 4, 4], [1, 2, 3, 4, 4])


@pytest.mark.django_db(transaction=True)
def test_leases_in_two_server_processes_admit_exactly_the_limit(tmp_path, key):
    """Bursts to both processes until each has refused: exactly the limit admitted."""
    import asyncio

    limit = 300

    async def bursts(first: str, second: str) -> list[list[int]]:
        answers: list[list[int]] = []
        async with httpx.AsyncClient(headers={"X-API-Key": key}, timeout=10) as http:
            refused = {first: False, second: False}
            while not all(refused.values()) and len(answers) < 100:
                for url in (first, second):
                    burst = await asyncio.gather(*(http.get(f"{url}/runs?limit=1") for _ in range(10)))
                    statuses = [answer.status_code for answer in burst]
                    refused[url] = refused[url] or 429 in statuses
                    answers.append(statuses)
        return answers

    with two_limited_servers(tmp_path, key, limit=limit) as (first, second):
        answers = asyncio.run(bursts(first.url, second.url))

    statuses = [status for burst in answers for status in burst]
    assert set(statuses) == {200, 429}
    assert statuses.count(200) == limit


@pytest.mark.django_db(transaction=True)
def test_a_redis_restart_neither_stops_the_server_nor_lifts_the_limit(tmp_path, key):
    from tests.test_redis_recovery import private_redis

    with private_redis(tmp_path) as redis_server:
        env = {
            "ORCHESTRATOR_API_KEY": key,
            "REDIS_URL": redis_server.url,
            "RATE_LIMIT_MAX": "40",
            "RATE_LIMIT_CACHE_BACKOFF_SECONDS": "0.5",
        }
        with running_server(tmp_path, **env) as server:

            def statuses(count: int) -> list[int]:
                url = f"{server.url}/runs?limit=1"
                return [httpx.get(url, headers={"X-API-Key": key}).status_code for _ in range(count)]

            assert statuses(10) == [200] * 10
            redis_server.kill()
            # The lease's counts left, then the limiter stands aside.
            assert statuses(40) == [200] * 40
            redis_server.start()  # on the same port, empty: the window's count is lost
            time.sleep(0.6)
            after = statuses(45)
        log = server.log_path.read_text()

    assert log.count("rate limit cache unavailable") >= 1
    # Counted again from zero in the restarted Redis (the script sent again): the limit holds.
    assert after == [200] * 40 + [429] * 5
