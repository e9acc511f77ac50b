"""The engine drives a small invite campaign to completion on a virtual clock."""

from __future__ import annotations

from tests.integration.engine.harness import Scenario


async def test_small_campaign_completes(engine_scenario: Scenario) -> None:
    task_id = await engine_scenario.add_task(targets=20)
    async with engine_scenario.running(3):
        await engine_scenario.wait_for_status(task_id, "completed")
    assert await engine_scenario.target_counts(task_id) == {"succeeded": 20}
    log = await engine_scenario.execution_log()
    assert len(log) == 20
    assert {row["account_id"] for row in log} == {f"sandbox-tenant-1-{n}" for n in (1, 2, 3)}
