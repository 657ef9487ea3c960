"""The Redis workers, from their heartbeats: who is alive, what each holds."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from runs.management import render
from runs.management.backends import reachable_redis
from runs.management.base import OrchestratorCommand
from runs.redis import fleet
from runs.redis.queue import run_queue

HEADER = (
    f"{'NAME':32}  {'HOST':20}  {'PID':>7}  {'SLOTS':>5}  {'BUSY':>4}  {'HEARTBEAT':>9}  {'STATE':7}  RUNS"
)


def worker_row(worker: dict[str, Any]) -> str:
    runs = ",".join(run_id[:8] for run_id in worker["runs"]) or "-"
    return (
        f"{worker['name']:32}  {worker['host'][:20]:20}  {worker['pid']:>7}  {worker['slots']:>5}  "
        f"{worker['busy']:>4}  {worker['secondsSinceHeartbeat']:>8.1f}s  {worker['state']:7}  {runs}"
    )


class Command(OrchestratorCommand):
    help = (
        "List the Redis workers from their heartbeats: name, host, pid, slots, busy slots, the runs "
        "each holds, seconds since its last heartbeat, and whether it is alive, gone (no heartbeat "
        "for WORKER_LEASE_SECONDS) or stopped (it said goodbye). Gone and stopped workers stay listed "
        "for WORKER_RECORD_KEEP_SECONDS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--alive", action="store_true", help="only the workers alive now")
        parser.add_argument(
            "--json",
            action="store_true",
            help='one worker per line: {"name", "host", "pid", "slots", "busy", "runs", "stream", '
            '"startedAt", "heartbeatAt", "secondsSinceHeartbeat", "state"}',
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        with reachable_redis():
            workers = [worker.to_wire() for worker in fleet.list_workers(run_queue())]
        if opts["alive"]:
            workers = [worker for worker in workers if worker["state"] == fleet.ALIVE]
        if opts["json"]:
            for worker in workers:
                self.stdout.write(render.json_line(worker))
            return
        self.stdout.write(HEADER)
        for worker in workers:
            self.stdout.write(worker_row(worker))
        alive = sum(1 for worker in workers if worker["state"] == fleet.ALIVE)
        self.stderr.write(
            f"{alive} alive, {len(workers) - alive} gone or stopped "
            f"(alive: a heartbeat within {settings.WORKER_LEASE_SECONDS:g} s)"
        )
