"""A server started on a database nobody migrated says so, once, and answers
503 `not_ready` instead of 500s until the migrations are in."""

from __future__ import annotations

import subprocess
import sys

import httpx
import psycopg
import pytest
from django.conf import settings

from tests import servers
from tests.servers import ROOT, process_env, running_server
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def empty_database():
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL")
    name = f"{settings.DATABASES['default']['NAME']}_unmigrated"
    admin = servers.test_database_url().rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield servers.test_database_url().rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_unmigrated_database_is_a_503_not_ready_on_every_api_path(tmp_path, empty_database):
    with running_server(tmp_path, DATABASE_URL=empty_database) as server:
        answers = [
            httpx.get(f"{server.url}/runs"),
            httpx.post(f"{server.url}/runs?mode=redis", json={"spec": {"task": "sleep"}}),
            httpx.get(f"{server.url}/runs/00000000-0000-0000-0000-000000000000/checkpoints"),
        ]
        ready = httpx.get(f"{server.url}/ready")
        health = httpx.get(f"{server.url}/health")
        log = server.log()

        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=process_env(DATABASE_URL=empty_database),
            check=True,
            timeout=120,
        )
        # The guard looks again a second after its last look.
        served = wait_for(
            lambda: (r := httpx.get(f"{server.url}/runs")).status_code != 503 and r, what="serving"
        )

    for response in answers:
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json()["code"] == "not_ready"
        assert "python manage.py migrate" in response.json()["error"]
    assert ready.status_code == 503 and ready.headers["Retry-After"] == "5"
    assert ready.json()["details"]["database"].startswith("migrations not applied")
    assert health.status_code == 200
    assert log.count("the database is not migrated") == 1
    assert served.status_code == 200


def test_the_start_up_log_says_which_redis_redis_mode_uses(tmp_path):
    with running_server(tmp_path, REDIS_URL="") as server:
        log = server.log()

    assert "redis mode dispatches to redis://127.0.0.1:6379/0 (the default: REDIS_URL is unset)" in log
