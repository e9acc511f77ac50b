"""The engine repository's one retry loop, on a real database: a statement (or a transaction) that
PostgreSQL picks as a deadlock's victim is tried again and lands, on the pool, on a lane and in a
transaction alike; a lane whose connection is killed drops it and takes another."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import pytest

from invite.engine.repository import Repository
from invite.engine.statuses import AccountStatus
from invite.kernel.clock import RealClock
from tests.integration.engine.harness import TENANT, Scenario

REPLICA = "replica-a"
ACCOUNTS = ["acc-a", "acc-b"]


async def _leased_accounts(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """INSERT INTO invite_accounts (id, user_id, lease_owner, lease_expires_at)
           SELECT id, $2, $3, now() + interval '1 hour' FROM unnest($1::text[]) id""",
        ACCOUNTS,
        TENANT,
        REPLICA,
    )


async def _waiting_on_a_lock(observer: asyncpg.pool.PoolConnectionProxy) -> None:
    while not await observer.fetchval(  # noqa: ASYNC110 - PostgreSQL has no event for "a lock is waited on"
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ):
        await asyncio.sleep(0.01)


async def _deadlocked(pool: asyncpg.Pool, release: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``release`` (a release of both accounts, which locks them in id order) into a deadlock
    it loses: another transaction holds acc-b, and asks for acc-a once ``release`` waits for acc-b.
    That transaction waits ten times longer before it looks for a deadlock, so PostgreSQL aborts
    ``release``'s; it commits once ``release`` let go."""
    async with pool.acquire() as blocker, pool.acquire() as observer:
        await blocker.execute("SET deadlock_timeout = '10s'")
        async with blocker.transaction():
            await blocker.execute("UPDATE invite_accounts SET label = 'blocker' WHERE id = 'acc-b'")
            releasing = asyncio.get_running_loop().create_task(release())
            await _waiting_on_a_lock(observer)
            await blocker.execute("UPDATE invite_accounts SET label = 'blocker' WHERE id = 'acc-a'")
        await releasing


async def _outcome(pool: asyncpg.Pool) -> list[tuple[str, str | None, str]]:
    rows = await pool.fetch("SELECT id, lease_owner, label FROM invite_accounts ORDER BY id")
    return [(row["id"], row["lease_owner"], row["label"]) for row in rows]


@pytest.mark.parametrize("way", ["pool", "lane"])
async def test_a_statement_that_loses_a_deadlock_is_tried_again(engine_scenario: Scenario, way: str) -> None:
    pool, settings = engine_scenario.pool, engine_scenario.settings
    await _leased_accounts(pool)
    repo = Repository.open(pool, RealClock(), settings.sql_dir)
    lane = repo.lane()
    on = lane if way == "lane" else repo
    try:
        await _deadlocked(
            pool,
            lambda: on.release_accounts(
                replica=REPLICA, account_ids=ACCOUNTS, now=RealClock().now(), answered_at=[None, None]
            ),
        )
    finally:
        await lane.close()
    # the other transaction won the deadlock (its labels are in), and the release landed after it
    assert await _outcome(pool) == [("acc-a", None, "blocker"), ("acc-b", None, "blocker")]


async def test_a_transaction_that_loses_a_deadlock_is_tried_again_as_a_whole(
    engine_scenario: Scenario,
) -> None:
    pool, settings = engine_scenario.pool, engine_scenario.settings
    await _leased_accounts(pool)
    repo = Repository.open(pool, RealClock(), settings.sql_dir)
    runs = 0

    async def work(tx: Repository) -> None:
        nonlocal runs
        runs += 1
        await tx.retire_account(
            replica=REPLICA,
            account_id="acc-a",
            status=AccountStatus.BLOCKED,
            reason="dead",
            now=RealClock().now(),
        )
        await tx.release_accounts(
            replica=REPLICA, account_ids=ACCOUNTS, now=RealClock().now(), answered_at=[None, None]
        )

    await _deadlocked(pool, lambda: repo.transaction(work))
    status = await pool.fetchval("SELECT status FROM invite_accounts WHERE id = 'acc-a'")
    assert runs == 2
    assert status == "blocked"  # the whole second run committed, its first statement too
    assert await _outcome(pool) == [("acc-a", None, "blocker"), ("acc-b", None, "blocker")]


async def test_a_lane_whose_connection_is_killed_takes_another(engine_scenario: Scenario) -> None:
    pool, settings = engine_scenario.pool, engine_scenario.settings
    lane = Repository.open(pool, RealClock(), settings.sql_dir).lane()
    try:
        assert await lane.next_scheduled() is None
        killed = await pool.fetchval(
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND query LIKE '%min(scheduled_at) AS due%'"""
        )
        assert killed
        await asyncio.sleep(0.2)  # the client hears of it: the pool takes the closed connection back
        # the lane drops it before its next statement, which runs on a new connection: no error
        assert await lane.next_scheduled() is None
        assert await lane.next_scheduled() is None
    finally:
        await lane.close()
