"""LISTEN wakes the engine on a task start, and reconnects when its connection is killed."""

from __future__ import annotations

import asyncio

import asyncpg

from invite.kernel.clock import RealClock, VirtualClock
from invite.platforms.sandbox import SandboxAccounts
from tests.integration.engine.harness import (
    engine_pool,
    engine_settings,
    execution_log,
    make_task,
    notify,
    running_engine,
    sandbox,
    wait_for_status,
)

POLL = 3600.0


async def test_listener_reconnects_and_a_start_wakes_the_engine_before_the_poll(
    fresh_database_url: str,
) -> None:
    clock = VirtualClock()
    settings = engine_settings(fresh_database_url, poll_interval_seconds=POLL)
    async with engine_pool(settings) as pool:
        async with running_engine(
            pool, settings, clock, sandbox(clock, settings), SandboxAccounts(1)
        ) as engine:
            await asyncio.wait_for(engine.events.listening.wait(), timeout=10)
            killed = await pool.fetchval(
                """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE datname = current_database() AND query LIKE 'LISTEN%'"""
            )
            assert killed
            while engine.events.listening.is_set():  # it notices the loss ...
                await clock.sleep(0.5)
            while not engine.events.listening.is_set():  # ... and comes back
                await clock.sleep(0.5)
            with clock.busy():
                task_id = await make_task(pool, targets=1)
                await notify(pool, task_id, "running")
            started = clock.now()
            await wait_for_status(pool, clock, task_id, "completed", step=1, limit=POLL)
        log = await execution_log(pool)
    assert len(log) == 1
    assert (log[0]["created_at"] - started).total_seconds() < 60  # the notification, not the hourly poll


async def test_progress_events_do_not_wake_anyone(fresh_database_url: str) -> None:
    """A replica hears every group commit of the others: 'progress' must not cost a reload."""
    clock = RealClock()  # nothing else on the engine's calendar for an hour: only events can wake it
    settings = engine_settings(fresh_database_url, poll_interval_seconds=POLL, account_lease_seconds=POLL)
    async with (
        engine_pool(settings) as pool,
        running_engine(pool, settings, clock, sandbox(clock, settings), SandboxAccounts(1)) as engine,
    ):
        await asyncio.wait_for(engine.events.listening.wait(), timeout=10)
        await asyncio.sleep(0.5)  # the start-up rounds are over
        changed = engine.ctx.registry.changed
        conn: asyncpg.Connection = await asyncpg.connect(fresh_database_url)
        try:
            await conn.execute(
                """SELECT pg_notify('invite_task_events', '{"task_id": "x", "type": "progress"}')"""
            )
            await asyncio.sleep(0.3)
            assert not changed.is_set()
            await conn.execute(
                """SELECT pg_notify('invite_task_events', '{"task_id": "x", "type": "status"}')"""
            )
            await asyncio.wait_for(changed.wait(), timeout=5)
        finally:
            await conn.close()
