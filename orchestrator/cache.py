"""One Redis connection pool per process for Django's Redis cache.

Django keeps a cache object per request context, and under ASGI every
request is a new context, so the stock backend opened a new Redis connection
for every request that touched the cache (the rate limiter: all of them).

Django's ``RedisCache`` takes the pool class as a documented option
(``OPTIONS["pool_class"]``) and builds its pools with ``from_url``, redis-py's
public constructor; ``SharedConnectionPool.from_url`` hands back one pool per
URL and options, so every cache object of the process shares it.
"""

from __future__ import annotations

import threading
from typing import Any

from redis import ConnectionPool

_pools: dict[tuple[str, str], ConnectionPool] = {}
_lock = threading.Lock()


class SharedConnectionPool(ConnectionPool):
    """A redis-py pool that ``from_url`` reuses per (URL, options) in a process."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ConnectionPool:
        # repr of the sorted options: they hold classes (the parser), which
        # compare by identity, so the key is stable within the process.
        key = (url, repr(sorted(kwargs.items())))
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = super().from_url(url, **kwargs)
        return pool
