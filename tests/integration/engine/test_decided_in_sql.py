"""The statements that settle many targets at once do what the decision table's rows, passed in
as parameters, say — and decide nothing themselves.

Each statement runs twice on a real database: with the rows as decided (decisions.py), and with
rows changed in the test and nothing else. The targets become what the rows given say, cell by
cell, both times: a statement that still decided in a CASE of its own would not follow the
changed rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from invite.engine.decisions import (
    CLOSED_JSON,
    DECISIONS,
    KEPT_TASK_ACCOUNT_STATUSES,
    RECONCILED_JSON,
    RECOVERED_JSON,
    ClosedRow,
    EngineOutcome,
    ReconciledRow,
    RecoveredRow,
    Verdict,
    closed_rows,
    reconciled_rows,
    recovered_rows,
)
from invite.engine.recorder import TaskAccountChange
from invite.engine.repository import Answer, Repository
from invite.engine.statuses import AccountStatus, TaskAccountStatus
from invite.kernel.clock import RealClock
from invite.tasks.states import TaskStatus
from tests.integration.engine.harness import engine_pool, engine_settings, make_task

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EXPIRED = NOW - timedelta(seconds=1)
BEFORE_DUE = NOW - timedelta(hours=1)  # when the target was due before its claim
SINCE = NOW - timedelta(minutes=15)  # when the attempt in doubt began
REPLICA = "replica-a"
ACCOUNT = "acc-1"

IN_FLIGHT = """UPDATE invite_targets SET status = 'in_flight', outcome = 'earlier', error_message = 'before',
                  attempts = 2, lease_owner = $2, lease_expires_at = $3, next_attempt_at = $4, account_id = $5,
                  result = jsonb_build_object('attempt_since', $6::timestamptz)
           WHERE task_id = $1 RETURNING id"""
TARGET = """SELECT status, outcome, error_message, processed_at, attempts, next_attempt_at, lease_owner,
                  lease_expires_at, result, link_state FROM invite_targets WHERE id = $1"""


def _json(rows: Sequence[msgspec.Struct]) -> str:
    return msgspec.json.encode(rows).decode()


async def _in_flight(pool: asyncpg.Pool, task_id: uuid.UUID, owner: str) -> uuid.UUID:
    """The task's one target, as a worker left it mid-attempt (its second)."""
    target_id: uuid.UUID = await pool.fetchval(IN_FLIGHT, task_id, owner, EXPIRED, BEFORE_DUE, ACCOUNT, SINCE)
    return target_id


# --- recover ------------------------------------------------------------------------------


def _recovered_changed() -> str:
    """Each task type gets the other's row, its attempt given back or not the other way round."""
    message, invite = recovered_rows()
    return _json(
        [
            msgspec.structs.replace(invite, task_type=message.task_type, give_back=not invite.give_back),
            msgspec.structs.replace(message, task_type=invite.task_type, give_back=not message.give_back),
        ]
    )


@pytest.mark.parametrize("rows", [RECOVERED_JSON, _recovered_changed()], ids=["as-decided", "changed"])
async def test_recover_makes_each_target_what_its_task_types_row_says(
    fresh_database_url: str, rows: str
) -> None:
    settings = engine_settings(fresh_database_url)
    by_type = {row.task_type: row for row in msgspec.json.decode(rows, type=list[RecoveredRow])}
    async with engine_pool(settings) as pool:
        tasks = {
            "send_messages": await make_task(pool, targets=1, task_type="send_messages", template="Hi"),
            "invite_to_group": await make_task(pool, targets=1, prefix="inv"),
        }
        targets = {task_type: await _in_flight(pool, task_id, "gone") for task_type, task_id in tasks.items()}
        repo = Repository.open(pool, RealClock(), settings.sql_dir)
        recovered = await repo.recover(now=NOW, batch=10, own=None, recovered=rows)
        after = {
            task_type: await pool.fetchrow(TARGET, target_id) for task_type, target_id in targets.items()
        }
    assert sorted((r.task_id, r.status) for r in recovered) == sorted(
        (tasks[t], by_type[t].status) for t in tasks
    )
    for task_type, row in by_type.items():
        target = after[task_type]
        assert target is not None
        recorded = (row.outcome, row.error_message, NOW) if row.recorded else ("earlier", "before", None)
        assert (target["status"], target["attempts"]) == (row.status, 1 if row.give_back else 2)
        assert (target["outcome"], target["error_message"], target["processed_at"]) == recorded
        kept = (NOW, None, None) if row.requeue else (BEFORE_DUE, "gone", EXPIRED)
        assert (target["next_attempt_at"], target["lease_owner"], target["lease_expires_at"]) == kept


