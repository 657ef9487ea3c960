"""Signing secrets: made here, kept encrypted, decrypted only to sign.

A signing secret must be read back to compute each delivery's HMAC, so it
cannot be kept as a one-way hash like an API key. It is encrypted at rest
with Fernet (AES-128-CBC and HMAC-SHA256, from `cryptography`) under a key
derived from SECRET_KEY with HKDF, and every key of SECRET_KEY_FALLBACKS
still decrypts, so SECRET_KEY can be rotated. A database dump without
SECRET_KEY holds no usable secret. SECURITY.md says the same.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PREFIX = "whsec_"
# Standard Webhooks asks for 24 to 64 random bytes.
SECRET_BYTES = 32


def generate() -> str:
    """A new secret in the `whsec_<base64>` form Standard Webhooks libraries take."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def is_well_formed(secret: str) -> bool:
    """`whsec_` then base64 of 24 to 64 bytes."""
    if not secret.startswith(PREFIX):
        return False
    try:
        raw = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(raw) <= 64


def server_secrets() -> list[str]:
    """WEBHOOK_SECRET's secrets, the current one first: each signs per-run webhooks."""
    return [secret.strip() for secret in settings.WEBHOOK_SECRET.split(",") if secret.strip()]


def _fernet_key(secret_key: str) -> bytes:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"orchestrator.webhooks", info=b"webhook signing secrets"
    ).derive(secret_key.encode())
    return base64.urlsafe_b64encode(derived)


@lru_cache(maxsize=4)
def _cipher(secret_keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(key)) for key in secret_keys])


def _current_cipher() -> MultiFernet:
    return _cipher((settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS))


def encrypt(secret: str) -> str:
    return _current_cipher().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    """The secret; cryptography.fernet.InvalidToken when no key of SECRET_KEY
    and SECRET_KEY_FALLBACKS encrypted it."""
    return _current_cipher().decrypt(token.encode()).decode()
