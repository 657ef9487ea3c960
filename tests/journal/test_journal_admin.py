"""Operators read the journal in the admin; nobody edits it there."""

from __future__ import annotations

import pytest

from journal import selectors
from runs import services

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/journal/entry/"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_the_entries_are_listed_and_searchable_by_run_but_read_only(admin_client):
    run, _ = services.create_run(mode="redis", spec={"task": "sleep"})
    services.cancel_run(run.id)
    other, _ = services.create_run(mode="redis", spec={"task": "sleep"})
    entries = selectors.entries_of_run(run.id)

    page = admin_client.get(CHANGELIST, {"q": str(run.id)})
    assert page.status_code == 200
    text = page.content.decode()
    assert "run.created" in text and "run.canceled" in text
    assert str(other.id) not in text

    detail = admin_client.get(f"{CHANGELIST}{entries[0].id}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{entries[0].id}/delete/", {"post": "yes"}).status_code == 403
    assert len(selectors.entries_of_run(run.id)) == 2
