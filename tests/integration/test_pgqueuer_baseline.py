"""The engine benchmark's pgqueuer baseline drains its jobs and leaves the database as it found it."""

from __future__ import annotations

import asyncpg

from bench.pgqueuer_baseline import pgqueuer_rate, pgqueuer_rates


async def _schemas(database_url: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT nspname FROM pg_namespace")
    finally:
        await conn.close()
    return {row["nspname"] for row in rows}


async def test_pgqueuer_drains_every_job_and_drops_its_schema(database_url: str) -> None:
    before = await _schemas(database_url)
    rates = await pgqueuer_rates(database_url, 500, batch_size=10, managers=2)
    assert rates.jobs == 500
    assert rates.enqueue_per_s > 0
    assert rates.dequeue_ack_per_s > 0
    assert rates.total_per_s < min(rates.enqueue_per_s, rates.dequeue_ack_per_s)
    assert await pgqueuer_rate(database_url, 200, batch_size=100, managers=1) > 0
    assert await _schemas(database_url) == before
