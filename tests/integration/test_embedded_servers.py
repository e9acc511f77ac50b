"""The servers a bare machine's test session starts for itself (tests/conftest.py): real ones,
over TCP on loopback, gone with everything they wrote when the block ends.

CI has its own PostgreSQL and Redis, so the session never starts these there: this is
where their start and stop are checked on every run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import redis

from invite.kernel.embedded import scratch_server
from tests.conftest import _answers, _scratch_redis


async def _data_directory(url: str) -> tuple[str, str]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT version()"), await conn.fetchval("SHOW data_directory")
    finally:
        await conn.close()


def test_scratch_postgres_answers_over_tcp_and_leaves_nothing() -> None:
    with scratch_server() as url:
        assert urlsplit(url).hostname == "127.0.0.1"
        version, data = asyncio.run(_data_directory(url))
        assert version.startswith("PostgreSQL")
        assert Path(data, "PG_VERSION").exists()
    assert not _answers(url)
    assert not Path(data).exists()


def test_scratch_redis_is_a_real_redis_and_stops() -> None:
    with _scratch_redis() as url:
        client = redis.Redis.from_url(url)
        try:
            client.set("k", b"v", px=5_000)
            assert client.get("k") == b"v"
            assert client.info("server")["redis_version"]
        finally:
            client.close()
    assert not _answers(url)
