"""Shared fixtures: a JSON API client and wire-format checks against the schemas."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.test import Client, override_settings

from runs.validation import validator


def assert_wire(ref: str, body: Any) -> None:
    """Fail when `body` breaks the schema definition `ref` (e.g. run.schema.json#/$defs/run)."""
    errors = list(validator(ref).iter_errors(body))
    assert not errors, [f"{e.instance_path}: {e.message}" for e in errors]


class JSONClient:
    """Django's test client speaking JSON, as API consumers do."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _send(self, method: str, path: str, body: Any = None, **headers: str):
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["data"] = body if isinstance(body, str | bytes) else json.dumps(body)
            kwargs["content_type"] = headers.pop("content_type", "application/json")
        elif method in ("post", "patch"):
            # No body at all, as curl -X POST sends, not the test client's empty multipart form.
            kwargs.update(data=b"", content_type="")
        return getattr(self.client, method)(path, **kwargs)

    def get(self, path: str, **headers: str):
        return self._send("get", path, **headers)

    def post(self, path: str, body: Any = None, **headers: str):
        return self._send("post", path, body, **headers)

    def patch(self, path: str, body: Any = None, **headers: str):
        return self._send("patch", path, body, **headers)

    def delete(self, path: str, **headers: str):
        return self._send("delete", path, **headers)


@pytest.fixture(autouse=True)
def _no_rate_limit_unless_asked(settings):
    """Tests of other features must not trip the limiter; its own tests set their limits."""
    from orchestrator.middleware.ratelimit import RateLimitMiddleware

    settings.RATE_LIMIT_MAX = 0
    settings.RATE_LIMIT_WORKER_MAX = 0
    # A cache failure in one test must not leave the limiter standing aside in the next.
    RateLimitMiddleware._cache_down_until = 0.0


@pytest.fixture
def api(db: None) -> JSONClient:
    return JSONClient(Client())


@pytest.fixture
def make_run(api: JSONClient):
    """Create a run over the API and return its wire form."""

    def make(mode: str = "redis", spec: dict[str, Any] | None = None, **body: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"spec": spec if spec is not None else {"task": "sleep", "input": {}}}
        payload.update(body)
        response = api.post(f"/runs?mode={mode}", payload)
        assert response.status_code == 201, response.content
        return response.json()["run"]

    return make


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """One uvicorn process serving the app over real HTTP for the whole session.

    Tests that use it must write with `transactional_db` (committed data), since
    the server reads the same test database from another process.
    """
    from tests.servers import running_server

    with running_server(tmp_path_factory.mktemp("asgi")) as server:
        yield server


@contextmanager
def setting_everywhere(name: str, value: str) -> Iterator[None]:
    """`name` set to `value` in this process's settings and in the environment
    that the servers and workers tests start inherit; both restored after."""
    previous = os.environ.get(name)
    with override_settings(**{name: value}):
        os.environ[name] = value
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous


@pytest.fixture(scope="session", autouse=True)
def fake_cluster() -> Iterator[Any]:
    """Every k8s-mode run any test creates goes to an in-process fake
    Kubernetes API server (and never to a cluster the machine may know of),
    in this process and in the server processes tests start."""
    from tests.kube.fake_apiserver import FakeKubeAPI

    with FakeKubeAPI() as kube, setting_everywhere("K8S_API_HOST", kube.url):
        yield kube


@pytest.fixture(scope="session", autouse=True)
def redis_key_prefix() -> Iterator[str]:
    """What this session writes to Redis (queue entries, guards, cancel flags),
    in this process and in the servers and workers tests start, goes under a
    prefix of its own, and is removed at the end."""
    from tests.redis_workers import drop_keys, unique_prefix

    prefix = unique_prefix()
    try:
        with setting_everywhere("REDIS_KEY_PREFIX", prefix):
            yield prefix
    finally:
        drop_keys(prefix)


# API keys of `keyed_server`; tests that count a key's requests use one of their own.
SERVER_KEYS = ("server-key-alpha-0123456789", "server-key-beta-0123456789", "server-key-gamma-0123456789")


@pytest.fixture(scope="session")
def keyed_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """A uvicorn process that requires an API key and writes JSON logs (read with `.log()`)."""
    from tests.servers import running_server

    with running_server(
        tmp_path_factory.mktemp("keyed"), ORCHESTRATOR_API_KEY=",".join(SERVER_KEYS), LOG_FORMAT="json"
    ) as server:
        yield server


@pytest.fixture
def queue(settings):
    """The run queue under a key prefix of this test's own, in this process
    (set REDIS_KEY_PREFIX=settings.REDIS_KEY_PREFIX for processes it starts)."""
    from runs.redis import queue as run_queue
    from tests.redis_workers import drop_keys, unique_prefix

    settings.REDIS_KEY_PREFIX = unique_prefix()
    queue = run_queue.run_queue()
    queue.ensure_group()
    yield queue
    drop_keys(settings.REDIS_KEY_PREFIX)
