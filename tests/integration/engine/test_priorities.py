"""HIGH before LOW with preemption, and round-robin between tasks of one priority."""

from __future__ import annotations

import itertools

from tests.integration.engine.harness import Scenario


async def test_a_high_task_takes_the_accounts_from_a_running_low_one(engine_scenario: Scenario) -> None:
    low_id = await engine_scenario.add_task(targets=60, priority=3, prefix="low")

    async def low_started() -> bool:
        return (await engine_scenario.target_counts(low_id)).get("succeeded", 0) >= 6

    async with engine_scenario.running(2):
        await engine_scenario.wait_until(low_started, step=60)
        with engine_scenario.clock.busy():
            high_id = await engine_scenario.add_task(targets=10, priority=1, prefix="high", group="group-2")
            await engine_scenario.notify(high_id, "running")  # what the API does on start
        await engine_scenario.wait_for_status(high_id, "completed")
        await engine_scenario.wait_for_status(low_id, "completed")
    log = await engine_scenario.execution_log()
    high = [r["created_at"] for r in log if r["task_id"] == high_id]
    low = [r["created_at"] for r in log if r["task_id"] == low_id]
    assert len(high) == 10
    assert len(low) == 60
    assert not [t for t in low if min(high) < t < max(high)]  # preempted until HIGH ran out
    assert max(low) > max(high)  # and LOW goes on afterwards


async def test_tasks_of_one_priority_share_an_account_round_robin(engine_scenario: Scenario) -> None:
    first = await engine_scenario.add_task(targets=8, prefix="a")
    second = await engine_scenario.add_task(targets=8, prefix="b", group="group-2")
    async with engine_scenario.running(1):
        await engine_scenario.wait_for_status(first, "completed")
        await engine_scenario.wait_for_status(second, "completed")
    log = await engine_scenario.execution_log()
    order = [r["task_id"] for r in log]
    assert len(order) == 16
    assert all(a != b for a, b in itertools.pairwise(order))  # strictly alternating
