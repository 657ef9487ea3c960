"""Issuing and revoking API keys, and the per-request check of a presented key."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from tenants import keys, scopes
from tenants.exceptions import ApiKeyNotFound
from tenants.models import ApiKey

logger = logging.getLogger("tenants.services")

# last_used_at is a hint for operators ("is this key still in use?"), not a
# log: writing it at most this often keeps the hot path to one read.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class InvalidKeyRequest(ValueError):
    """A key cannot be made as asked (unknown scope, past expiry, blank field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class KeyIdentity:
    """A database key that checked out: who it is and what it may do."""

    id: uuid.UUID
    prefix: str
    owner: str
    scopes: frozenset[str]


def check_request(name: str, owner: str, requested: Iterable[str], expires_at: datetime | None) -> list[str]:
    """The key's scopes, de-duplicated in canonical order; InvalidKeyRequest when a field is wrong."""
    if not name.strip():
        raise InvalidKeyRequest("name", "must not be blank")
    if not owner.strip():
        raise InvalidKeyRequest("owner", "must not be blank")
    wanted = list(requested)
    unknown = [scope for scope in wanted if scope not in scopes.ALL]
    if unknown:
        raise InvalidKeyRequest("scopes", f"unknown scope {unknown[0]!r}; known: {', '.join(scopes.ALL)}")
    if not wanted:
        raise InvalidKeyRequest("scopes", "at least one scope")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidKeyRequest("expiresAt", "must be in the future")
    return [scope for scope in scopes.ALL if scope in wanted]


def create_key(
    *, name: str, owner: str, scopes: Iterable[str], expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """A new key for `owner` with `scopes`; returns the record and the key (shown once)."""
    granted = check_request(name, owner, scopes, expires_at)
    for _ in range(5):
        secret, prefix, hashed = keys.generate()
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    name=name.strip(),
                    owner=owner.strip(),
                    scopes=granted,
                    prefix=prefix,
                    hashed_key=hashed,
                    expires_at=expires_at,
                )
                audit.record(
                    "apikey.create",
                    "apikey",
                    api_key.id,
                    owner=api_key.owner,
                    details={"prefix": prefix, "name": api_key.name, "scopes": granted},
                )
        except IntegrityError:
            continue  # the random prefix was taken (one chance in 62**8 per key held): draw again
        logger.info("api key created", extra={"event": "apikey_created", "prefix": prefix})
        return api_key, secret
    raise RuntimeError("could not draw an unused key prefix")


def _key_filter(id_or_prefix: Any) -> Q:
    try:
        return Q(pk=uuid.UUID(str(id_or_prefix)))
    except ValueError:
        return Q(prefix=str(id_or_prefix))


def revoke_key(id_or_prefix: Any, *, owner: str | None = None) -> ApiKey:
    """Revoke at once: the next request with the key is refused, in every process.

    Revoking a revoked key changes nothing and is not recorded again.
    `owner` limits the keys this call may touch (a tenant's own).
    """
    with transaction.atomic():
        queryset = ApiKey.objects.select_for_update().filter(_key_filter(id_or_prefix))
        if owner is not None:
            queryset = queryset.filter(owner=owner)
        api_key = queryset.first()
        if api_key is None:
            raise ApiKeyNotFound()
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
            audit.record(
                "apikey.revoke", "apikey", api_key.id, owner=api_key.owner, details={"prefix": api_key.prefix}
            )
            logger.info("api key revoked", extra={"event": "apikey_revoked", "prefix": api_key.prefix})
    return api_key


_KEY_COLUMNS = ("id", "owner", "scopes", "hashed_key", "expires_at", "revoked_at", "last_used_at")
# The ORM spends about 0.3 ms building and reading this one query, more than
# PostgreSQL takes to answer it; every request with a tenant key runs it.
_KEY_SQL = f"SELECT {', '.join(_KEY_COLUMNS)} FROM {ApiKey._meta.db_table} WHERE prefix = %s"  # noqa: S608


def _key_row(prefix: str) -> tuple[Any, ...] | None:
    if connection.vendor != "postgresql":
        return ApiKey.objects.filter(prefix=prefix).values_list(*_KEY_COLUMNS).first()
    with connection.cursor() as cursor:
        cursor.execute(_KEY_SQL, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    # Django reads jsonb as text and leaves decoding to the field.
    scopes = row[2] if isinstance(row[2], list) else json.loads(row[2])
    return (row[0], row[1], scopes, *row[3:])


def authenticate(presented: str) -> tuple[KeyIdentity | None, str | None]:
    """(identity, None) for a good key; (None, problem code) otherwise.

    One indexed read per request and no cache, so a revocation or an expiry
    holds on the very next request in every process (docs/performance.md
    has what it costs). The hash is compared even for an unknown prefix.
    """
    prefix = keys.prefix_of(presented)
    row = _key_row(prefix) if prefix is not None else None
    if row is None:
        keys.verify(presented, keys.DECOY_HASH)
        return None, "invalid_credentials"
    key_id, owner, granted, hashed, expires_at, revoked_at, last_used_at = row
    if not keys.verify(presented, hashed):
        return None, "invalid_credentials"
    now = timezone.now()
    if revoked_at is not None:
        return None, "revoked_key"
    if expires_at is not None and expires_at <= now:
        return None, "expired_key"
    if last_used_at is None or last_used_at < now - LAST_USED_RESOLUTION:
        # Conditional, so processes racing here write once between them.
        ApiKey.objects.filter(pk=key_id).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
    return KeyIdentity(id=key_id, prefix=prefix or "", owner=owner, scopes=frozenset(granted)), None
