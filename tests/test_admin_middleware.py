"""The admin keeps its sessions, CSRF and auth; the API carries none of them."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_admin_login_page_sets_a_csrf_cookie_and_logs_in(client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456")

    page = client.get("/admin/login/")
    assert page.status_code == 200
    assert "csrftoken" in page.cookies

    logged_in = client.post("/admin/login/?next=/admin/", {"username": "root", "password": "pw-123456"})
    assert logged_in.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_api_answers_carry_no_session_or_csrf_cookie(client):
    response = client.get("/runs")

    assert response.status_code == 200
    assert not response.cookies
    assert response["X-Content-Type-Options"] == "nosniff"
    assert int(response["Content-Length"]) == len(response.content)
