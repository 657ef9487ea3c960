"""The ASGI handler announces a request without a thread hop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core import signals
from django.db import close_old_connections, reset_queries

from orchestrator.handler import PooledThreadASGIHandler


@pytest.fixture
def request_started_receivers() -> Iterator[None]:
    """The handler changes a process-wide signal; put Django's receivers back afterwards."""
    yield
    signals.request_started.connect(reset_queries)
    signals.request_started.connect(close_old_connections)


def test_outside_debug_nothing_listens_to_request_started(settings, request_started_receivers):
    settings.DEBUG = False

    PooledThreadASGIHandler()

    # With no receiver, Django's handler announces a request without a hop to a thread.
    assert not signals.request_started.has_listeners(PooledThreadASGIHandler)


def test_under_debug_djangos_receivers_stay(settings, request_started_receivers):
    settings.DEBUG = True

    PooledThreadASGIHandler()

    assert signals.request_started.has_listeners(PooledThreadASGIHandler)


# That request_finished still gives each request's connections back is what
# tests/test_append_over_http.py checks with a pool of two connections.
