"""Wake-ups for the hub: one shared PostgreSQL `LISTEN` connection (psycopg 3
async) per process, on the runs channel and the journal's, which reconnects
by itself with backoff and, once listening again, wakes every tail (the run
list's too) so subscribers catch up from the table.
Elsewhere (SQLite) in-process wake-ups after commit plus a short poll do it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import psycopg
from django.conf import settings
from django.db import connection

from runs import notify

if TYPE_CHECKING:
    from runs.stream.hub import Hub

logger = logging.getLogger("runs.stream")

# How long the connection may stay quiet before the listener checks its peer.
QUIET_CHECK_SECONDS = 30.0

_LISTEN = f'LISTEN "{notify.CHANNEL}"; LISTEN "{notify.JOURNAL_CHANNEL}"'


async def listen_forever(hub: Hub, params: dict[str, Any], max_backoff: float) -> None:
    delay = 0.05
    while not hub.closing:
        try:
            conn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
        except Exception as exc:
            logger.warning("event stream listener cannot connect: %s", exc.__class__.__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)
            continue
        try:
            async with conn:
                await conn.execute(_LISTEN)
                hub.listening = True
                delay = 0.05
                # Whatever committed while nobody listened is in the table.
                hub.wake_all()
                while True:
                    async for note in conn.notifies(timeout=QUIET_CHECK_SECONDS):
                        if note.channel == notify.JOURNAL_CHANNEL:
                            hub.wake_journal(note.payload)
                        else:
                            hub.wake(note.payload)
                    # Quiet for a while: make sure the peer is still there. LISTEN
                    # again rather than SELECT 1: it changes nothing, and the
                    # connection's last query in pg_stat_activity keeps saying
                    # what it is for (operators and tests find it by that).
                    await conn.execute(_LISTEN)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("event stream listener lost its connection: %s", exc.__class__.__name__)
        finally:
            hub.listening = False
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_backoff)


async def poll_forever(hub: Hub, interval: float) -> None:
    while not hub.closing:
        await asyncio.sleep(interval)
        hub.wake_all()


def listener_params() -> dict[str, Any]:
    params = connection.get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    params.setdefault("application_name", "orchestrator-stream-listener")
    return params


def poll_interval() -> float:
    configured = settings.SSE_POLL_SECONDS
    if configured >= 0:
        return configured
    return 0.0 if connection.vendor == "postgresql" else 1.0