async def test_recover_as_decided_leaves_a_message_uncertain_and_requeues_an_invite(
    fresh_database_url: str,
) -> None:
    """The rows as decided, in words: what the recovery did before the table held them."""
    settings = engine_settings(fresh_database_url)
    async with engine_pool(settings) as pool:
        message = await make_task(pool, targets=1, task_type="send_messages", template="Hi")
        invite = await make_task(pool, targets=1, prefix="inv")
        ids = [await _in_flight(pool, message, "gone"), await _in_flight(pool, invite, REPLICA)]
        repo = Repository.open(pool, RealClock(), settings.sql_dir)
        await repo.recover(now=NOW, batch=10, own=REPLICA, recovered=RECOVERED_JSON)
        sent, invited = [await pool.fetchrow(TARGET, target_id) for target_id in ids]
    assert sent is not None
    assert invited is not None
    assert (sent["status"], sent["outcome"], sent["lease_owner"]) == ("uncertain", "lease_expired", "gone")
    assert "not re-sent unless the platform shows it never went out" in sent["error_message"]
    assert (invited["status"], invited["outcome"], invited["lease_owner"], invited["attempts"]) == (
        "pending",
        "earlier",
        None,
        2,
    )


@pytest.mark.parametrize("rows", [RECOVERED_JSON, _recovered_changed()], ids=["as-decided", "changed"])
async def test_recover_takes_an_invite_tasks_link_in_flight_for_a_message(
    fresh_database_url: str, rows: str
) -> None:
    """A worker gone while its one-use invite link's message was due: the message task's row."""
    settings = engine_settings(fresh_database_url)
    message = {row.task_type: row for row in msgspec.json.decode(rows, type=list[RecoveredRow])}[
        "send_messages"
    ]
    async with engine_pool(settings) as pool:
        invite = await make_task(pool, targets=1, prefix="inv", template="Hi {invite_link}")
        target_id = await _in_flight(pool, invite, "gone")
        await pool.execute("UPDATE invite_targets SET link_state = 'due' WHERE id = $1", target_id)
        repo = Repository.open(pool, RealClock(), settings.sql_dir)
        await repo.recover(now=NOW, batch=10, own=None, recovered=rows)
        target = await pool.fetchrow(TARGET, target_id)
    assert target is not None
    assert (target["status"], target["attempts"], target["link_state"]) == (
        message.status,
        1 if message.give_back else 2,
        "due",
    )


# --- reconcile_settle ---------------------------------------------------------------------


def _reconciled_changed() -> str:
    """Each verdict gets the row of the next one (sent → not sent → unknown → sent) for the same
    task status and kind of message, and each kind the other's link_state: every cell changes
    for some answer."""
    rows = {(row.verdict, row.task_status, row.link): row for row in reconciled_rows()}
    cycle = {Verdict.SENT: Verdict.NOT_SENT, Verdict.NOT_SENT: Verdict.UNKNOWN, Verdict.UNKNOWN: Verdict.SENT}
    return _json(
        [
            msgspec.structs.replace(
                rows[cycle[verdict], task, link],
                verdict=verdict,
                link=link,
                link_state=rows[cycle[verdict], task, not link].link_state,
            )
            for (verdict, task, link) in rows
        ]
    )


