"""The engine runs on a pool of its own (ENGINE_DB_POOL_MAX): with every connection of the
engine's pool taken, the API still answers — on one shared pool, requests queued for a
connection behind the engine's statements."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.integration.api import PREFIX, Client, insert_targets, invite_task


async def _take_all(engine_pool: asyncpg.Pool) -> list[asyncpg.pool.PoolConnectionProxy]:
    """Every connection the engine's pool can still give (its loops hold some themselves)."""
    held = []
    while True:
        try:
            held.append(await engine_pool.acquire(timeout=1))
        except TimeoutError:
            return held


async def _give_back(engine_pool: asyncpg.Pool, held: list[asyncpg.pool.PoolConnectionProxy]) -> None:
    for conn in held:
        await engine_pool.release(conn)


async def test_the_api_answers_while_the_engines_pool_is_exhausted(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    state = client.app.state
    engine_pool: asyncpg.Pool = state.engine_pool
    assert engine_pool is not state.pool
    assert engine_pool.get_max_size() == state.settings.engine_db_pool_max
    task_id = (await client.post(f"{PREFIX}/tasks", json=invite_task(), headers=headers)).json()["id"]
    await insert_targets(pool, task_id, 3)

    portal = client.blocking_portal  # the app's event loop: its pools belong there
    held = portal.call(_take_all, engine_pool)
    try:
        status = await asyncio.wait_for(client.get(f"{PREFIX}/tasks/{task_id}/status", headers=headers), 30)
        stats = await asyncio.wait_for(client.get(f"{PREFIX}/tasks/{task_id}/stats", headers=headers), 30)
    finally:
        portal.call(_give_back, engine_pool, held)
    assert held
    assert status.status_code == 200
    assert status.json()["total"] == 3
    assert stats.status_code == 200
