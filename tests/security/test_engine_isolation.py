"""The engine uses an account only for its owner's tasks, whatever a task's settings name.

Tenant B's task names tenant A's accounts in ``settings.account_ids`` (the API stores what
it is given; see test_tenant_isolation.py): it must fail with a reason and never act, while
A's and C's campaigns, running at the same time, are each served by their own accounts only.
"""

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
    task_status,
    wait_for_status,
)


async def test_a_task_naming_another_tenants_accounts_never_uses_them(fresh_database_url: str) -> None:
    clock = VirtualClock()
    settings = engine_settings(fresh_database_url)
    accounts = SandboxAccounts(2)
    a_accounts = [a.id for a in await accounts.list_accounts("tenant-a")]
    async with engine_pool(settings) as pool:
        a_task = await make_task(pool, targets=6, user_id="tenant-a", prefix="a")
        b_task = await make_task(
            pool, targets=6, user_id="tenant-b", prefix="b", settings={"account_ids": a_accounts}
        )
        c_task = await make_task(pool, targets=6, user_id="tenant-c", prefix="c")
        async with running_engine(pool, settings, clock, sandbox(clock, settings), accounts):
            await wait_for_status(pool, clock, a_task, "completed")
            await wait_for_status(pool, clock, c_task, "completed")
            await wait_for_status(pool, clock, b_task, "failed")
        assert await task_status(pool, clock, b_task) == "failed"
        reason = await pool.fetchval("SELECT status_reason FROM invite_tasks WHERE id = $1", b_task)
        assert "account_ids" in reason
        log = await execution_log(pool)
        assert all(row["task_id"] != b_task for row in log), "B's task acted"
        owners = {a_task: "sandbox-tenant-a-", c_task: "sandbox-tenant-c-"}
        assert {row["task_id"] for row in log} == set(owners)
        for row in log:
            assert row["account_id"].startswith(owners[row["task_id"]])
        assert all(user == "tenant-a" for account, user, _ in accounts.leases if account in a_accounts)
        owned = await pool.fetch("SELECT id, user_id FROM invite_accounts")
        assert all(row["id"].startswith(f"sandbox-{row['user_id']}-") for row in owned)
