"""LISTEN wakes the engine on a task start, and reconnects when its connection is killed."""

from __future__ import annotations

import asyncio

import asyncpg

from invite.kernel.clock import RealClock
from invite.platforms.sandbox import SandboxAccounts
from tests.integration.engine.harness import Scenario, running_engine, sandbox

POLL = 3600.0


async def test_listener_reconnects_and_a_start_wakes_the_engine_before_the_poll(
    engine_scenario: Scenario,
) -> None:
    clock = engine_scenario.clock
    engine_scenario.configure(poll_interval_seconds=POLL)
    async with engine_scenario.running(1) as engine:
        await asyncio.wait_for(engine.events.listening.wait(), timeout=10)
        killed = await engine_scenario.pool.fetchval(
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE datname = current_database() AND query LIKE 'LISTEN%'"""
        )
        assert killed
        while engine.events.listening.is_set():  # it notices the loss ...
            await clock.sleep(0.5)
        while not engine.events.listening.is_set():  # ... and comes back
            await clock.sleep(0.5)
        with clock.busy():
            task_id = await engine_scenario.add_task(targets=1)
            await engine_scenario.notify(task_id, "running")
        started = clock.now()
        await engine_scenario.wait_for_status(task_id, "completed", step=1, limit=POLL)
    log = await engine_scenario.execution_log()
    assert len(log) == 1
    assert (log[0]["created_at"] - started).total_seconds() < 60  # the notification, not the hourly poll


async def test_progress_events_do_not_wake_anyone(engine_scenario: Scenario) -> None:
    """A replica hears every group commit of the others: 'progress' must not cost a reload."""
    clock = RealClock()  # nothing else on the engine's calendar for an hour: only events can wake it
    engine_scenario.configure(poll_interval_seconds=POLL, account_lease_seconds=POLL)
    settings = engine_scenario.settings
    async with running_engine(
        engine_scenario.pool, settings, clock, sandbox(clock, settings), SandboxAccounts(1)
    ) as engine:
        await asyncio.wait_for(engine.events.listening.wait(), timeout=10)
        await asyncio.sleep(0.5)  # the start-up rounds are over
        changed = engine.ctx.registry.changed
        conn: asyncpg.Connection = await asyncpg.connect(engine_scenario.url)
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
