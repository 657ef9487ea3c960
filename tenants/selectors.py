"""Reads of API keys for the API, the commands and the admin."""

from __future__ import annotations

import uuid

from runs.selectors import newest_first_page
from tenants.exceptions import ApiKeyNotFound
from tenants.models import ApiKey


def list_keys(
    *, owner: str | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[list[ApiKey], str | None]:
    queryset = ApiKey.objects.all()
    if owner is not None:
        queryset = queryset.filter(owner=owner)
    return newest_first_page(queryset, limit=limit, cursor=cursor)


def get_key(key_id: str, *, owner: str | None = None) -> ApiKey:
    try:
        pk = uuid.UUID(str(key_id))
    except ValueError:
        raise ApiKeyNotFound() from None
    queryset = ApiKey.objects.filter(pk=pk)
    if owner is not None:
        queryset = queryset.filter(owner=owner)
    api_key = queryset.first()
    if api_key is None:
        raise ApiKeyNotFound()
    return api_key
