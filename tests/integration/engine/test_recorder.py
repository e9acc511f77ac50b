"""The group commit written twice — as after a commit whose answer was lost — records nothing twice."""

from __future__ import annotations

from invite.engine.clock import VirtualClock
from invite.engine.recorder import Entry, LogRow, Recorder, TargetOutcome
from invite.engine.registry import Registry
from invite.engine.store import Store
from invite.platforms.sandbox import SandboxAccounts
from tests.integration.engine.harness import TENANT, engine_pool, engine_settings, make_task


async def test_an_outcome_written_again_adds_no_second_log_row(fresh_database_url: str) -> None:
    clock = VirtualClock()
    settings = engine_settings(fresh_database_url)
    async with engine_pool(settings) as pool:
        task_id = await make_task(pool, targets=1, task_type="send_messages", template="Hi")
        target_id = await pool.fetchval(
            """UPDATE invite_targets SET status = 'in_flight', lease_owner = $2, attempts = 1,
                      lease_expires_at = $3, account_id = 'acc-1'
               WHERE task_id = $1 RETURNING id""",
            task_id,
            settings.replica_id,
            clock.now(),
        )
        recorder = Recorder(
            Store(pool, clock, settings.sql_dir),
            Registry(),
            settings,
            clock,
            SandboxAccounts(1),
            lambda: None,
        )
        now = clock.now()
        entry = Entry(
            task_id,
            "telegram",
            TENANT,
            "acc-1",
            target=TargetOutcome(target_id, 1, "succeeded", "success", now, None, {}, 1, now),
            log=LogRow(target_id, "acc-1", "send_message", "success", {"attempt": 1}, now),
        )
        try:
            for _ in range(2):  # the second time, as the retry of a commit that did land
                recorder.add(entry)
                await recorder.flush()
                assert not recorder.failing
        finally:
            await recorder.close()
        logged = await pool.fetchval("SELECT count(*) FROM invite_execution_logs WHERE task_id = $1", task_id)
        rolled_up = await pool.fetchval(
            "SELECT sum(n) FROM invite_stats_by_account WHERE task_id = $1", task_id
        )
        status = await pool.fetchval("SELECT status FROM invite_targets WHERE id = $1", target_id)
    assert (logged, rolled_up, status) == (1, 1, "succeeded")
