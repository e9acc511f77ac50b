"""The platform's limits and rests, held by the engine against the Integration Service as it runs.

The engine runs on a virtual clock with the sandbox driver for the actions and the real
Integration Service client against the contract tests' stand-in of the platform
(tests/integration/test_integration_client.py), which answers as PLATFORM-AS-RUN.md says:
its allocations carry the limits 30/30/15/15, its preferred allocation hands out resting
accounts, its list breaks once an account has a FloodWait time.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from tests.fakeserver import Reply
from tests.integration.engine.harness import Scenario
from tests.integration.engine.test_platform_leases import platform_of, running
from tests.integration.test_integration_client import A1, A2, TENANT

DAY = timedelta(hours=24)
# leases renewed every few hours, not every 20 minutes: simulated days pass in seconds
SLOW_BEATS = {"integration_lease_minutes": 240, "account_lease_seconds": 14400.0}
GROUP = "https://t.me/Interop_Grp"  # the platform keys it interop_grp


async def _successes(scenario: Scenario) -> list[asyncpg.Record]:
    return [row for row in await scenario.execution_log() if row["status"] == "success"]


async def test_an_account_keeps_the_allocations_limit_and_fifteen_a_day_into_one_channel(
    engine_scenario: Scenario,
) -> None:
    with platform_of(engine_scenario, **SLOW_BEATS) as platform:
        task = await engine_scenario.add_task(
            targets=40, user_id=TENANT, group=GROUP, settings={"account_ids": [A1]}
        )
        async with running(engine_scenario):

            async def past_a_day() -> bool:  # the 16th comes only in the next 24 h window
                return len(await _successes(engine_scenario)) >= 16

            await engine_scenario.wait_until(past_a_day, step=3600)
            row = await engine_scenario.pool.fetchrow(
                "SELECT daily_limit FROM invite_accounts WHERE id = $1", A1
            )
        done = await _successes(engine_scenario)
        counted = await engine_scenario.pool.fetchval(
            "SELECT invites FROM invite_account_channels WHERE account_id = $1 AND channel = 'interop_grp'",
            A1,
        )
        assert await engine_scenario.task_status(task) == "running"

    assert row is not None
    assert row["daily_limit"] == 30  # the allocation's, not the list's 50/40
    times = [r["created_at"] for r in done]
    for start in times:  # no 24 h window holds more than the per-channel 15
        assert sum(start <= t < start + DAY for t in times) <= 15
    assert counted == len(done)  # every invite into the channel, for its lifetime cap
    allocated = [body for body in platform.allocations if body["preferred_account_id"] == A1]
    assert {body["target_channel_id"] for body in allocated} == {"interop_grp"}


async def test_an_account_stops_at_the_platforms_lifetime_cap_for_a_channel(
    engine_scenario: Scenario,
) -> None:
    with platform_of(engine_scenario, **SLOW_BEATS):
        await engine_scenario.pool.execute(
            "INSERT INTO invite_account_channels (account_id, channel, invites) VALUES ($1, 'interop_grp', 198)",
            A1,
        )
        task = await engine_scenario.add_task(
            targets=10, user_id=TENANT, group=GROUP, settings={"account_ids": [A1]}
        )
        async with running(engine_scenario):

            async def two() -> bool:
                return len(await _successes(engine_scenario)) >= 2

            await engine_scenario.wait_until(two, step=3600)
            await engine_scenario.clock.sleep(86400)  # a day more: nothing further into that channel
        done = await _successes(engine_scenario)
        assert await engine_scenario.task_status(task) == "running"

    assert len(done) == 2  # 198 + 2 = the platform's 200, for good


async def test_an_account_the_platform_rests_is_not_driven_until_its_rest_is_over(
    engine_scenario: Scenario,
) -> None:
    with platform_of(engine_scenario, **SLOW_BEATS) as platform:
        rest_ends = engine_scenario.clock.now() + timedelta(hours=2)
        account = platform.accounts[A1]
        account.status, account.flood_wait_until = "flood_wait", rest_ends.replace(tzinfo=None)
        task = await engine_scenario.add_task(targets=8, user_id=TENANT)
        async with running(engine_scenario):
            await engine_scenario.wait_for_status(task, "completed", step=600)
        log = await engine_scenario.execution_log()

    assert all(row["created_at"] >= rest_ends for row in log if row["account_id"] == A1)
    assert any(row["account_id"] == A2 and row["created_at"] < rest_ends for row in log)
    # handed out by the preferred allocation while resting, and given back at once
    early = [a for a in platform.of(A1) if a.at < rest_ends]
    assert early
    assert all(a.status == 200 for a in early)
    assert len([r for r, _ in platform.releases if r == A1]) >= len(early)


async def test_a_task_whose_accounts_cannot_be_read_says_so_then_is_paused(engine_scenario: Scenario) -> None:
    with platform_of(engine_scenario, accounts_wait_seconds=3600.0, http_retries=0) as platform:
        server_down = Reply(500, body=b"Internal Server Error")
        platform.server.route("GET", "/api/v1/account-manager/accounts/summary", server_down)
        task = await engine_scenario.add_task(targets=3, user_id=TENANT)
        started = engine_scenario.clock.now()
        async with running(engine_scenario):

            async def waiting() -> bool:
                reason = await engine_scenario.pool.fetchval(
                    "SELECT status_reason FROM invite_tasks WHERE id = $1", task
                )
                return reason is not None

            await engine_scenario.wait_until(waiting, step=60)
            shown = await engine_scenario.pool.fetchrow(
                "SELECT status, status_reason FROM invite_tasks WHERE id = $1", task
            )
            await engine_scenario.wait_for_status(task, "paused", step=300)
        paused = await engine_scenario.pool.fetchrow(
            "SELECT status_reason, updated_at FROM invite_tasks WHERE id = $1", task
        )

    assert shown is not None
    assert shown["status"] == "running"
    assert shown["status_reason"].startswith("waiting for accounts: ")
    assert "integration-service answered 500" in shown["status_reason"]
    assert paused is not None
    assert paused["status_reason"].startswith("paused: no accounts after waiting 60 min: ")
    assert timedelta(hours=1) <= paused["updated_at"] - started < timedelta(hours=2)


async def test_activation_reads_the_summary_although_the_platforms_list_answers_500(
    engine_scenario: Scenario,
) -> None:
    with platform_of(engine_scenario, **SLOW_BEATS) as platform:
        # a FloodWait long over, as the platform leaves it (status and timestamp kept: nothing
        # on the platform clears them) -- the list answers 500 for the tenant, the summary not
        platform.accounts[A2].status = "flood_wait"
        long_over = engine_scenario.clock.now() - timedelta(days=1)
        platform.accounts[A2].flood_wait_until = long_over.replace(tzinfo=None)
        task = await engine_scenario.add_task(targets=4, user_id=TENANT)
        async with running(engine_scenario):
            await engine_scenario.wait_for_status(task, "completed", step=600)
        attached = await engine_scenario.pool.fetch(
            "SELECT account_id FROM invite_task_accounts WHERE task_id = $1", task
        )

    assert {row["account_id"] for row in attached} == {A1, A2}
