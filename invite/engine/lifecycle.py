"""Task lifecycle, run by every replica (each step is a guarded statement, so they can race):
scheduled starts, activation, tasks nobody can serve, closing queues of cancelled and failed
tasks, the recovery sweep of expired in-flight targets, and completion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import asyncpg
import msgspec
import structlog

from invite.engine.activation import activate
from invite.engine.context import EngineContext
from invite.engine.decisions import CLOSED_JSON, RECOVERED_JSON
from invite.engine.repository import DATABASE_AWAY, Unprepared
from invite.kernel.events import TaskEvent
from invite.observability.metrics import task_duration, tasks_total
from invite.platforms.base import AccountsProvider
from invite.tasks.states import TaskStatus

log = structlog.get_logger(__name__)

SWEEP_BATCH = 1000
CLOSE_BATCH = 1000  # targets closed per cancelled or failed task per statement


class Lifecycle:
    def __init__(
        self, ctx: EngineContext, provider: AccountsProvider, driver: str, on_change: Callable[[], None]
    ) -> None:
        self._ctx = ctx
        self._provider = provider
        self._driver = driver
        self._on_change = on_change  # the picture of tasks and accounts changed
        self._kick = asyncio.Event()

    def kick(self) -> None:
        self._kick.set()

    async def run(self) -> None:
        poll = self._ctx.settings.poll_interval_seconds
        while True:
            self._kick.clear()
            try:
                wait = await self.tick()
            except DATABASE_AWAY as exc:
                log.error("lifecycle step failed", error=repr(exc))
                wait = poll
            await self._ctx.clock.wait(self._kick, wait)

    async def recover_own(self) -> int:
        """At start-up: what a previous process under this replica id left in flight."""
        return await self._recover(self._ctx.clock.now(), self._ctx.settings.replica_id)

    async def tick(self) -> float:
        """One round; returns how long to sleep before the next (unless kicked)."""
        ctx = self._ctx
        repo = ctx.repo
        now = ctx.clock.now()
        events: list[TaskEvent] = []
        changed = False
        for started in await repo.start_due(now=now):
            tasks_total.labels(platform=started.platform, status=TaskStatus.RUNNING).inc()
            events.append(_status(started.id, TaskStatus.RUNNING))
            changed = True
        for task in await repo.tasks_without_accounts(driver=self._driver):
            outcome = await self._activate(task)
            if outcome in (TaskStatus.FAILED, TaskStatus.PAUSED):
                tasks_total.labels(platform=task.platform, status=outcome).inc()
                events.append(_status(task.id, outcome))
            changed = changed or outcome is not None
        for failed in await repo.fail_unserved(now=now):
            tasks_total.labels(platform=failed.platform, status=TaskStatus.FAILED).inc()
            events.append(_status(failed.id, TaskStatus.FAILED))
            changed = True
        closed = CLOSE_BATCH
        while closed >= CLOSE_BATCH:  # a full batch: there may be more
            closed = await repo.close_queues(now=now, batch=CLOSE_BATCH, closed=CLOSED_JSON)
        if await self._sweep(now):
            ctx.registry.wake_all()
        for done in await repo.complete_tasks(now=now):
            tasks_total.labels(platform=done.platform, status=TaskStatus.COMPLETED).inc()
            if done.started_at is not None:
                task_duration.labels(platform=done.platform).observe((now - done.started_at).total_seconds())
            events.append(_status(done.id, TaskStatus.COMPLETED))
            log.info("task completed", task_id=str(done.id))
            changed = True
        if events:
            await repo.notify(events=[e.encode() for e in events])
        if changed:
            self._on_change()
        return await self._until_next_start(now)

    async def _activate(self, task: Unprepared) -> str | None:
        """Activate one task; whatever goes wrong with it stays with it (the pass goes on)."""
        try:
            return await activate(self._ctx, self._provider, task)
        except (asyncpg.DataError, msgspec.ValidationError, ValueError, OverflowError) as exc:
            # the task's own data cannot be used (a value out of range, a setting stored before
            # its bound): it can never start as it is, so it is paused with the reason
            reason = f"the task cannot start: {exc}"
            log.error("task paused at activation", task_id=str(task.id), reason=reason)
            await self._ctx.repo.pause_task(task_id=task.id, reason=reason, now=self._ctx.clock.now())
            return TaskStatus.PAUSED
        except DATABASE_AWAY:
            raise  # the database is away: the whole pass waits
        except Exception as exc:  # the accounts provider is away: try again next round
            log.warning("activation postponed", task_id=str(task.id), error=repr(exc))
            return None

    async def _sweep(self, now: datetime) -> int:
        """Expired in-flight targets: messages → uncertain (until their account's next holder
        asks the platform, see reconcile.py), invites → back in the queue."""
        return await self._recover(now, None)

    async def _recover(self, now: datetime, own: str | None) -> int:
        """In-flight targets whose lease ran out, and (``own``) every one a previous process
        under this replica id left."""
        recovered = 0
        while True:
            rows = await self._ctx.repo.recover(now=now, batch=SWEEP_BATCH, own=own, recovered=RECOVERED_JSON)
            recovered += len(rows)
            if len(rows) < SWEEP_BATCH:
                break
        if recovered:
            log.warning("recovered in-flight targets", targets=recovered, at_start=own is not None)
        return recovered

    async def _until_next_start(self, now: datetime) -> float:
        poll = self._ctx.settings.poll_interval_seconds
        due = await self._ctx.repo.next_scheduled()
        if due is None:
            return poll
        return max(0.0, min(poll, (due - now).total_seconds()))


def _status(task_id: object, status: str) -> TaskEvent:
    return TaskEvent(task_id=str(task_id), type="status", status=status)
