"""Why the database cannot be reached, said at once, for the commands a
newcomer runs first.

Through the connection pool a wrong DATABASE_URL shows only as "couldn't get
a connection after 10.00 sec", ten seconds later. `manage.py migrate` (which
`make run` starts with) and `createsuperuser` first try one plain
connection, and on failure print PostgreSQL's own words ('database "x" does
not exist', 'password authentication failed') and exit.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

# The one-shot commands that meet the database before anything else.
CHECKED_COMMANDS = frozenset({"migrate", "createsuperuser", "changepassword"})
CONNECT_TIMEOUT_SECONDS = 5


def shown_url(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def unreachable_reason(url: str) -> str | None:
    """PostgreSQL's reason for refusing a connection to `url`; None when it connects."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS):
            return None
    except psycopg.Error as exc:
        return " ".join(str(exc).split())


def check_before(argv: list[str]) -> str | None:
    """The message to exit with when `argv` runs a checked command against
    a PostgreSQL DATABASE_URL that refuses connections."""
    url = os.environ.get("DATABASE_URL", "")
    if (
        len(argv) < 2
        or argv[1] not in CHECKED_COMMANDS
        or not url.startswith(("postgres://", "postgresql://"))
    ):
        return None
    reason = unreachable_reason(url)
    if reason is None:
        return None
    return f"cannot connect to the database of DATABASE_URL ({shown_url(url)}): {reason}"
