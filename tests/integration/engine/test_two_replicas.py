"""Two engines (two replicas, each with its own pool) on one database: nobody claimed twice,
quotas hold across both, and when one dies without any cleanup the other takes its accounts
over once their leases expire and finishes the campaign."""

from __future__ import annotations

from collections import Counter
from contextlib import AsyncExitStack
from datetime import timedelta

from invite.observability.metrics import lease_takeovers
from invite.platforms.sandbox import ActionKind, SandboxAccounts, sends_per_target
from tests.integration.engine.checks import quota_breaches, reached_twice
from tests.integration.engine.harness import Scenario

LEASE = 1800.0  # account leases (virtual seconds)


async def test_two_replicas_share_the_work_and_survive_a_dead_one(engine_scenario: Scenario) -> None:
    clock, pool = engine_scenario.clock, engine_scenario.pool
    engine_scenario.configure(account_lease_seconds=LEASE, target_lease_seconds=900.0)
    settings = engine_scenario.settings
    taken_over = lease_takeovers._value.get()
    task_id = await engine_scenario.add_task(targets=400)
    provider = SandboxAccounts(10)

    async def owners() -> Counter[str]:
        with clock.busy():
            rows = await pool.fetch("SELECT lease_owner FROM invite_accounts")
        return Counter(r["lease_owner"] for r in rows)

    async def succeeded(n: int) -> bool:
        return (await engine_scenario.target_counts(task_id)).get("succeeded", 0) >= n

    async with AsyncExitStack() as stack:  # both replicas drive the scenario's one simulated Telegram
        engine_a, pool_a = await stack.enter_async_context(
            engine_scenario.replica(provider, replica_id="replica-a", max_accounts_per_replica=5)
        )

        async def a_leased() -> bool:
            return (await owners())["replica-a"] == 5

        await engine_scenario.wait_until(a_leased, step=1)
        await stack.enter_async_context(
            engine_scenario.replica(provider, replica_id="replica-b", max_accounts_per_replica=10)
        )

        async def both_leased() -> bool:
            return await owners() == Counter({"replica-a": 5, "replica-b": 5})

        await engine_scenario.wait_until(both_leased, step=1)
        await engine_scenario.wait_until(lambda: succeeded(150), step=300)

        engine_a.abort()  # killed: leases and in-flight targets stay behind
        pool_a.terminate()
        killed_at = clock.now()
        with clock.busy():
            orphans = {
                r["identifier_key"]
                for r in await pool.fetch(
                    "SELECT identifier_key FROM invite_targets WHERE status = 'in_flight' AND lease_owner = 'replica-a'"
                )
            }
        await engine_scenario.wait_for_status(task_id, "completed", step=300)
    log = await engine_scenario.execution_log()
    released = await owners()
    counts = await engine_scenario.target_counts(task_id)
    attempts = {
        r["identifier_key"]: r["attempts"]
        for r in await pool.fetch("SELECT identifier_key, attempts FROM invite_targets")
    }
    assert counts == {"succeeded": 400}
    assert released == Counter({None: 10})  # replica-b let go of all ten when it stopped
    assert quota_breaches(log, settings.daily_quota, settings.min_pause_seconds) == []
    assert reached_twice(log) == []
    assert {key for key, n in attempts.items() if n > 1} == orphans  # only the dead replica's in-flight ones
    sent = sends_per_target(engine_scenario.record.actions, ActionKind.INVITE)
    assert max(sent.values()) == 1
    assert lease_takeovers._value.get() == taken_over + 5
    after_expiry = {r["account_id"] for r in log if r["created_at"] > killed_at + timedelta(seconds=LEASE)}
    assert len(after_expiry) == 10  # all ten accounts worked on, five of them taken over by replica-b
