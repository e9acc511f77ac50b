"""Task use cases: create, list, read, edit, delete and the customer's state changes.

Each mutating call runs in one transaction with its audit row. State changes are applied by
a guarded UPDATE (see ``sql/queries/tasks.sql``), so concurrent requests cannot both win.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from invite.kernel import audit
from invite.kernel.auth import Tenant
from invite.kernel.clock import Clock
from invite.kernel.cursors import Cursor, decode_cursor, encode_cursor
from invite.kernel.db import DbConnection
from invite.kernel.events import TaskEvent
from invite.kernel.problems import InvalidParam, Problem, conflict, invalid, not_found, out_of_range
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql
from invite.observability.metrics import tasks_total
from invite.platforms.refs import group_id_problem
from invite.tasks import states
from invite.tasks.rows import StoredTask, TaskCounts
from invite.tasks.schemas import (
    TARGET_STATUSES,
    UNFINISHED_TARGETS,
    InviteTaskCreate,
    InviteTaskResponse,
    InviteTaskUpdate,
    TaskListResponse,
    TaskStatusResponse,
    priority_number,
)
from invite.tasks.states import Action, IllegalTransition, TaskStatus
from invite.tasks.task_settings import TaskSettings, offers_link, settings_problems
from invite.tasks.templates import LINK_VARIABLE, TemplateError, check_template, names

_REASONS = {Action.PAUSE: "paused by the customer", Action.CANCEL: "cancelled by the customer"}


class _Draft(msgspec.Struct, kw_only=True):
    """A task's editable fields, as they will be stored (create, or a row merged with a PUT)."""

    platform: str
    task_type: str
    title: str
    description: str | None
    target_group_id: str | None
    message_template: str | None
    priority: int
    scheduled_at: datetime | None
    settings: TaskSettings


_FIRST_PAGE = Cursor(datetime.max.replace(tzinfo=UTC), uuid.UUID(int=(1 << 128) - 1))


