"""Tenant keys for tests: an API with a master key, and keys made through the service."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from tenants import scopes, services

MASTER = "master-key-for-tenant-tests-0123456789"


@pytest.fixture
def master(settings) -> dict[str, str]:
    """Turns authentication on (a master key) and returns the master's headers."""
    settings.ORCHESTRATOR_API_KEYS = [MASTER]
    return {"Authorization": f"Bearer {MASTER}"}


KeyMaker = Callable[..., dict[str, str]]


@pytest.fixture
def tenant_key(master, db) -> KeyMaker:
    """make(owner, scopes=ALL) -> the headers of a new key of that owner."""

    def make(owner: str, granted: Iterable[str] = scopes.ALL, **fields: object) -> dict[str, str]:
        _, secret = services.create_key(name=f"{owner} key", owner=owner, scopes=list(granted), **fields)
        return {"Authorization": f"Bearer {secret}"}

    return make
