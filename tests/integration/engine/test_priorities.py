"""HIGH before LOW with preemption, and round-robin between tasks of one priority."""

from __future__ import annotations

import itertools

from invite.kernel.clock import VirtualClock
from invite.platforms.sandbox import SandboxAccounts
from tests.integration.engine.harness import (
    engine_pool,
    engine_settings,
    execution_log,
    make_task,
    notify,
    running_engine,
    sandbox,
    target_counts,
    wait_for_status,
    wait_until,
)


async def test_a_high_task_takes_the_accounts_from_a_running_low_one(fresh_database_url: str) -> None:
    clock = VirtualClock()
    settings = engine_settings(fresh_database_url)
    async with engine_pool(settings) as pool:
        low_id = await make_task(pool, targets=60, priority=3, prefix="low")

        async def low_started() -> bool:
            return (await target_counts(pool, clock, low_id)).get("succeeded", 0) >= 6

        async with running_engine(pool, settings, clock, sandbox(clock, settings), SandboxAccounts(2)):
            await wait_until(clock, low_started, step=60)
            with clock.busy():
                high_id = await make_task(pool, targets=10, priority=1, prefix="high", group="group-2")
                await notify(pool, high_id, "running")  # what the API does on start
            await wait_for_status(pool, clock, high_id, "completed")
            await wait_for_status(pool, clock, low_id, "completed")
        log = await execution_log(pool)
    high = [r["created_at"] for r in log if r["task_id"] == high_id]
    low = [r["created_at"] for r in log if r["task_id"] == low_id]
    assert len(high) == 10
    assert len(low) == 60
    assert not [t for t in low if min(high) < t < max(high)]  # preempted until HIGH ran out
    assert max(low) > max(high)  # and LOW goes on afterwards


async def test_tasks_of_one_priority_share_an_account_round_robin(fresh_database_url: str) -> None:
    clock = VirtualClock()
    settings = engine_settings(fresh_database_url)
    async with engine_pool(settings) as pool:
        first = await make_task(pool, targets=8, prefix="a")
        second = await make_task(pool, targets=8, prefix="b", group="group-2")
        async with running_engine(pool, settings, clock, sandbox(clock, settings), SandboxAccounts(1)):
            await wait_for_status(pool, clock, first, "completed")
            await wait_for_status(pool, clock, second, "completed")
        log = await execution_log(pool)
    order = [r["task_id"] for r in log]
    assert len(order) == 16
    assert all(a != b for a, b in itertools.pairwise(order))  # strictly alternating