class TaskService:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, clock: Clock, tenant: Tenant) -> None:
        self._pool = pool
        self._settings = settings
        self._clock = clock
        self._tenant = tenant.user_id
        self._sql = Sql(settings.sql_dir)

    # --- reads -------------------------------------------------------------------------

    async def get(self, task_id: uuid.UUID) -> InviteTaskResponse:
        row = await self._sql.fetchrow(
            self._pool, "tasks.get", StoredTask, task_id=task_id, user_id=self._tenant
        )
        if row is None:
            raise not_found("task")
        return InviteTaskResponse.from_row(row)

    async def list_page(
        self,
        *,
        status: TaskStatus | None,
        task_type: str | None,
        platform: str | None,
        priority: int | None,
        cursor: str | None,
        limit: int,
    ) -> TaskListResponse:
        after = decode_cursor(cursor) if cursor else _FIRST_PAGE
        rows = await self._sql.fetch(
            self._pool,
            "tasks.list",
            StoredTask,
            user_id=self._tenant,
            after_created_at=after.created_at,
            after_id=after.id,
            status=status,
            task_type=task_type,
            platform=platform,
            priority=priority,
            limit=limit + 1,
        )
        items = [InviteTaskResponse.from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        return TaskListResponse(
            items=items,
            next_cursor=encode_cursor(Cursor(last.created_at, last.id)) if last else None,
        )

    async def status_report(self, task_id: uuid.UUID) -> TaskStatusResponse:
        """One statement, so one snapshot and one round trip: under the engine's load each
        round trip waits its turn on the event loop, so the fewer the faster."""
        row = await self._sql.fetchrow(
            self._pool, "tasks.status_report", TaskCounts, task_id=task_id, user_id=self._tenant
        )
        if row is None:
            raise not_found("task")
        return status_response(task_id, row)

    # --- writes ------------------------------------------------------------------------

    async def create(self, body: InviteTaskCreate) -> InviteTaskResponse:
        draft = _Draft(
            platform=body.platform,
            task_type=body.task_type,
            title=body.title,
            description=body.description,
            target_group_id=body.target_group_id,
            message_template=body.message_template,
            priority=priority_number(body.priority),
            scheduled_at=body.scheduled_at,
            settings=body.settings,
        )
        self._validate(draft, check_schedule=True)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._sql.fetchrow(
                conn,
                "tasks.create",
                StoredTask,
                user_id=self._tenant,
                platform=draft.platform,
                task_type=draft.task_type,
                title=draft.title.strip(),
                description=draft.description,
                target_group_id=draft.target_group_id,
                message_template=draft.message_template,
                priority=draft.priority,
                settings=draft.settings,
                scheduled_at=draft.scheduled_at,
                driver=self._settings.telegram_driver,
                now=self._clock.now(),
            )
            assert row is not None
            await self._audit(conn, "task.create", row.id, {"title": row.title, "task_type": draft.task_type})
        tasks_total.labels(platform=draft.platform, status=TaskStatus.DRAFT.value).inc()
        return InviteTaskResponse.from_row(row)

    async def update(self, task_id: uuid.UUID, body: InviteTaskUpdate) -> InviteTaskResponse:
        changed = sorted(name for name in body.__struct_fields__ if getattr(body, name) is not msgspec.UNSET)
        async with self._pool.acquire() as conn, conn.transaction():
            current = await self._sql.fetchrow(
                conn, "tasks.get_for_update", StoredTask, task_id=task_id, user_id=self._tenant
            )
            if current is None:
                raise not_found("task")
            status = TaskStatus(current.status)
            if status not in states.EDITABLE:
                raise Problem(
                    409,
                    "Conflict",
                    f"a {status.value} task cannot be edited; pause it first",
                    extra={"task_status": status.value},
                )
            draft = _merge(current, body)
            self._validate(draft, check_schedule=body.scheduled_at is not msgspec.UNSET)
            if status is TaskStatus.SCHEDULED and draft.scheduled_at is None:
                raise invalid("scheduled_at", "a scheduled task needs a start time; pause it to clear it")
            row = await self._sql.fetchrow(
                conn,
                "tasks.update",
                StoredTask,
                task_id=task_id,
                user_id=self._tenant,
                editable=list(states.EDITABLE),
                title=draft.title.strip(),
                description=draft.description,
                target_group_id=draft.target_group_id,
                message_template=draft.message_template,
                priority=draft.priority,
                scheduled_at=draft.scheduled_at,
                settings=draft.settings,
                now=self._clock.now(),
            )
            assert row is not None  # the row lock held the status still
            await self._audit(conn, "task.update", task_id, {"fields": changed})
        return InviteTaskResponse.from_row(row)

    async def delete(self, task_id: uuid.UUID) -> None:
        # The engine may be recording this task's last outcomes as it goes: the cascade then
        # meets its row locks, and PostgreSQL breaks a lock cycle by failing one side.
        for _ in range(2):
            try:
                return await self._delete_once(task_id)
            except asyncpg.DeadlockDetectedError:
                continue
        await self._delete_once(task_id)

    async def _delete_once(self, task_id: uuid.UUID) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            deleted = await self._sql.fetchval(
                conn, "tasks.delete", task_id=task_id, user_id=self._tenant, deletable=list(states.DELETABLE)
            )
            if deleted is None:
                row = await self._sql.fetchrow(
                    conn, "tasks.get", StoredTask, task_id=task_id, user_id=self._tenant
                )
                if row is None:
                    raise not_found("task")
                raise Problem(
                    409,
                    "Conflict",
                    f"the task is {row.status}: pause or cancel it first",
                    extra={"task_status": row.status},
                )
            await self._audit(conn, "task.delete", task_id, {})

    async def apply(self, task_id: uuid.UUID, action: Action) -> InviteTaskResponse:
        """start / pause / resume / cancel, as the state machine allows."""
        async with self._pool.acquire() as conn, conn.transaction():
            if action is Action.START:
                await self._sql.execute(conn, "tasks.lock_tenant_starts", user_id=self._tenant)
            current = await self._sql.fetchrow(
                conn, "tasks.get", StoredTask, task_id=task_id, user_id=self._tenant
            )
            if current is None:
                raise not_found("task")
            now = self._clock.now()
            ahead = current.scheduled_at is not None and current.scheduled_at > now
            try:
                target = states.next_status(TaskStatus(current.status), action, scheduled_ahead=ahead)
            except IllegalTransition as exc:
                raise _illegal(exc.status, action) from None
            if action is Action.START:
                await self._check_can_start(conn, task_id)
            row = await self._sql.fetchrow(
                conn,
                "tasks.transition",
                StoredTask,
                task_id=task_id,
                user_id=self._tenant,
                allowed_from=list(states.allowed_from(action)),
                status=target.value,
                reason=_REASONS.get(action),
                now=now,
            )
            if row is None:  # changed under us since the read: report what it is now
                fresh = await self._sql.fetchrow(
                    conn, "tasks.get", StoredTask, task_id=task_id, user_id=self._tenant
                )
                if fresh is None:
                    raise not_found("task")
                raise _illegal(TaskStatus(fresh.status), action)
            if action is Action.CANCEL:
                await self._sql.execute(conn, "tasks.cancel_pending_targets", task_id=task_id)
            await self._audit(
                conn, f"task.{action.value}", task_id, {"from": current.status, "to": target.value}
            )
            event = TaskEvent(task_id=str(task_id), type="status", status=target.value)
            await self._sql.execute(conn, "tasks.notify", event=event.encode())
        tasks_total.labels(platform=row.platform, status=target.value).inc()
        return InviteTaskResponse.from_row(row)

    # --- helpers -----------------------------------------------------------------------

    async def _check_can_start(self, conn: DbConnection, task_id: uuid.UUID) -> None:
        if not await self._sql.fetchval(conn, "tasks.count_targets", task_id=task_id):
            raise conflict("the task has no targets: import an audience first")
        await self.check_active_limit(conn, "first")

    async def check_active_limit(self, conn: DbConnection, when: str) -> None:
        """409 when the tenant is at its limit of active tasks; the detail ends "finish or cancel one {when}"."""
        limit = self._settings.max_active_tasks_per_tenant
        active: int = await self._sql.fetchval(
            conn, "tasks.count_active", user_id=self._tenant, statuses=list(states.ACTIVE)
        )
        if active >= limit:
            raise Problem(
                409,
                "Too many active tasks",
                f"{active} of {limit} tasks are already active (scheduled, running or paused); "
                f"finish or cancel one {when}",
                extra={"active_tasks": active, "limit": limit},
            )

    def _validate(self, draft: _Draft, *, check_schedule: bool) -> None:
        problems: list[InvalidParam] = []
        if draft.platform != "telegram":
            problems.append(InvalidParam("platform", f"{draft.platform} is not supported yet; use telegram"))
        if not draft.title.strip():
            problems.append(InvalidParam("title", "must not be blank"))
        if draft.task_type == "invite_to_group" and not (draft.target_group_id or "").strip():
            problems.append(InvalidParam("target_group_id", "required for invite_to_group tasks"))
        elif draft.task_type == "invite_to_group" and draft.target_group_id is not None:
            # the adapter's own rule: a group id it could never resolve fails here, not per person
            not_a_group = group_id_problem(draft.target_group_id)
            if not_a_group is not None:
                problems.append(InvalidParam("target_group_id", not_a_group))
        if draft.task_type == "send_messages" and not (draft.message_template or "").strip():
            problems.append(InvalidParam("message_template", "required for send_messages tasks"))
        if draft.message_template is not None:
            try:
                check_template(draft.message_template)
            except TemplateError as exc:
                problems.append(InvalidParam("message_template", str(exc)))
        problems.extend(_link_problems(draft.task_type, draft.message_template, draft.settings))
        late = out_of_range(scheduled_at=draft.scheduled_at)
        problems.extend(late)
        if (
            check_schedule
            and not late
            and draft.scheduled_at is not None
            and draft.scheduled_at <= self._clock.now()
        ):
            problems.append(InvalidParam("scheduled_at", "must be in the future"))
        problems.extend(settings_problems(draft.settings, self._settings))
        if problems:
            raise Problem(422, "Invalid request", "the task is not valid", params=problems)

    async def _audit(
        self, conn: DbConnection, action: str, task_id: uuid.UUID, details: dict[str, Any]
    ) -> None:
        await audit.record(
            conn,
            self._settings.sql_dir,
            user_id=self._tenant,
            action=action,
            resource="task",
            resource_id=str(task_id),
            details=details,
        )


def _merge(row: StoredTask, body: InviteTaskUpdate) -> _Draft:
    def pick(name: str) -> Any:
        value = getattr(body, name)
        return getattr(row, name) if value is msgspec.UNSET else value

    settings = (
        body.settings if body.settings is not msgspec.UNSET else msgspec.convert(row.settings, TaskSettings)
    )
    return _Draft(
        platform=row.platform,
        task_type=row.task_type,
        title=pick("title"),
        description=pick("description"),
        target_group_id=pick("target_group_id"),
        message_template=pick("message_template"),
        priority=priority_number(pick("priority")),
        scheduled_at=pick("scheduled_at"),
        settings=settings,
    )


def _illegal(status: TaskStatus, action: Action) -> Problem:
    return Problem(
        409,
        "Illegal transition",
        f"cannot {action.value} a task that is {status.value}",
        extra={"task_status": status.value, "action": action.value},
    )


def status_response(task_id: uuid.UUID, row: TaskCounts) -> TaskStatusResponse:
    """/status from a task's counters (tasks.status_report, reports.stats, reports.progress)."""
    counted = dict(zip(row.statuses or (), row.ns or (), strict=True))
    counts = {name: counted.get(name, 0) for name in TARGET_STATUSES}
    total = sum(counts.values())
    processed = total - sum(counts[name] for name in UNFINISHED_TARGETS)
    return TaskStatusResponse(
        task_id=str(task_id),
        status=TaskStatus(row.status),
        status_reason=row.status_reason,
        driver=row.driver,
        total=total,
        processed=processed,
        percent_done=round(100 * processed / total, 1) if total else 0.0,
        counts=counts,
    )


def _link_problems(task_type: str, template: str | None, settings: TaskSettings) -> list[InvalidParam]:
    """A one-use invite link (settings.privacy_fallback) is an invite task's, and travels in
    the task's template; ``{invite_link}`` means nothing anywhere else."""
    if offers_link(settings):
        if task_type != "invite_to_group":
            return [InvalidParam("settings.privacy_fallback", "invite_link is for invite_to_group tasks")]
        if not (template or "").strip():
            return [
                InvalidParam(
                    "message_template",
                    "required with settings.privacy_fallback invite_link: the message that carries "
                    "the link ({invite_link} where it goes, else it is put after the text)",
                )
            ]
        return []
    if LINK_VARIABLE in names(template or ""):
        return [
            InvalidParam(
                "message_template",
                "{invite_link} is only for invite tasks with settings.privacy_fallback invite_link",
            )
        ]
    return []
