"""A small async cache: Redis when it is there, an in-process TTL map when it is not.

The service must keep running when Redis is down, so ``RedisCache`` answers from an
in-process cache while Redis is unreachable (logged once per outage) and tries Redis
again after ``retry_seconds``. Values are bytes; ``get_struct``/``set_struct`` store
msgspec-encoded values. Keys are prefixed with ``invite:`` in Redis: other services share
the instance.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, TypeVar

import msgspec
import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from invite.kernel.settings import Settings

KEY_PREFIX = "invite:"

log = structlog.get_logger(__name__)
T = TypeVar("T")


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


async def get_struct(cache: Cache, key: str, type_: type[T]) -> T | None:
    """A msgspec-encoded value, or None when absent or no longer decodable as ``type_``."""
    raw = await cache.get(key)
    if raw is None:
        return None
    try:
        return msgspec.msgpack.decode(raw, type=type_)
    except msgspec.DecodeError:
        await cache.delete(key)  # written by an older shape of ``type_``
        return None


async def set_struct(cache: Cache, key: str, value: object, ttl_seconds: float) -> None:
    await cache.set(key, msgspec.msgpack.encode(value), ttl_seconds)


class MemoryCache:
    """In-process TTL cache, bounded: the least recently written entry goes first."""

    def __init__(self, max_entries: int = 10_000, now: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_entries = max_entries
        self._now = now

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._now():
            del self._entries[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (self._now() + ttl_seconds, value)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    async def aclose(self) -> None:
        self.clear()


class RedisCache:
    """Redis with an in-process fallback while Redis is unreachable."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = KEY_PREFIX,
        timeout_seconds: float = 0.5,
        retry_seconds: float = 30.0,
        fallback: MemoryCache | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        # No retries inside redis-py: a failed call goes to the fallback at once.
        self._redis = aioredis.from_url(
            url,
            socket_connect_timeout=timeout_seconds,
            socket_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
        )
        self._prefix = prefix
        self._retry_seconds = retry_seconds
        self._fallback = fallback or MemoryCache(now=now)
        self._now = now
        self._down_until: float | None = None  # set while Redis is considered down

    @property
    def degraded(self) -> bool:
        """True while answers come from the in-process fallback."""
        return self._down_until is not None

    async def get(self, key: str) -> bytes | None:
        if self._use_fallback():
            return await self._fallback.get(key)
        try:
            value = await self._redis.get(self._prefix + key)
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            return await self._fallback.get(key)
        self._came_back()
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if self._use_fallback():
            await self._fallback.set(key, value, ttl_seconds)
            return
        try:
            await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_seconds * 1000)))
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            await self._fallback.set(key, value, ttl_seconds)
            return
        self._came_back()

    async def delete(self, key: str) -> None:
        # Always drop the local copy too: an invalidation must never be lost to an outage.
        await self._fallback.delete(key)
        if self._use_fallback():
            return
        try:
            await self._redis.delete(self._prefix + key)
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            return
        self._came_back()

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._fallback.aclose()

    def _use_fallback(self) -> bool:
        return self._down_until is not None and self._now() < self._down_until

    def _went_down(self, exc: BaseException) -> None:
        if self._down_until is None:
            log.warning("redis unavailable, using the in-process cache", error=type(exc).__name__)
        self._down_until = self._now() + self._retry_seconds

    def _came_back(self) -> None:
        if self._down_until is not None:
            log.info("redis reachable again")
            self._down_until = None
            # What the fallback holds was never written to Redis; drop it so a later
            # outage cannot serve values older than Redis's.
            self._fallback.clear()


def cache_from_settings(settings: Settings) -> Cache:
    """Redis when REDIS_URL is set, else the in-process cache."""
    if settings.redis_url:
        return RedisCache(settings.redis_url)
    return MemoryCache()
