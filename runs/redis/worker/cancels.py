"""Cancels reach a worker over Redis pub/sub at once; a flag per run covers
the moments it was not subscribed."""

from __future__ import annotations

import logging
import threading

import redis

from runs.redis.queue import RunQueue
from runs.redis.worker.context import CANCELED
from runs.redis.worker.slots import Slots

logger = logging.getLogger("runs.worker")


class CancelListener:
    def __init__(self, queue: RunQueue, worker_id: str, slots: Slots) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.slots = slots
        self.listening = threading.Event()  # subscribed to cancels

    def run(self, closing: threading.Event) -> None:
        """Listen, reconnecting after a Redis failure, until `closing` is set."""
        channel = self.queue.keys.cancel_channel
        while not closing.is_set():
            pubsub = self.queue.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(channel)
                self.listening.set()
                self.check_flags()  # whatever was announced while we were not listening
                while not closing.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        self.cancel(str(message["data"]))
            except redis.RedisError as exc:
                logger.warning("cancel listener reconnecting", extra={"reason": exc.__class__.__name__})
                closing.wait(1.0)
            finally:
                pubsub.close()

    def check_flags(self) -> None:
        run_ids = self.slots.run_ids()
        if not run_ids:
            return
        flags = self.queue.redis.mget([self.queue.keys.cancel_flag(run_id) for run_id in run_ids])
        for run_id, flag in zip(run_ids, flags, strict=True):
            if flag:
                self.cancel(run_id)

    def cancel(self, run_id: str) -> None:
        slot = self.slots.get(run_id)
        if slot and slot.ctx.request_stop(CANCELED):
            logger.info("run canceled: stopping its task", extra={"runId": run_id, "worker": self.worker_id})
