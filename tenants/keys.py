"""Making and checking API key secrets, with djangorestframework-api-key's
KeyGenerator (its public API only): a random prefix, a random secret, and a
SHA-512 hash of the whole key compared in constant time.

A key reads `<prefix>.<secret>`: 8 and 32 letters and digits. The prefix is
stored in clear (it finds the row and names the key); the secret never is.
"""

from __future__ import annotations

import re

from rest_framework_api_key.crypto import KeyGenerator

PREFIX_LENGTH = 8
SECRET_LENGTH = 32
KEY_SHAPE = re.compile(rf"^(?P<prefix>[A-Za-z0-9]{{{PREFIX_LENGTH}}})\.[A-Za-z0-9]{{{SECRET_LENGTH}}}$")

_generator = KeyGenerator(prefix_length=PREFIX_LENGTH, secret_key_length=SECRET_LENGTH)


def generate() -> tuple[str, str, str]:
    """(key, prefix, hashed key): the key is shown once, the other two stored."""
    return _generator.generate()


def prefix_of(presented: str) -> str | None:
    """The prefix of something shaped like one of our keys; None otherwise."""
    match = KEY_SHAPE.match(presented)
    return match["prefix"] if match else None


def verify(presented: str, hashed_key: str) -> bool:
    return _generator.verify(presented, hashed_key)


# What a lookup of an unknown prefix still compares against, so that an
# unknown prefix costs what a known one does.
DECOY_HASH = _generator.hash("decoy." + "0" * SECRET_LENGTH)
