"""Retention: journal_prune deletes the oldest entries, as a prefix in id order."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from journal import selectors
from journal.models import Entry
from runs import services

pytestmark = pytest.mark.django_db


def entries(count: int) -> list[int]:
    for _ in range(count):
        services.create_run(mode="redis", spec={"task": "sleep"})
    return list(Entry.objects.order_by("id").values_list("id", flat=True))


def age(ids: list[int], days: float) -> None:
    Entry.objects.filter(id__in=ids).update(at=timezone.now() - timedelta(days=days))


def prune(*args: str) -> dict[str, object]:
    out = StringIO()
    call_command("journal_prune", *args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def test_entries_past_the_retention_go_oldest_first(settings):
    settings.JOURNAL_RETENTION = timedelta(days=7)
    ids = entries(6)
    age(ids[:3], days=8)
    # Out of order (another server's clock): older, but after a kept entry. It stays,
    # so the journal keeps every entry from its oldest on.
    age(ids[4:5], days=9)

    assert prune("--dry-run") == {"dryRun": True, "entries": 3}
    assert Entry.objects.count() == 6
    assert prune("--batch-size", "2") == {"dryRun": False, "entries": 3}

    assert list(Entry.objects.order_by("id").values_list("id", flat=True)) == ids[3:]
    assert selectors.first_kept_id() == ids[3]


def test_older_than_overrides_the_setting_and_the_ids_go_on():
    ids = entries(3)
    age(ids, days=2)
    assert prune("--older-than", "1d") == {"dryRun": False, "entries": 3}
    assert selectors.oldest_id() is None
    assert selectors.first_kept_id() == ids[-1] + 1
    services.create_run(mode="redis", spec={"task": "sleep"})
    assert selectors.oldest_id() == ids[-1] + 1


@pytest.mark.parametrize("args", [["--older-than", "soon"], ["--batch-size", "0"]])
def test_bad_options_are_one_line_errors(args):
    with pytest.raises(CommandError):
        call_command("journal_prune", *args, stdout=StringIO(), stderr=StringIO())
