"""The engine drives a small invite campaign to completion on a virtual clock."""

from __future__ import annotations

from invite.kernel.clock import VirtualClock
from invite.platforms.sandbox import SandboxAccounts
from tests.integration.engine.harness import (
    engine_pool,
    engine_settings,
    execution_log,
    make_task,
    running_engine,
    sandbox,
    target_counts,
    wait_for_status,
)


async def test_small_campaign_completes(fresh_database_url: str) -> None:
    clock = VirtualClock()
    settings = engine_settings(fresh_database_url)
    async with engine_pool(settings) as pool:
        task_id = await make_task(pool, targets=20)
        factory = sandbox(clock, settings)
        async with running_engine(pool, settings, clock, factory, SandboxAccounts(3)):
            await wait_for_status(pool, clock, task_id, "completed")
        assert await target_counts(pool, clock, task_id) == {"succeeded": 20}
        log = await execution_log(pool)
        assert len(log) == 20
        assert {row["account_id"] for row in log} == {f"sandbox-tenant-1-{n}" for n in (1, 2, 3)}
