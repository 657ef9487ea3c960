"""The Redis cache keeps one connection pool per process.

Django hands each thread (and under ASGI each request context) its own cache
object; without a shared pool each of them opened its own Redis connection.
"""

from __future__ import annotations

import threading
import uuid

import redis
from django.conf import settings as django_settings
from django.core.cache import caches

from orchestrator.cache import SharedConnectionPool


def connections_named(name: str) -> int:
    admin = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        return sum(1 for c in admin.client_list() if c.get("name") == name)
    finally:
        admin.close()


def test_cache_objects_in_different_threads_share_one_redis_connection(settings) -> None:
    name = f"cache-pool-{uuid.uuid4().hex[:12]}"
    cache = dict(settings.CACHES["default"])
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    # A client name of its own gives this test its own pool, and lets Redis
    # count the connections that pool opened.
    cache["OPTIONS"] = {**cache["OPTIONS"], "client_name": name}
    cache["KEY_PREFIX"] = name
    settings.CACHES = {"default": cache}

    seen: list[int] = []

    def use_the_cache(i: int) -> None:
        # caches["default"] is per thread: a new cache object each time.
        seen.append(id(caches["default"]))
        caches["default"].set(f"k{i}", i)
        assert caches["default"].get(f"k{i}") == i

    for i in range(5):
        thread = threading.Thread(target=use_the_cache, args=(i,))
        thread.start()
        thread.join()

    assert len(seen) == 5
    assert connections_named(name) == 1


def test_the_pool_class_hands_back_one_pool_per_url_and_options() -> None:
    url = django_settings.REDIS_URL
    first = SharedConnectionPool.from_url(url, socket_timeout=1.0)
    assert SharedConnectionPool.from_url(url, socket_timeout=1.0) is first
    assert SharedConnectionPool.from_url(url, socket_timeout=2.0) is not first
