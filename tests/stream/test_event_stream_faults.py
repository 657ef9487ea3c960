"""Fault paths of the event stream: disconnects, bursts, many writers and
readers, a lost LISTEN connection, and server shutdown."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time

import httpx
import pytest
from django.db import connection
from httpx_sse import aconnect_sse

from runs import services
from tests.factories import new_run
from tests.servers import running_server, terminate_connections
from tests.stream.support import (
    append,
    read_events,
    stats,
    stream_server,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_client_that_disconnects_frees_its_subscriber_at_once(stream_app):
    run_id = str(new_run().pk)
    wait_for(lambda: stats(stream_app)["subscribers"] == 0, what="no subscriber left from earlier tests")
    clients = [httpx.Client(timeout=10) for _ in range(5)]
    streams = [c.stream("GET", f"{stream_app.url}/runs/{run_id}/events") for c in clients]
    responses = [s.__enter__() for s in streams]
    # Kept referenced: dropping a body iterator would close its stream.
    bodies = [response.iter_bytes() for response in responses]
    for body in bodies:
        next(body)  # retry + hello: the stream is open
    wait_for(lambda: stats(stream_app)["subscribers"] == 5, what="five subscribers")
    assert stats(stream_app)["streamsOpen"] == 5

    for stream, client in zip(streams, clients, strict=True):
        stream.__exit__(None, None, None)
        client.close()

    released = {"subscribers": 0, "tails": 0, "streamsOpen": 0}
    wait_for(
        lambda: {key: stats(stream_app)[key] for key in released} == released,
        what="every subscriber, tail and open-stream count released",
    )


def test_resuming_after_forced_disconnects_mid_burst_delivers_each_checkpoint_once(stream_app):
    run_id = str(new_run().pk)
    total = 400
    rng = random.Random(7)
    done = threading.Event()

    def writer() -> None:
        written = 0
        while written < total:
            batch = min(rng.randint(1, 8), total - written)
            append(run_id, batch)
            written += batch
        services.set_run_status(run_id, "running")
        services.set_run_status(run_id, "completed")
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    received: list[int] = []
    last_id: str | None = None
    reconnects = 0
    try:
        while True:
            cut_after = rng.randint(1, 40)
            headers = {"Last-Event-ID": last_id} if last_id else {}
            seen = 0

            def stop(event, cut_after=cut_after):
                nonlocal seen
                seen += event.event == "checkpoint"
                return event.event == "end" or seen >= cut_after

            events = read_events(stream_app, run_id, params={"replay": "1000"}, headers=headers, stop=stop)
            if not events:
                break  # 204: the run is over and we have everything
            for event in events:
                if event.event == "checkpoint":
                    received.append(event.json()["seq"])
                    last_id = event.id
                if event.event == "end":
                    last_id = event.id
            reconnects += 1
            assert reconnects < 500
    finally:
        thread.join()

    assert received == list(range(1, total + 1))
    assert reconnects > 10


def test_many_writers_and_many_subscribers_see_every_seq_in_order(stream_app):
    run_id = str(new_run().pk)
    services.set_run_status(run_id, "running")
    writers, per_writer, subscribers = 20, 10, 50
    total = writers * per_writer

    async def subscribe(client: httpx.AsyncClient, opened: asyncio.Queue) -> list[int]:
        seqs: list[int] = []
        async with aconnect_sse(client, "GET", f"{stream_app.url}/runs/{run_id}/events") as source:
            async for event in source.aiter_sse():
                if event.event == "hello":
                    await opened.put(1)
                elif event.event == "checkpoint":
                    seqs.append(event.json()["seq"])
                elif event.event == "end":
                    return seqs
        return seqs

    async def write(client: httpx.AsyncClient) -> None:
        for i in range(per_writer):
            response = await client.post(
                f"{stream_app.url}/runs/{run_id}/checkpoints", json={"type": "w", "data": i}
            )
            assert response.status_code == 201

    async def main() -> list[list[int]]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            opened: asyncio.Queue = asyncio.Queue()
            readers = [asyncio.create_task(subscribe(client, opened)) for _ in range(subscribers)]
            for _ in range(subscribers):
                await asyncio.wait_for(opened.get(), 20)
            await asyncio.gather(*(write(client) for _ in range(writers)))
            response = await client.patch(f"{stream_app.url}/runs/{run_id}", json={"status": "completed"})
            assert response.status_code == 200
            return await asyncio.wait_for(asyncio.gather(*readers), 30)

    results = asyncio.run(main())

    assert len(results) == subscribers
    for seqs in results:
        assert seqs == list(range(1, total + 1))


def _listener_pids(server) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            " AND application_name = %s",
            [server.db_application_name],
        )
        return {row[0] for row in cursor.fetchall()}


def test_the_listener_reconnects_after_postgres_drops_it_and_subscribers_catch_up(stream_app):
    run_id = str(new_run().pk)
    services.set_run_status(run_id, "running")
    received: list[int] = []
    phase = {"cut": False}

    def on_event(event):
        if event.event == "hello":
            wait_for(lambda: stats(stream_app)["listening"], what="the listener to be up")
            old = _listener_pids(stream_app)
            assert terminate_connections(stream_app.db_application_name, listening_only=True) >= 1
            # Written while nobody listens: no wake-up reaches the server for these.
            append(run_id, 5)
            new = wait_for(lambda: _listener_pids(stream_app) - old, what="a new LISTEN connection")
            assert new
            phase["cut"] = True
        elif event.event == "checkpoint":
            received.append(event.json()["seq"])
            if event.json()["seq"] == 5:
                append(run_id, 5)  # woken through the new connection

    read_events(
        stream_app,
        run_id,
        on_event=on_event,
        stop=lambda e: e.event == "checkpoint" and e.json()["seq"] == 10,
    )

    assert phase["cut"]
    assert received == list(range(1, 11))


# uvicorn re-raises the signal once its graceful shutdown is done; gunicorn's
# arbiter exits 0 once its workers have.
@pytest.mark.parametrize(("serve", "exit_code"), [("uvicorn", -signal.SIGTERM), ("gunicorn", 0)])
def test_a_server_shutdown_closes_open_streams_cleanly(tmp_path, serve, exit_code):
    run_id = str(new_run().pk)
    append(run_id, 2)
    servers = {
        "uvicorn": lambda: stream_server(tmp_path, SSE_KEEPALIVE_SECONDS="30"),
        "gunicorn": lambda: running_server(tmp_path, gunicorn_workers=1, SSE_KEEPALIVE_SECONDS="30"),
    }
    with servers[serve]() as server:
        events: list[str] = []

        def on_event(event):
            events.append(event.event)
            if event.event == "checkpoint" and event.json()["seq"] == 2:
                server.proc.send_signal(signal.SIGTERM)

        # Ends without a transport error: the server finished the response,
        # long before a graceful-shutdown timeout would have cut it.
        started = time.monotonic()
        read_events(server, run_id, on_event=on_event)
        assert server.proc.wait(10) == exit_code
        assert time.monotonic() - started < 10

    assert events == ["hello", "checkpoint", "checkpoint"]


def test_after_every_server_connection_is_dropped_streams_carry_on(stream_app):
    run_id = str(new_run().pk)
    services.set_run_status(run_id, "running")
    received: list[int] = []

    def on_event(event):
        if event.event == "hello":
            wait_for(lambda: stats(stream_app)["listening"], what="the listener to be up")
            old = _listener_pids(stream_app)
            assert terminate_connections(stream_app.db_application_name) >= 1
            append(run_id, 3)
            wait_for(lambda: _listener_pids(stream_app) - old, what="a new LISTEN connection")
        elif event.event == "checkpoint":
            received.append(event.json()["seq"])
            if event.json()["seq"] == 3:
                append(run_id, 3)

    read_events(
        stream_app, run_id, on_event=on_event, stop=lambda e: e.event == "checkpoint" and e.json()["seq"] == 6
    )

    assert received == list(range(1, 7))
    # The server's pool recovered too: a new stream opens and replays from the table.
    assert [e.json()["seq"] for e in read_events(stream_app, run_id, stop=lambda e: e.event == "checkpoint"
            and e.json()["seq"] == 6) if e.event == "checkpoint"] == [1, 2, 3, 4, 5, 6]  # fmt: skip
