"""The group commit: written twice — as after a commit whose answer was lost — it records nothing
twice; stopped while a commit is in hand, it lets that commit finish."""

from __future__ import annotations

import asyncio
import uuid

from invite.engine.recorder import Entry, LogRow, Recorder, TargetOutcome
from invite.engine.registry import Registry
from invite.engine.repository import Repository
from invite.engine.statuses import TargetStatus
from invite.kernel.clock import Clock, RealClock
from invite.platforms.sandbox import SandboxAccounts
from tests.integration.engine.harness import TENANT, Scenario


async def _in_flight_message(scenario: Scenario, clock: Clock) -> tuple[uuid.UUID, Entry, Recorder]:
    """A message claimed by acc-1, the entry that records it sent, and a recorder to write it."""
    pool, settings = scenario.pool, scenario.settings
    task_id = await scenario.add_task(targets=1, task_type="send_messages", template="Hi")
    target_id = await pool.fetchval(
        """UPDATE invite_targets SET status = 'in_flight', lease_owner = $2, attempts = 1,
                  lease_expires_at = $3, account_id = 'acc-1'
           WHERE task_id = $1 RETURNING id""",
        task_id,
        settings.replica_id,
        clock.now(),
    )
    now = clock.now()
    entry = Entry(
        task_id,
        "telegram",
        TENANT,
        "acc-1",
        target=TargetOutcome(target_id, 1, TargetStatus.SUCCEEDED, "success", now, None, {}, 1, now),
        log=LogRow(target_id, "acc-1", "send_message", "success", {"attempt": 1}, now),
    )
    repo = Repository.open(pool, clock, settings.sql_dir)
    return target_id, entry, Recorder(repo, Registry(), settings, clock, SandboxAccounts(1), lambda: None)


async def test_an_outcome_written_again_adds_no_second_log_row(engine_scenario: Scenario) -> None:
    pool = engine_scenario.pool
    target_id, entry, recorder = await _in_flight_message(engine_scenario, engine_scenario.clock)
    try:
        for _ in range(2):  # the second time, as the retry of a commit that did land
            recorder.add(entry)
            await recorder.flush()
            assert not recorder.failing
    finally:
        await recorder.close()
    logged = await pool.fetchval(
        "SELECT count(*) FROM invite_execution_logs WHERE task_id = $1", entry.task_id
    )
    rolled_up = await pool.fetchval(
        "SELECT sum(n) FROM invite_stats_by_account WHERE task_id = $1", entry.task_id
    )
    status = await pool.fetchval("SELECT status FROM invite_targets WHERE id = $1", target_id)
    assert (logged, rolled_up, status) == (1, 1, "succeeded")


async def test_stop_lets_the_commit_in_hand_finish(engine_scenario: Scenario) -> None:
    pool = engine_scenario.pool
    target_id, entry, recorder = await _in_flight_message(engine_scenario, RealClock())
    running = asyncio.get_running_loop().create_task(recorder.run())
    async with pool.acquire() as blocker, blocker.transaction():
        # the row is locked: the commit waits on it, as on a slow database
        await blocker.execute("SELECT 1 FROM invite_targets WHERE id = $1 FOR UPDATE", target_id)
        recorder.add(entry)
        while not await blocker.fetchval(  # noqa: ASYNC110 - PostgreSQL has no event for "a lock is waited on"
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ):
            await asyncio.sleep(0.01)
        recorder.stop()
        await asyncio.sleep(0.2)
        assert not running.done()  # it waits for its commit instead of dropping it
    await asyncio.wait_for(running, timeout=30)
    await recorder.close()
    status = await pool.fetchval("SELECT status FROM invite_targets WHERE id = $1", target_id)
    logged = await pool.fetchval(
        "SELECT count(*) FROM invite_execution_logs WHERE task_id = $1", entry.task_id
    )
    assert (status, logged) == ("succeeded", 1)
