"""``invite import-legacy``: the old invite service's tasks and people, copied into ours.

The platform's ``invite_db`` holds the old service's tables beside ours (ours live in
``DB_SCHEMA``; theirs in ``public``). This copies each old task once, through our own ways in:

- the task through the Mailing page's mapping (``frontend_api.service.task_create``: the old
  service stored what the page sent -- ``name``, ``invite_message``, ``settings.group_id`` ...),
  as the tenant ``user_id`` of the old row, with the old id in its extra settings
  (``legacy_task_id``), so a second run copies only what is new;
- its people through our audience import (the same normalisation, duplicates and suppression
  list as a file), one import per way their old task left them: those the old service had
  already invited (``INVITED``, ``ACCEPTED``) come in ``succeeded``, those it failed or that
  refused (``FAILED``, ``REJECTED``, ``INVALID``) ``failed`` / ``skipped``, at the old task's
  last time -- so the recontact cap and "nobody twice" count them -- and those not reached yet
  ``pending``. Whoever had ``BLOCKED`` the account goes onto the tenant's suppression list,
  as a block does here;
- its state as it was (``legacy.set_status``), except that a task the old service was running
  or had paused comes in **paused**: a person resumes it once the old Celery worker is off
  (both use the service name ``invite-service``, so the platform's lock would let both drive
  one account). A finished task's people never reached are closed ``cancelled``.

An old task that cannot be mapped (a message task without a message, say) is reported with the
reason and the others go on. Nothing of the old tables is changed. ``--dry-run`` says what it
would copy and writes nothing.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from invite.audience.readers import SourceFormat, sheet_from_records
from invite.audience.schemas import Source
from invite.audience.service import ImportSource, run_import
from invite.engine.statuses import TargetStatus
from invite.frontend_api.schemas import PageTaskCreate
from invite.frontend_api.service import extra_fields, task_create
from invite.kernel.auth import Tenant
from invite.kernel.clock import Clock
from invite.kernel.problems import Problem
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql
from invite.suppressions.service import check_identifiers, suppress
from invite.tasks.service import TaskService
from invite.tasks.states import TaskStatus

# what an old target's status (its enum's label, either case) makes of the person here: our
# status, the outcome, and the message the target shows; a status not named: still to be reached
_FINAL: dict[str, tuple[TargetStatus, str, str]] = {
    "invited": (TargetStatus.SUCCEEDED, "legacy_invited", "invited by the old invite service"),
    "accepted": (
        TargetStatus.SUCCEEDED,
        "legacy_accepted",
        "invited by the old invite service, and accepted",
    ),
    "failed": (TargetStatus.FAILED, "legacy_failed", "the old invite service could not invite them"),
    "rejected": (TargetStatus.SKIPPED, "legacy_rejected", "refused the old invite service's invitation"),
    "invalid": (TargetStatus.SKIPPED, "legacy_invalid", "the old invite service found the contact invalid"),
    "blocked": (TargetStatus.SKIPPED, "legacy_blocked", "blocked the account of the old invite service"),
}
# a finished task's people the old service never reached
_NOT_REACHED = (TargetStatus.CANCELLED, "legacy_not_reached", "not reached before the old task ended")
_BLOCKED = _FINAL["blocked"][1]
# the old task's status → ours; a task it ran comes in paused
_TASK: dict[str, TaskStatus] = {
    "pending": TaskStatus.DRAFT,
    "running": TaskStatus.PAUSED,
    "in_progress": TaskStatus.PAUSED,
    "paused": TaskStatus.PAUSED,
    "completed": TaskStatus.COMPLETED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.CANCELLED,
}
_FINISHED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
PAUSED_REASON = "copied from the old invite service: resume it once the old invite worker is off"
BLOCKED_REASON = "blocked the account (old invite service)"
# the old target's columns → the import's (its roles' own names)
_PERSON = {
    "username": "username",
    "user_id_platform": "user_id",
    "phone_number": "phone",
    "full_name": "full_name",
}

Group = tuple[TargetStatus, str, str] | None  # how a group of people comes in (None: pending)


class _Row(msgspec.Struct, frozen=True):
    item: str  # one old row, as jsonb text


class _Imported(msgspec.Struct, frozen=True):
    legacy_task_id: int


class _Closed(msgspec.Struct, frozen=True):
    user_identifier: str


@dataclass
class Copied:
    """What became of one old task: the JSON line ``import-legacy`` prints for it."""

    legacy_task_id: int
    task_id: str | None = None  # ours (None: not copied)
    status: str | None = None
    people: dict[str, int] = field(default_factory=dict)  # by how they come in
    suppressed: int = 0
    skipped: str | None = None  # why it (or some of its people) was not copied

    def line(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


async def import_legacy(
    pool: asyncpg.Pool, old: asyncpg.Connection, settings: Settings, clock: Clock, *, dry_run: bool
) -> list[Copied]:
    """Copy every old task on ``old`` (a connection searching the old service's schema) not
    copied before into ours on ``pool``."""
    sql = Sql(settings.sql_dir)
    done = {r.legacy_task_id for r in await sql.fetch(pool, "legacy.imported", _Imported)}
    copied = []
    for task in [_decode(r.item) for r in await sql.fetch(old, "legacy.old_tasks", _Row)]:
        if int(task["id"]) in done:
            continue
        rows = await sql.fetch(old, "legacy.old_targets", _Row, task_id=int(task["id"]))
        people = [_decode(r.item) for r in rows]
        copied.append(await _copy(pool, sql, settings, clock, task, people, dry_run=dry_run))
    return copied


async def _copy(
    pool: asyncpg.Pool,
    sql: Sql,
    settings: Settings,
    clock: Clock,
    task: dict[str, Any],
    people: list[dict[str, Any]],
    *,
    dry_run: bool,
) -> Copied:
    result = Copied(int(task["id"]))
    status = _TASK.get(str(task.get("status") or "pending").lower())
    if status is None:
        result.skipped = f"an old task status this copy does not know: {task.get('status')!r}"
        return result
    groups = _groups(people, finished=status in _FINISHED)
    result.status = status
    result.people = {_name(group): len(rows) for group, rows in groups.items()}
    try:
        create = task_create(*_page_body(task), settings)
    except (msgspec.ValidationError, Problem) as exc:
        result.skipped = _why(exc)
        return result
    if dry_run:
        return result
    tenant = str(task["user_id"])
    try:
        created = await TaskService(pool, settings, clock, Tenant(tenant)).create(create)
    except Problem as exc:
        result.skipped = _why(exc)
        return result
    result.task_id, task_id, at = created.id, uuid.UUID(created.id), _last_time(task, clock)
    blocked: list[str] = []
    for group, rows in groups.items():  # the done first: the pending are closed by none
        what = ImportSource(
            sheet_from_records([_person(p) for p in rows], SourceFormat.JSON),
            Source(kind="legacy", name=f"old task {result.legacy_task_id}: {_name(group)}", format="json"),
        )
        try:
            imported = await run_import(
                pool, settings, user_id=tenant, task_id=task_id, what=what, dry_run=False
            )
        except Problem as exc:  # nobody in the group has an identifier this service reads
            result.people[_name(group)] = 0
            result.skipped = _why(exc)
            continue
        result.people[_name(group)] = imported.counts.imported
        if group is None:
            continue
        final, outcome, message = group
        closed = await sql.fetch(
            pool,
            "legacy.close_imported",
            _Closed,
            task_id=task_id,
            status=final,
            outcome=outcome,
            message=message,
            at=at,
        )
        if outcome == _BLOCKED:
            blocked += [row.user_identifier for row in closed]
    if blocked:  # as a block here does: onto the tenant's list, their pending targets skipped
        checked = check_identifiers(blocked, settings.phone_default_region)
        suppressed = await suppress(
            pool,
            settings,
            user_id=tenant,
            checked=checked,
            reason=BLOCKED_REASON,
            now=clock.now(),
            source="legacy",
        )
        result.suppressed = suppressed.added
    reason = PAUSED_REASON if status is TaskStatus.PAUSED else task.get("error_message")
    await sql.execute(
        pool,
        "legacy.set_status",
        task_id=task_id,
        status=status,
        reason=reason,
        started_at=_time(task.get("start_time")) if status is not TaskStatus.DRAFT else None,
        completed_at=at if status in _FINISHED else None,
        now=clock.now(),
    )
    return result


def _groups(people: list[dict[str, Any]], *, finished: bool) -> dict[Group, list[dict[str, Any]]]:
    """The old task's people by how they come in: the done ones first, the pending last."""
    groups: dict[Group, list[dict[str, Any]]] = {}
    for person in people:
        group = _FINAL.get(str(person.get("status") or "pending").lower())
        if group is None and finished:
            group = _NOT_REACHED
        groups.setdefault(group, []).append(person)
    pending = groups.pop(None, None)
    return groups | ({None: pending} if pending else {})


def _name(group: Group) -> str:
    return "pending" if group is None else group[1]


def _page_body(task: dict[str, Any]) -> tuple[PageTaskCreate, dict[str, Any]]:
    """The old row as the Mailing page's create body (what it once was), and its extra fields."""
    raw = {
        k: task[k]
        for k in (
            "name",
            "description",
            "platform",
            "priority",
            "delay_between_invites",
            "max_invites_per_account",
            "invite_message",
            "settings",
        )
        if task.get(k) is not None
    }
    raw["name"] = raw.get("name") or f"old task {task['id']}"
    raw["priority"] = str(raw.get("priority", "normal")).lower()
    raw["settings"] = {**(raw.get("settings") or {}), "legacy_task_id": int(task["id"])}
    return msgspec.convert(raw, PageTaskCreate, strict=False), extra_fields(raw, PageTaskCreate)


def _person(target: dict[str, Any]) -> dict[str, Any]:
    return {ours: target[theirs] for theirs, ours in _PERSON.items() if target.get(theirs) not in (None, "")}


def _decode(row: str) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(row)
    return decoded


def _time(value: Any) -> datetime | None:
    """An old timestamp (naive: the old service wrote UTC) as an aware one."""
    if not value:
        return None
    at = datetime.fromisoformat(str(value))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _last_time(task: dict[str, Any], clock: Clock) -> datetime:
    for key in ("end_time", "updated_at", "start_time", "created_at"):
        if (at := _time(task.get(key))) is not None:
            return at
    return clock.now()


def _why(exc: Exception) -> str:
    if isinstance(exc, Problem):
        named = "; ".join(f"{p.name}: {p.reason}" for p in exc.params)
        return named or exc.detail or exc.title
    return str(exc)


@asynccontextmanager
async def old_tables(url: str, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection that finds the old service's tables in ``schema`` (and nothing of ours)."""
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        yield conn
    finally:
        await conn.close()
