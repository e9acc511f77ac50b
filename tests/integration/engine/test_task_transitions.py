"""The engine's transitions and the state machine are one: each statement that moves a task, run
through the repository on a real database against one task in every status, moves exactly the
tasks invite/tasks/states.py allows for its action, to the status it names, and reports those
and no others. A statement that spelt out its own sources or target would part from the state
machine here."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from invite.engine.repository import Repository
from invite.kernel.clock import RealClock
from invite.tasks.states import Action, TaskStatus, allowed_from, next_status
from tests.integration.engine.harness import TENANT, engine_pool, engine_settings

NOW = datetime(2030, 1, 1, tzinfo=UTC)
REASON = "the reason the customer sees"
Tasks = dict[TaskStatus, uuid.UUID]
# what the repository says it moved
Run = Callable[[Repository, Tasks], Awaitable[set[uuid.UUID]]]


async def _start_due(repo: Repository, tasks: Tasks) -> set[uuid.UUID]:
    return {row.id for row in await repo.start_due(now=NOW)}


async def _pause_task(repo: Repository, tasks: Tasks) -> set[uuid.UUID]:
    return {t for t in tasks.values() if await repo.pause_task(task_id=t, reason=REASON, now=NOW)}


async def _wait_for_accounts(repo: Repository, tasks: Tasks) -> set[uuid.UUID]:
    """Each task has waited an hour for its accounts, longer than the 60 s allowed: paused."""
    return {
        t
        for t in tasks.values()
        if await repo.wait_for_accounts(task_id=t, reason=REASON, now=NOW, wait_seconds=60) is not None
    }


async def _fail_task(repo: Repository, tasks: Tasks) -> set[uuid.UUID]:
    return {t for t in tasks.values() if await repo.fail_task(task_id=t, reason=REASON, now=NOW)}


async def _fail_unserved(repo: Repository, tasks: Tasks) -> set[uuid.UUID]:
    return {row.id for row in await repo.fail_unserved(now=NOW)}


async def _complete_tasks(repo: Repository, tasks: Tasks) -> set[uuid.UUID]:
    return {row.id for row in await repo.complete_tasks(now=NOW)}


@dataclass(frozen=True)
class Transition:
    run: Run
    action: Action
    # the sources the statement may move, of the action's (fail_unserved: a running task only)
    within: frozenset[TaskStatus] = frozenset(TaskStatus)
    # each task has one attached account, blocked (fail_unserved judges the accounts attached)
    blocked_account: bool = False


TRANSITIONS = {
    "lifecycle.start_due": Transition(_start_due, Action.DUE),
    "lifecycle.pause_task": Transition(_pause_task, Action.TRIP),
    "activation.wait_for_accounts": Transition(_wait_for_accounts, Action.TRIP),
    "activation.fail_task": Transition(_fail_task, Action.FAIL),
    "lifecycle.fail_unserved": Transition(
        _fail_unserved, Action.FAIL, within=frozenset({TaskStatus.RUNNING}), blocked_account=True
    ),
    "lifecycle.complete_tasks": Transition(_complete_tasks, Action.COMPLETE),
}


async def _one_task_per_status(pool: asyncpg.Pool, *, blocked_account: bool) -> Tasks:
    """A task in every status, due an hour ago, waiting for its accounts as long, nothing queued."""
    tasks: Tasks = {}
    for status in TaskStatus:
        tasks[status] = await pool.fetchval(
            """INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, status,
                                         scheduled_at, accounts_wait_since)
               VALUES ($1, 'telegram', 'invite_to_group', 'transition', 'group-1', $2, $3, $3)
               RETURNING id""",
            TENANT,
            status,
            NOW - timedelta(hours=1),
        )
        if blocked_account:
            account = f"acc-{status}"
            await pool.execute(
                "INSERT INTO invite_accounts (id, user_id, status) VALUES ($1, $2, 'blocked')",
                account,
                TENANT,
            )
            await pool.execute(
                """INSERT INTO invite_task_accounts (task_id, account_id, platform, status)
                   VALUES ($1, $2, 'telegram', 'blocked')""",
                tasks[status],
                account,
            )
    return tasks


async def _statuses(pool: asyncpg.Pool, tasks: Tasks) -> dict[TaskStatus, TaskStatus]:
    rows = await pool.fetch(
        "SELECT id, status FROM invite_tasks WHERE id = ANY($1::uuid[])", list(tasks.values())
    )
    now = {row["id"]: TaskStatus(row["status"]) for row in rows}
    return {status: now[task_id] for status, task_id in tasks.items()}


@pytest.mark.parametrize("statement", sorted(TRANSITIONS))
async def test_a_transition_moves_exactly_what_the_state_machine_allows(
    fresh_database_url: str, statement: str
) -> None:
    transition = TRANSITIONS[statement]
    sources = allowed_from(transition.action) & transition.within
    settings = engine_settings(fresh_database_url)
    async with engine_pool(settings) as pool:
        tasks = await _one_task_per_status(pool, blocked_account=transition.blocked_account)
        repo = Repository.open(pool, RealClock(), settings.sql_dir)

        moved = await transition.run(repo, tasks)

        assert moved == {tasks[status] for status in sources}
        assert await _statuses(pool, tasks) == {
            status: next_status(status, transition.action) if status in sources else status
            for status in TaskStatus
        }