@pytest.mark.parametrize("rows", [RECONCILED_JSON, _reconciled_changed()], ids=["as-decided", "changed"])
async def test_reconcile_settle_makes_each_message_what_its_verdicts_row_says(
    fresh_database_url: str, rows: str
) -> None:
    settings = engine_settings(fresh_database_url)
    decided = {
        (row.verdict, row.task_status, row.link): row
        for row in msgspec.json.decode(rows, type=list[ReconciledRow])
    }
    running, completed, cancelled = TaskStatus.RUNNING, TaskStatus.COMPLETED, TaskStatus.CANCELLED
    asked = [
        (running, Verdict.SENT, False),
        (running, Verdict.NOT_SENT, False),
        (running, Verdict.UNKNOWN, False),
    ]
    asked += [(completed, Verdict.NOT_SENT, False), (cancelled, Verdict.SENT, False)]
    # an invite task's messages carrying one-use links
    asked += [(running, Verdict.SENT, True), (running, Verdict.NOT_SENT, True)]
    async with engine_pool(settings) as pool:
        await pool.execute(
            """INSERT INTO invite_accounts (id, user_id, daily_window_start, daily_count, lease_owner)
               VALUES ($1, 'tenant-1', $2, 10, $3)""",
            ACCOUNT,
            SINCE - timedelta(hours=1),
            REPLICA,
        )
        answers, expected = [], {}
        for n, (status, verdict, link) in enumerate(asked):
            kind = "invite_to_group" if link else "send_messages"
            task_id = await make_task(
                pool, targets=1, task_type=kind, template="Hi", status=status, prefix=f"p{n}_"
            )
            target_id = await _in_flight(pool, task_id, REPLICA)
            if link:
                await pool.execute("UPDATE invite_targets SET link_state = 'due' WHERE id = $1", target_id)
            answers.append(Answer(target_id, 2, verdict, SINCE))
            expected[target_id] = decided[verdict, status, link]
        repo = Repository.open(pool, RealClock(), settings.sql_dir)
        settled = await repo.reconcile_settle(
            replica=REPLICA, answers=answers, account_id=ACCOUNT, now=NOW, reconciled=rows
        )
        after = {target_id: await pool.fetchrow(TARGET, target_id) for target_id in expected}
        logged = {
            r["target_id"]: (r["status"], r["details"]["detail"])
            for r in await pool.fetch("SELECT target_id, status, details FROM invite_execution_logs")
        }
        count = await pool.fetchval("SELECT daily_count FROM invite_accounts WHERE id = $1", ACCOUNT)
    assert sorted((s.status, s.outcome, s.counted) for s in settled) == sorted(
        (row.status, row.outcome, row.counted) for row in expected.values()
    )
    for target_id, row in expected.items():
        target = after[target_id]
        assert target is not None
        assert (target["status"], target["outcome"], target["error_message"]) == (
            row.status,
            row.outcome,
            row.error_message,
        )
        assert target["link_state"] == (row.link_state or ("due" if row.link else None))
        assert target["attempts"] == (1 if row.give_back else 2)
        assert (target["processed_at"], target["next_attempt_at"]) == (
            (None, NOW) if row.requeue else (NOW, BEFORE_DUE)
        )
        kept_since = "attempt_since" in target["result"]
        assert (kept_since, target["result"].get("account_id"), target["result"].get("detail")) == (
            (False, None, None) if row.requeue else (True, ACCOUNT, row.reason)
        )
        assert (target["lease_owner"], target["lease_expires_at"]) == (None, None)
        assert logged[target_id] == (row.logged, row.reason)
    assert count == 10 - sum(row.refund for row in expected.values())


# --- record, retire_account, block_task_accounts ------------------------------------------


async def _attached(pool: asyncpg.Pool, task_id: uuid.UUID, account_id: str, status: str) -> None:
    await pool.execute(
        """INSERT INTO invite_task_accounts (task_id, account_id, platform, status, status_reason)
           VALUES ($1, $2, 'telegram', $3, 'earlier')""",
        task_id,
        account_id,
        status,
    )


@pytest.mark.parametrize("kept", [KEPT_TASK_ACCOUNT_STATUSES, ()], ids=["as-decided", "none-kept"])
async def test_record_keeps_exactly_the_task_account_statuses_it_is_given(
    fresh_database_url: str, kept: tuple[TaskAccountStatus, ...]
) -> None:
    settings = engine_settings(fresh_database_url)
    change = TaskAccountChange(TaskAccountStatus.COOLDOWN, "resting", NOW, {"success": 1}, NOW)
    async with engine_pool(settings) as pool:
        task_id = await make_task(pool, targets=1)
        for status in TaskAccountStatus:
            await _attached(pool, task_id, f"acc-{status}", status)
        repo = Repository.open(pool, RealClock(), settings.sql_dir)
        await repo.record(
            replica=REPLICA,
            targets=[],
            logs=[],
            accounts=[],
            task_accounts=[((task_id, f"acc-{status}"), change) for status in sorted(TaskAccountStatus)],
            events=[],
            now=NOW,
            kept=kept,
        )
        rows = await pool.fetch("SELECT account_id, status, status_reason, stats FROM invite_task_accounts")
    assert {r["account_id"]: (r["status"], r["status_reason"], r["stats"]) for r in rows} == {
        f"acc-{status}": (status, "earlier", {"success": 1})
        if status in kept
        else (TaskAccountStatus.COOLDOWN, "resting", {"success": 1})
        for status in TaskAccountStatus
    }


