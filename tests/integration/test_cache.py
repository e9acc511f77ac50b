"""The cache: real Redis (DB 15, a key prefix per test, cleaned up), and its fallback when Redis is down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import msgspec
import pytest
import redis.asyncio as aioredis

from invite.integrations.cache import MemoryCache, RedisCache, get_struct, set_struct
from tests.conftest import REDIS_URL

DEAD_REDIS_URL = "redis://127.0.0.1:1/15"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Account(msgspec.Struct):
    id: str
    limit: int | None = None


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = f"invite:test:{uuid.uuid4().hex[:8]}:"
    yield prefix
    raw = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in raw.scan_iter(match=prefix + "*")]
        if keys:
            await raw.delete(*keys)
    finally:
        await raw.aclose()


@pytest.fixture
async def cache(prefix: str) -> AsyncIterator[RedisCache]:
    cache = RedisCache(REDIS_URL, prefix=prefix)
    yield cache
    await cache.aclose()


async def test_redis_round_trip_with_prefix_and_ttl(cache: RedisCache, prefix: str) -> None:
    await cache.set("accounts:42", b"payload", ttl_seconds=30)

    assert await cache.get("accounts:42") == b"payload"
    raw = aioredis.from_url(REDIS_URL)
    try:
        assert await raw.get(prefix + "accounts:42") == b"payload"
        ttl_ms = await raw.pttl(prefix + "accounts:42")
        assert 0 < ttl_ms <= 30_000
    finally:
        await raw.aclose()
    assert not cache.degraded


async def test_redis_delete_and_miss(cache: RedisCache) -> None:
    await cache.set("k", b"v", ttl_seconds=30)
    await cache.delete("k")

    assert await cache.get("k") is None
    assert await cache.get("never-set") is None


async def test_structs_round_trip_and_a_stale_shape_is_a_miss(cache: RedisCache) -> None:
    await set_struct(cache, "accounts:1", [Account("a", 30), Account("b")], ttl_seconds=30)

    assert await get_struct(cache, "accounts:1", list[Account]) == [Account("a", 30), Account("b")]

    await cache.set("accounts:2", b"\x93garbage", ttl_seconds=30)
    assert await get_struct(cache, "accounts:2", list[Account]) is None
    assert await cache.get("accounts:2") is None  # dropped, not served again


async def test_dead_redis_falls_back_to_memory_and_keeps_working() -> None:
    clock = Clock()
    cache = RedisCache(DEAD_REDIS_URL, timeout_seconds=0.2, retry_seconds=30, now=clock)
    try:
        await cache.set("k", b"v", ttl_seconds=10)
        assert cache.degraded
        assert await cache.get("k") == b"v"
        await cache.delete("k")
        assert await cache.get("k") is None

        await cache.set("k2", b"v2", ttl_seconds=10)
        clock.t += 11
        assert await cache.get("k2") is None  # the fallback honours TTLs too
    finally:
        await cache.aclose()


class RedisLink:
    """A TCP forwarder to the real Redis that a test can cut and restore (same port)."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/15"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._pipes):
            writer.close()
        await self._server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        redis = urlsplit(REDIS_URL)
        up_reader, up_writer = await asyncio.open_connection(redis.hostname, redis.port)
        self._pipes.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_an_outage_falls_back_then_redis_is_used_again_after_the_retry_interval(prefix: str) -> None:
    clock = Clock()
    link = RedisLink()
    await link.up()
    cache = RedisCache(link.url, prefix=prefix, timeout_seconds=0.2, retry_seconds=30, now=clock)
    try:
        await cache.set("k", b"in-redis", ttl_seconds=300)
        await link.down()

        assert await cache.get("k") is None  # Redis unreachable: the fallback is empty
        assert cache.degraded
        await cache.set("k", b"local", ttl_seconds=300)
        assert await cache.get("k") == b"local"

        await link.up()
        clock.t += 10
        assert await cache.get("k") == b"local"  # inside the retry interval: Redis is not asked
        clock.t += 25
        assert await cache.get("k") == b"in-redis"  # Redis again
        assert not cache.degraded
    finally:
        await cache.aclose()
        await link.down()


async def test_memory_cache_expires_and_is_bounded() -> None:
    clock = Clock()
    cache = MemoryCache(max_entries=2, now=clock)
    await cache.set("a", b"1", ttl_seconds=5)
    await cache.set("b", b"2", ttl_seconds=5)
    await cache.set("c", b"3", ttl_seconds=5)

    assert await cache.get("a") is None  # evicted: the oldest write
    assert await cache.get("c") == b"3"
    clock.t += 5
    assert await cache.get("b") is None
    assert await cache.get("c") is None
