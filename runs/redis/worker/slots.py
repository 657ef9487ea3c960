"""The runs a worker holds right now, shared by its slot, heartbeat and cancel threads."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from runs.redis.queue import Entry
from runs.redis.worker.context import TaskContext


@dataclass
class Slot:
    entry: Entry
    ctx: TaskContext
    timer: threading.Timer | None = None
    started: float = field(default_factory=time.monotonic)


class Slots:
    """Run id to Slot, safe to use from any of the worker's threads."""

    def __init__(self) -> None:
        self._slots: dict[str, Slot] = {}
        self._lock = threading.Lock()

    def add(self, slot: Slot) -> None:
        with self._lock:
            self._slots[slot.ctx.run_id] = slot

    def get(self, run_id: str) -> Slot | None:
        with self._lock:
            return self._slots.get(run_id)

    def pop(self, run_id: str) -> Slot | None:
        with self._lock:
            return self._slots.pop(run_id, None)

    def all(self) -> list[Slot]:
        with self._lock:
            return list(self._slots.values())

    def run_ids(self) -> list[str]:
        with self._lock:
            return list(self._slots)
