"""`make run` on a bare machine: the embedded SQLite default serves the whole REST flow."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.servers import ROOT, ServerProcess, free_port, process_env, uvicorn_argv


def test_the_api_works_end_to_end_on_the_embedded_sqlite_database(tmp_path):
    env = process_env(DATABASE_URL=f"sqlite:///{tmp_path / 'orchestrator.sqlite3'}", REDIS_URL="")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    port = free_port()
    server = ServerProcess(uvicorn_argv(port), port, env, tmp_path / "server.log").start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            created = http.post("/runs?mode=redis", json={"spec": {"task": "sleep"}})
            assert created.status_code == 201, created.text
            run_id = created.json()["runId"]

            batch = http.post(
                f"/runs/{run_id}/checkpoints",
                json={"checkpoints": [{"type": "t", "data": i} for i in range(3)]},
            )
            assert [cp["seq"] for cp in batch.json()["checkpoints"]] == [1, 2, 3]
            single = http.post(f"/runs/{run_id}/checkpoints", json={"type": "t", "data": 3})
            assert single.json()["checkpoint"]["seq"] == 4

            keyed = {
                "checkpoints": [{"type": "t", "data": 4, "key": "k4"}, {"type": "t", "data": 5, "key": "k5"}]
            }
            stored = http.post(f"/runs/{run_id}/checkpoints", json=keyed)
            replayed = http.post(f"/runs/{run_id}/checkpoints", json=keyed)
            assert (stored.status_code, replayed.status_code) == (201, 200)
            assert replayed.json() == stored.json()
            clash = http.post(f"/runs/{run_id}/checkpoints", json={"type": "other", "key": "k4"})
            assert clash.status_code == 409 and clash.json()["code"] == "idempotency_conflict"

            listed = http.get(f"/runs/{run_id}/checkpoints").json()["checkpoints"]
            assert [cp["data"] for cp in listed] == [0, 1, 2, 3, 4, 5]
            assert http.get("/ready").json() == {"ok": True}
            assert http.delete(f"/runs/{run_id}").json()["status"] == "canceled"
            assert http.post(f"/runs/{run_id}/checkpoints", json={"type": "late"}).status_code == 409
    finally:
        server.stop()
