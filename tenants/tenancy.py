"""What a tenant's credential may see: the views ask here, so the rule is one.

A tenant key (or a token minted with one) is limited to its owner. What it
creates gets that owner whatever the request says; it sees only that
owner's things, and another owner's thing is answered as if it did not
exist (404), so that a tenant cannot learn which ids others hold. Master
keys, per-run tokens and an API without keys are not limited.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from orchestrator.errors import APIError
from orchestrator.middleware.auth import restricted_owner
from runs.exceptions import BadParameter


def owner_limit(request: HttpRequest) -> str | None:
    """The only owner this request may see; None: any."""
    return restricted_owner(request)


def list_owner(request: HttpRequest, asked: str | None) -> str | None:
    """The owner a list is filtered by: the tenant's own, whatever was asked.

    Asking a tenant's list for another owner is a 400, as on the journal
    stream, rather than a silently empty page.
    """
    limit = owner_limit(request)
    if limit is None:
        return asked
    if asked is not None and asked != limit:
        raise BadParameter("owner", "this credential sees only its own owner's records")
    return limit


def creation_owner(request: HttpRequest, asked: str | None) -> str | None:
    """The owner of what this request creates: a tenant's own, else what was asked."""
    limit = owner_limit(request)
    return asked if limit is None else limit


def check_visible(request: HttpRequest, record: Any, not_found: type[APIError]) -> Any:
    """`record` when this request may see it; `not_found()` raised otherwise."""
    limit = owner_limit(request)
    if record is None or (limit is not None and (record.owner or "") != limit):
        raise not_found()
    return record
