"""Our deliveries verify with the `standardwebhooks` package, as receivers check them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from webhooks import secrets, signing
from webhooks.checks import webhook_secret_check

BODY = '{"type":"run.completed","timestamp":"2026-12-01T10:00:00.000000Z","data":{"run":{}}}'


def test_the_package_verifies_our_signature():
    secret = secrets.generate()
    message_id = "d1b3c5e7-0000-4000-8000-000000000001"
    headers = signing.signed_headers(message_id, BODY, [secret], datetime.now(UTC))

    assert Verifier(secret).verify(BODY, headers) == {
        "type": "run.completed",
        "timestamp": "2026-12-01T10:00:00.000000Z",
        "data": {"run": {}},
    }
    assert headers["webhook-id"] == "d1b3c5e7-0000-4000-8000-000000000001"
    assert headers["webhook-signature"].startswith("v1,")


def test_another_secret_or_body_does_not_verify():
    secret = secrets.generate()
    headers = signing.signed_headers("msg-1", BODY, [secret], datetime.now(UTC))

    with pytest.raises(WebhookVerificationError):
        Verifier(secrets.generate()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(BODY.replace("completed", "failed"), headers)


def test_the_timestamp_is_the_attempts_own():
    at = datetime(2026, 12, 1, 10, 0, 30, 900000, tzinfo=UTC)
    headers = signing.signed_headers("msg-1", BODY, [secrets.generate()], at)

    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    secret = secrets.generate()
    stale = signing.signed_headers("msg-1", BODY, [secret], datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(BODY, stale)


def test_each_of_several_secrets_verifies_and_no_other_does():
    current, previous = secrets.generate(), secrets.generate()
    headers = signing.signed_headers("msg-1", BODY, [current, previous], datetime.now(UTC))

    assert len(headers["webhook-signature"].split(" ")) == 2
    assert headers["webhook-signature"].split(" ")[0] == signing.signed_headers(
        "msg-1", BODY, [current], datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    )["webhook-signature"]
    Verifier(current).verify(BODY, headers)
    Verifier(previous).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(secrets.generate()).verify(BODY, headers)


def test_a_bare_string_is_not_taken_for_a_list_of_secrets():
    with pytest.raises(ValueError):
        signing.signed_headers("msg-1", BODY, secrets.generate(), datetime.now(UTC))
    with pytest.raises(ValueError):
        signing.signed_headers("msg-1", BODY, [], datetime.now(UTC))


def test_generated_secrets_are_well_formed_and_distinct():
    made = {secrets.generate() for _ in range(50)}

    assert len(made) == 50
    assert all(secrets.is_well_formed(secret) for secret in made)
    assert not secrets.is_well_formed("whsec_c2hvcnQ=")
    assert not secrets.is_well_formed("not-a-secret")


def test_a_secret_encrypted_under_an_old_key_still_decrypts(settings):
    settings.SECRET_KEY = "old-key-0123456789"
    token = secrets.encrypt("whsec_abc")

    settings.SECRET_KEY = "new-key-0123456789"
    settings.SECRET_KEY_FALLBACKS = ["old-key-0123456789"]

    assert secrets.decrypt(token) == "whsec_abc"


def test_a_malformed_server_secret_fails_the_checks(settings):
    settings.WEBHOOK_SECRET = "hunter2"
    assert [error.id for error in webhook_secret_check(None)] == ["webhooks.E001"]

    settings.WEBHOOK_SECRET = secrets.generate()
    assert webhook_secret_check(None) == []

    settings.WEBHOOK_SECRET = f"{secrets.generate()}, {secrets.generate()}"
    assert webhook_secret_check(None) == []
    assert len(secrets.server_secrets()) == 2

    settings.WEBHOOK_SECRET = f"{secrets.generate()},hunter2"
    assert [error.id for error in webhook_secret_check(None)] == ["webhooks.E001"]
