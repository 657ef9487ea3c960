"""The admin: a subscription's secret is shown once, on the page answering
its creation or rotation; deliveries can be redelivered."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.webhooks.conftest import make_delivery, make_webhook
from webhooks import secrets
from webhooks.models import Delivery, Webhook

PUBLIC_URL = "https://93.184.215.14/hook"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_creating_a_webhook_shows_its_secret_once(admin_client):
    response = admin_client.post(
        reverse("admin:webhooks_webhook_add"),
        {"url": PUBLIC_URL, "events": ["run.completed", "run.failed"], "description": "ops", "active": "on"},
    )

    assert response.status_code == 200, response.content
    webhook = Webhook.objects.get()
    secret = secrets.decrypt(webhook.secret_encrypted)
    assert secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    change_page = admin_client.get(reverse("admin:webhooks_webhook_change", args=[webhook.pk]))
    listing = admin_client.get(reverse("admin:webhooks_webhook_changelist"))
    for page in (change_page, listing):
        assert page.status_code == 200
        assert secret not in page.content.decode()
        assert webhook.secret_encrypted not in page.content.decode()


def test_the_admin_refuses_a_private_url(admin_client):
    response = admin_client.post(
        reverse("admin:webhooks_webhook_add"), {"url": "http://localhost/hook", "events": ["run.completed"]}
    )

    assert response.status_code == 200
    assert "loopback" in response.content.decode()
    assert not Webhook.objects.exists()


def test_rotating_from_the_admin_shows_the_new_secret(admin_client):
    webhook, old = make_webhook(PUBLIC_URL)

    response = admin_client.post(
        reverse("admin:webhooks_webhook_changelist"),
        {"action": "rotate_secret", "_selected_action": [webhook.pk]},
    )

    stored = Webhook.objects.get()
    new = secrets.decrypt(stored.secret_encrypted)
    assert new != old
    page = response.content.decode()
    assert new in page
    assert old not in page
    assert 'id="previous-secret"' in page
    assert secrets.decrypt(stored.previous_secret_encrypted) == old
    assert stored.previous_secret_expires_at is not None


def test_deliveries_can_be_redelivered(admin_client):
    webhook, _ = make_webhook(PUBLIC_URL)
    delivery = make_delivery(webhook)
    Delivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=3, next_attempt_at=None)

    page = admin_client.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk]))
    response = admin_client.post(
        reverse("admin:webhooks_delivery_changelist"),
        {"action": "redeliver", "_selected_action": [delivery.pk]},
    )

    assert page.status_code == 200 and "run.completed" in page.content.decode()
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.series_start) == ("pending", 3)
