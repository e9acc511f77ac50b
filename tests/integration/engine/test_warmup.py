"""Account warm-up on the virtual clock: a new account sends 5 on the first day of its clean
history and more each day after (5 a day rising to 40 over 14 days), and a PeerFlood sets it
back to the first day once its rest is over. The cap reaches the claim with the others, so
the claim statement holds it (invite_accounts.warmup_since, migration 0016)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from invite.accounts.service import AccountsService
from invite.platforms.sandbox import SandboxAccounts, SandboxProfile
from tests.integration.engine.harness import TENANT, Scenario

DAY = timedelta(days=1)
ACCOUNT = f"sandbox-{TENANT}-1"
WARMUP: dict[str, Any] = {"warmup_days": 14, "warmup_start_per_day": 5}


async def _successes(scenario: Scenario, task_id: uuid.UUID) -> list[datetime]:
    with scenario.clock.busy():
        rows = await scenario.pool.fetch(
            "SELECT created_at FROM invite_execution_logs WHERE task_id = $1 AND status = 'success'"
            " ORDER BY created_at",
            task_id,
        )
    return [r["created_at"] for r in rows]


async def _account(scenario: Scenario) -> asyncpg.Record:
    with scenario.clock.busy():
        row = await scenario.pool.fetchrow(
            "SELECT status, warmup_since, cooldown_until, status_reason FROM invite_accounts WHERE id = $1",
            ACCOUNT,
        )
    assert row is not None
    return row


def _per_day(times: list[datetime], since: datetime, days: int) -> list[int]:
    """Actions on each day of the clean history that began at ``since``."""
    return [sum(since + n * DAY <= t < since + (n + 1) * DAY for t in times) for n in range(days)]


async def test_a_new_account_sends_the_warm_up_cap_on_day_one_and_more_later(
    engine_scenario: Scenario,
) -> None:
    engine_scenario.configure(**WARMUP)
    started = engine_scenario.clock.now()
    task = await engine_scenario.add_task(targets=60)
    async with engine_scenario.running(1):

        async def three_days() -> bool:
            return len(await _successes(engine_scenario, task)) >= 5 + 7 + 10

        await engine_scenario.wait_until(three_days, step=3600)
    done = await _successes(engine_scenario, task)
    since = (await _account(engine_scenario))["warmup_since"]

    # its clean history began when the service first saw it, and it acted at once
    assert started <= since <= done[0] < since + timedelta(minutes=1)
    # 5 on day 1, then 5 + 35 * (N - 1) // 14: 7 on day 2, 10 on day 3 (40 without the warm-up)
    assert _per_day(done, since, 3) == [5, 7, 10]
    # the day's quota is spread over the day, not spent in a burst
    assert done[1] - done[0] >= DAY / 5


async def test_a_peer_flood_sets_the_warm_up_back_to_day_one(engine_scenario: Scenario) -> None:
    # a warmed-up account: its clean history began long ago
    with engine_scenario.clock.busy():
        await engine_scenario.pool.execute(
            "INSERT INTO invite_accounts (id, user_id, warmup_since) VALUES ($1, $2, $3)",
            ACCOUNT,
            TENANT,
            engine_scenario.clock.now() - 60 * DAY,
        )
    engine_scenario.configure(SandboxProfile(peer_flood_after=3), **WARMUP)
    task = await engine_scenario.add_task(targets=60)
    async with engine_scenario.running(1):

        async def flagged() -> bool:
            return (await _account(engine_scenario))["status_reason"] is not None

        await engine_scenario.wait_until(flagged, step=600)
    account = await _account(engine_scenario)
    before = await _successes(engine_scenario, task)
    with engine_scenario.clock.busy():
        flag: datetime = await engine_scenario.pool.fetchval(
            "SELECT created_at FROM invite_execution_logs WHERE status = 'peer_flood'"
        )

    assert len(before) == 3
    assert before[-1] - before[0] <= 2 * DAY / 40  # at the full quota's pace: 36 min apart
    assert account["status_reason"].startswith("spam flag (PeerFlood)")
    # its clean history starts again when its rest is over (the group commit wrote it)
    rest_over = flag + timedelta(seconds=engine_scenario.settings.peer_flood_cooldown_seconds)
    assert account["cooldown_until"] == rest_over
    assert account["warmup_since"] == rest_over

    # Telegram lets it act again: from the end of its rest, day 1 of the warm-up
    engine_scenario.configure(SandboxProfile.zero(), **WARMUP)
    async with engine_scenario.running(1):

        async def two_days_after() -> bool:
            return len(await _successes(engine_scenario, task)) >= 3 + 5 + 7

        await engine_scenario.wait_until(two_days_after, step=3600)
    after = [t for t in await _successes(engine_scenario, task) if t > flag]

    assert after[0] >= rest_over
    assert _per_day(after, rest_over, 2) == [5, 7]


async def test_a_frozen_account_is_blocked_shown_frozen_and_its_clean_history_ends(
    engine_scenario: Scenario,
) -> None:
    engine_scenario.configure(SandboxProfile(frozen_accounts=frozenset({ACCOUNT})), **WARMUP)
    await engine_scenario.add_task(targets=5)
    async with engine_scenario.running(1):

        async def blocked() -> bool:  # (no row until the task's activation writes it)
            with engine_scenario.clock.busy():
                status = await engine_scenario.pool.fetchval(
                    "SELECT status FROM invite_accounts WHERE id = $1", ACCOUNT
                )
            return bool(status == "blocked")

        await engine_scenario.wait_until(blocked, step=60)
    account = await _account(engine_scenario)
    with engine_scenario.clock.busy():
        frozen_at: datetime = await engine_scenario.pool.fetchval(
            "SELECT created_at FROM invite_execution_logs WHERE status = 'account_dead'"
        )
        accounts = AccountsService(
            engine_scenario.pool, SandboxAccounts(1), engine_scenario.settings, engine_scenario.clock, TENANT
        )
        [view] = (await accounts.list_accounts()).accounts

    assert account["status_reason"] == "account dead: FROZEN_METHOD_INVALID"
    # were it ever unfrozen, it would warm up anew from here
    assert account["warmup_since"] == frozen_at
    assert (view.status, view.health) == ("blocked", "frozen")
