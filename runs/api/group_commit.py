"""Group commit: the appends a server process receives at once, stored in one
statement.

Each append costs a thread hop, a round trip and a commit; under load most
of a single append's database time was that overhead, paid once per
checkpoint. Here an append waits on the event loop while a group is being
stored, and the appends that arrived meanwhile go out together as soon as
the group before them has committed (at once when none is in flight). A
request is answered only after the commit that stored it, with its own
checkpoints; `services.append_checkpoints_together` keeps each request's
errors its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from typing import Any

from orchestrator import db_threads
from orchestrator.futures import PerLoop, answer_each
from runs import metrics, services
from runs.checkpoint_writer import Appended

# Groups being stored at once, per process. One keeps the groups large while
# the process is busy; the next one starts the moment it commits.
IN_FLIGHT = 1

Waiting = tuple[uuid.UUID, list[dict[str, Any]], "asyncio.Future[list[Appended]]"]


class GroupCommit:
    """The appends of one event loop, gathered into groups."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._waiting: list[Waiting] = []
        self._in_flight = 0
        self._flush_scheduled = False
        self._storing: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def append(self, run_pk: uuid.UUID, items: list[dict[str, Any]]) -> list[Appended]:
        future: asyncio.Future[list[Appended]] = self.loop.create_future()
        self._waiting.append((run_pk, items, future))
        metrics.CHECKPOINT_APPENDS_WAITING.inc()
        self._schedule_flush()
        return await future

    def _schedule_flush(self) -> None:
        # On the loop's next turn, so that the appends ready in this one join the group.
        if not self._flush_scheduled and self._in_flight < IN_FLIGHT:
            self._flush_scheduled = True
            # A context of its own: a group belongs to no one request (its id in logs).
            self.loop.call_soon(self._flush, context=contextvars.Context())

    def _flush(self) -> None:
        self._flush_scheduled = False
        group, self._waiting = self._waiting, []
        if not group:
            return
        metrics.CHECKPOINT_APPENDS_WAITING.dec(len(group))
        metrics.CHECKPOINT_GROUPS.inc()
        self._in_flight += 1
        task = self.loop.create_task(self._store(group))
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)

    async def _store(self, group: list[Waiting]) -> None:
        try:
            outcomes = await db_threads.on_threads(
                services.append_checkpoints_together, [(run_pk, items) for run_pk, items, _ in group]
            )
        except asyncio.CancelledError:  # the loop is closing
            for _, _, future in group:
                future.cancel()
            raise
        except Exception as exc:  # the group may have been stored: every request answers the error
            outcomes = [exc] * len(group)
        finally:
            self._in_flight -= 1
            if self._waiting:
                self._schedule_flush()
        # A client that went away has its append stored all the same.
        answer_each((future for _, _, future in group), outcomes)


_groups = PerLoop(GroupCommit)


async def append(run_id: Any, items: list[dict[str, Any]]) -> list[Appended]:
    """`services.append_checkpoints(run_id, items)`, stored with the other appends of this moment.

    Single appends only, and only under the ASGI server, whose requests have
    no thread or transaction of their own; elsewhere (the test client) each
    append is stored alone.
    """
    if not db_threads.served_by_asgi_server.get() or len(items) > 1:
        # A batch is one statement already: behind a group it would only wait,
        # where on a thread of its own its database time overlaps other requests' work.
        return await db_threads.run(services.append_checkpoints, run_id, items)
    run_pk, items = services.checked_append(run_id, items)
    return await _groups.get().append(run_pk, items)