DEAD = DECISIONS[EngineOutcome.DEAD_AT_START]


@pytest.mark.parametrize(
    ("account_status", "task_status"),
    [(AccountStatus.BLOCKED, DEAD.task_account), (AccountStatus.DISABLED, TaskAccountStatus.EXCLUDED)],
    ids=["as-decided", "changed"],
)
async def test_a_dead_account_gets_the_statuses_it_is_given(
    fresh_database_url: str, account_status: AccountStatus, task_status: TaskAccountStatus
) -> None:
    settings = engine_settings(fresh_database_url)
    async with engine_pool(settings) as pool:
        await pool.execute(
            "INSERT INTO invite_accounts (id, user_id, lease_owner) VALUES ($1, 'tenant-1', $2)",
            ACCOUNT,
            REPLICA,
        )
        for n in range(2):
            await _attached(pool, await make_task(pool, targets=1, prefix=f"t{n}_"), ACCOUNT, "active")
        repo = Repository.open(pool, RealClock(), settings.sql_dir)

        async def retire(tx: Repository) -> None:
            await tx.retire_account(
                replica=REPLICA, account_id=ACCOUNT, status=account_status, reason="account dead: X", now=NOW
            )
            await tx.block_task_accounts(status=task_status, reasons={ACCOUNT: "account dead: X"})

        await repo.transaction(retire)
        account = await pool.fetchrow("SELECT status, status_reason FROM invite_accounts")
        task_accounts = await pool.fetch("SELECT status, status_reason FROM invite_task_accounts")
    assert account is not None
    assert (account["status"], account["status_reason"]) == (account_status, "account dead: X")
    assert [(r["status"], r["status_reason"]) for r in task_accounts] == [
        (task_status, "account dead: X")
    ] * 2


# --- close_queues -------------------------------------------------------------------------


def _closed_changed() -> str:
    """A cancelled task's targets closed as a failed one's would be, and the other way round."""
    cancelled, failed = closed_rows()
    return _json(
        [
            msgspec.structs.replace(cancelled, outcome=failed.outcome),
            msgspec.structs.replace(failed, outcome=cancelled.outcome, status="skipped"),
        ]
    )


@pytest.mark.parametrize("rows", [CLOSED_JSON, _closed_changed()], ids=["as-decided", "changed"])
async def test_close_queues_closes_each_pending_target_as_its_tasks_row_says(
    fresh_database_url: str, rows: str
) -> None:
    settings = engine_settings(fresh_database_url)
    by_status = {row.task_status: row for row in msgspec.json.decode(rows, type=list[ClosedRow])}
    async with engine_pool(settings) as pool:
        tasks = {
            status: await make_task(pool, targets=2, status=status.value, prefix=status.value)
            for status in (TaskStatus.CANCELLED, TaskStatus.FAILED, TaskStatus.PAUSED)
        }
        repo = Repository.open(pool, RealClock(), settings.sql_dir)
        closed = await repo.close_queues(now=NOW, batch=10, closed=rows)
        after = {
            status: await pool.fetch(
                "SELECT status, outcome, processed_at FROM invite_targets WHERE task_id = $1", t
            )
            for status, t in tasks.items()
        }
    assert closed == 4
    for status, row in by_status.items():
        assert {(r["status"], r["outcome"], r["processed_at"]) for r in after[status]} == {
            (row.status, row.outcome, NOW)
        }
    # a task status without a row is not closed here
    assert {(r["status"], r["outcome"]) for r in after[TaskStatus.PAUSED]} == {("pending", None)}
