"""Probes an orchestrator platform checks before sending traffic."""

from __future__ import annotations

import pytest
from django.test import override_settings


def test_health_touches_nothing(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"ok": True, "service": "orchestrator"}


@pytest.mark.django_db
def test_ready_when_the_database_is_migrated_and_redis_answers(client):
    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"ok": True}


@pytest.mark.django_db
@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_not_ready_names_what_is_down(client):
    response = client.get("/ready")

    assert response.status_code == 503
    assert "redis" in response.json()["details"]
    assert "database" not in response.json()["details"]


@pytest.mark.django_db
def test_ready_does_not_depend_on_redis_where_redis_mode_is_not_used(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    null = "runs.backends.base.NullBackend"
    settings.ORCHESTRATOR_BACKENDS = {**settings.ORCHESTRATOR_BACKENDS, "redis": null}

    response = client.get("/ready")

    assert response.status_code == 200


@pytest.mark.django_db
def test_ready_checks_the_default_redis_when_redis_url_is_unset(client, settings):
    settings.REDIS_URL = ""
    settings.REDIS_DEFAULT_URL = "redis://127.0.0.1:1/0"  # where nothing listens

    response = client.get("/ready")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "(the default: REDIS_URL is unset)" in response.json()["details"]["redis"]
