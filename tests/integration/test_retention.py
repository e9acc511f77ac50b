"""Retention: old execution logs go in batches, old finished tasks go when configured, one
replica at a time, on the service's clock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from invite.kernel.clock import VirtualClock
from invite.kernel.db import create_pool
from invite.kernel.settings import Settings
from invite.reports.retention import Retention, RetentionRound

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ADVISORY_LOCKS = (
    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
    " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
)


@pytest.fixture
def own_settings(settings: Settings, fresh_database_url: str) -> Settings:
    return msgspec.structs.replace(
        settings,
        database_url=fresh_database_url,
        retention_batch_size=100,
        log_retention_days=30,
        finished_task_retention_days=90,
    )


@pytest.fixture
async def db(own_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert own_settings.database_url is not None
    pool = await create_pool(own_settings.database_url, own_settings)
    yield pool
    await pool.close()


async def add_task(
    db: asyncpg.Pool, status: str, completed_at: datetime | None, targets: int = 3, logs_at: datetime = NOW
) -> uuid.UUID:
    task_id: uuid.UUID = await db.fetchval(
        "INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, status, completed_at)"
        " VALUES ('t1', 'telegram', 'invite_to_group', 't', '@g', $1, $2) RETURNING id",
        status,
        completed_at,
    )
    await db.execute(
        "INSERT INTO invite_targets (task_id, user_identifier, identifier_key)"
        " SELECT $1, 'u' || n, 'u:u' || n FROM generate_series(1, $2) AS n",
        task_id,
        targets,
    )
    await db.execute(
        "INSERT INTO invite_execution_logs (task_id, target_id, account_id, action, status, created_at)"
        " SELECT task_id, id, 'acc', 'invite_to_group', 'succeeded', $2 FROM invite_targets WHERE task_id = $1",
        task_id,
        logs_at,
    )
    return task_id


async def add_logs(db: asyncpg.Pool, task_id: uuid.UUID, count: int, at: datetime) -> None:
    await db.execute(
        "INSERT INTO invite_execution_logs (task_id, account_id, action, status, created_at)"
        " SELECT $1, 'acc', 'invite_to_group', 'succeeded', $2::timestamptz - n * interval '1 s' FROM generate_series(1, $3) AS n",
        task_id,
        at,
        count,
    )


async def test_old_logs_are_deleted_in_batches_and_stats_kept(
    db: asyncpg.Pool, own_settings: Settings
) -> None:
    task_id = await add_task(db, "running", None, targets=0)
    await add_logs(db, task_id, 250, NOW - timedelta(days=31))  # old: three batches of 100
    await add_logs(db, task_id, 40, NOW - timedelta(days=29))  # kept
    result = await Retention(db, own_settings, VirtualClock(NOW)).run_once()
    assert result == RetentionRound(ran=True, logs_deleted=250, tasks_deleted=0)
    oldest = await db.fetchval(
        "SELECT min(created_at) FROM invite_execution_logs WHERE task_id = $1", task_id
    )
    assert oldest > NOW - timedelta(days=30)
    assert await db.fetchval("SELECT count(*) FROM invite_execution_logs") == 40
    # the rollups behind /stats still count every action
    assert await db.fetchval("SELECT sum(n) FROM invite_stats_by_account WHERE task_id = $1", task_id) == 290


async def test_one_replica_at_a_time(db: asyncpg.Pool, own_settings: Settings) -> None:
    task_id = await add_task(db, "running", None, targets=0)
    await add_logs(db, task_id, 10, NOW - timedelta(days=40))
    async with db.acquire() as other_replica:
        assert await other_replica.fetchval("SELECT pg_try_advisory_lock(444465155)")
        skipped = await Retention(db, own_settings, VirtualClock(NOW)).run_once()
        assert skipped == RetentionRound(ran=False)
        assert await db.fetchval("SELECT count(*) FROM invite_execution_logs") == 10
        await other_replica.fetchval("SELECT pg_advisory_unlock(444465155)")
    done = await Retention(db, own_settings, VirtualClock(NOW)).run_once()
    assert done.logs_deleted == 10


async def test_finished_tasks_past_their_retention_are_removed(
    db: asyncpg.Pool, own_settings: Settings
) -> None:
    old_completed = await add_task(
        db, "completed", NOW - timedelta(days=100), targets=250, logs_at=NOW - timedelta(days=100)
    )
    old_cancelled = await add_task(db, "cancelled", NOW - timedelta(days=91))
    recent = await add_task(db, "completed", NOW - timedelta(days=89))
    running = await add_task(db, "running", None)
    paused_long = await add_task(db, "paused", None)
    result = await Retention(db, own_settings, VirtualClock(NOW)).run_once()
    assert result.tasks_deleted == 2
    left = {r["id"] for r in await db.fetch("SELECT id FROM invite_tasks")}
    assert left == {recent, running, paused_long}
    for gone in (old_completed, old_cancelled):
        assert await db.fetchval("SELECT count(*) FROM invite_targets WHERE task_id = $1", gone) == 0
        assert await db.fetchval("SELECT count(*) FROM invite_task_counts WHERE task_id = $1", gone) == 0
    # the others keep their targets and their counters agree with them
    for kept in left:
        counted = await db.fetchval("SELECT sum(n) FROM invite_task_counts WHERE task_id = $1", kept)
        assert counted == 3


async def test_finished_tasks_stay_when_their_retention_is_off(
    db: asyncpg.Pool, own_settings: Settings
) -> None:
    old = await add_task(db, "completed", NOW - timedelta(days=400))
    keep_all = msgspec.structs.replace(own_settings, finished_task_retention_days=0)
    result = await Retention(db, keep_all, VirtualClock(NOW)).run_once()
    assert result.tasks_deleted == 0
    assert await db.fetchval("SELECT count(*) FROM invite_tasks WHERE id = $1", old) == 1


async def test_a_task_reopened_meanwhile_is_not_purged(db: asyncpg.Pool, own_settings: Settings) -> None:
    task_id = await add_task(db, "completed", NOW - timedelta(days=100))
    async with db.acquire() as customer, customer.transaction():
        # the customer's reopen holds the task's row when the purge reaches it
        await customer.execute(
            "UPDATE invite_tasks SET status = 'running', completed_at = NULL WHERE id = $1", task_id
        )
        purge = asyncio.create_task(Retention(db, own_settings, VirtualClock(NOW)).run_once())
        await asyncio.sleep(0.2)
        assert not purge.done()
    result = await purge
    assert result.tasks_deleted == 0
    assert await db.fetchval("SELECT count(*) FROM invite_targets WHERE task_id = $1", task_id) == 3


async def test_a_round_cut_short_leaves_no_lock_behind(db: asyncpg.Pool, own_settings: Settings) -> None:
    """The pool hands connections back as they are: the round's session-level lock must not
    stay on one of them, or no replica would ever run retention again."""
    task_id = await add_task(db, "completed", NOW - timedelta(days=100))
    async with db.acquire() as customer, customer.transaction():
        await customer.execute("SELECT 1 FROM invite_tasks WHERE id = $1 FOR UPDATE", task_id)
        purge = asyncio.create_task(Retention(db, own_settings, VirtualClock(NOW)).run_once())
        await asyncio.sleep(0.2)  # the round holds its lock and waits for the task's row
        assert await db.fetchval(ADVISORY_LOCKS) == 1
        purge.cancel()  # a replica shutting down, say
        with pytest.raises(asyncio.CancelledError):
            await purge
    for _ in range(100):  # a closed session's locks go as its server process ends
        if not await db.fetchval(ADVISORY_LOCKS):
            break
        await asyncio.sleep(0.05)
    assert await db.fetchval(ADVISORY_LOCKS) == 0
    assert (await Retention(db, own_settings, VirtualClock(NOW)).run_once()).tasks_deleted == 1


async def test_the_service_runs_a_round_every_interval_on_the_clock(
    db: asyncpg.Pool, own_settings: Settings
) -> None:
    clock = VirtualClock(NOW)
    task_id = await add_task(db, "running", None, targets=0)
    retention = Retention(db, msgspec.structs.replace(own_settings, retention_interval_seconds=3600), clock)
    try:
        with clock.busy():  # time stands still while the test sets up
            await retention.start()
            # not old yet at the first round; 30 minutes past the cutoff at the next, an hour on
            await add_logs(db, task_id, 1, NOW - timedelta(days=30) + timedelta(minutes=30))
            await asyncio.sleep(0.2)  # the first round runs meanwhile
            assert await db.fetchval("SELECT count(*) FROM invite_execution_logs") == 1
        for _ in range(500):  # the clock jumps to the next round as soon as the service sleeps
            if not await db.fetchval("SELECT count(*) FROM invite_execution_logs"):
                break
            await asyncio.sleep(0.01)
        assert await db.fetchval("SELECT count(*) FROM invite_execution_logs") == 0
        assert clock.now() >= NOW + timedelta(hours=1)
    finally:
        await retention.stop()
