"""The app answers over real HTTP from its own process, against the test database."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_created_over_http_is_visible_to_the_test(asgi_server):
    from runs.models import Run

    response = httpx.post(f"{asgi_server.url}/runs?mode=redis", json={"spec": {"task": "sleep"}})

    assert response.status_code == 201
    assert Run.objects.filter(pk=response.json()["runId"]).exists()
