"""The Mailing page's calls mapped onto our own services, and our answers into its words.

Tasks go through ``TaskService`` (create, edit, the state machine), progress and the log
through ``ReportService``, accounts through ``AccountsService``. The page's fields map so:

- ``name`` → title; ``invite_message`` → the template of a message task (an invite task has
  none, unless it falls back to messages: below);
- ``settings.fallback_to_messages: true`` on an invite task → ``privacy_fallback:
  "invite_link"`` with ``invite_message`` as the task's template: a person whose privacy refuses
  the add gets one personal message from it with a one-use invite link (``{invite_link}`` in
  the text, else appended). Without a message (null or blank) there is nothing to send, and
  the fallback stays off; ``false`` turns it off (and drops the template). An edit whose
  settings leave the field out changes neither. On a message task it means nothing. The field
  itself is kept and given back as sent;
- ``settings.group_id`` (or ``invite_type: "group_invite"``) → an invite task into that group,
  else a message task;
- ``priority`` words → ours (``urgent`` → HIGH);
- ``delay_between_invites`` → the task's pause between actions, never below ``MIN_PAUSE_SECONDS``;
- ``max_invites_per_account`` → the task's per-account daily limit, never above ``DAILY_QUOTA``
  (the engine lowers it further to what the platform allows each account);
- ``settings.allowed_account_ids`` → the accounts to use (empty: all the tenant's);
- whatever else it sends is kept in ``TaskSettings.extra`` and given back.

Statuses come back in the page's words: ``draft`` and ``scheduled`` are ``pending``. Each
account entry (``/accounts/``, ``/tasks/{id}/accounts``, the rights check) has, besides the
fields the page reads, the account's health as our ``GET /accounts`` tells it: ``health``
(healthy, pacing, cooling_down, spam_flagged, frozen, dead, warming_up), ``health_until`` (when
a cooling_down or spam_flagged rest ends) and ``warmup_day`` of ``warmup_days`` (warming_up).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import msgspec
from msgspec import UNSET

from invite.accounts.schemas import AccountView
from invite.accounts.service import AccountsService
from invite.frontend_api.schemas import (
    AccountAggregates,
    Execution,
    LogEntry,
    PageAccount,
    PageSettings,
    PageStatus,
    PageTask,
    PageTaskCreate,
    PageTaskList,
    PageTaskStatus,
    PageTaskUpdate,
    Targets,
    TaskAccount,
    TaskAccounts,
    Timing,
)
from invite.kernel.auth import Tenant
from invite.kernel.clock import Clock
from invite.kernel.problems import conflict, invalid
from invite.kernel.settings import Settings
from invite.platforms.base import AccountsProvider
from invite.reports import schemas as reports
from invite.reports.service import ReportService
from invite.tasks.schemas import InviteTaskCreate, InviteTaskResponse, InviteTaskUpdate, TaskStatusResponse
from invite.tasks.service import TaskService
from invite.tasks.states import Action, TaskStatus
from invite.tasks.task_settings import TaskSettings

PRIORITIES: dict[str, Literal[1, 2, 3]] = {"low": 3, "normal": 2, "high": 1, "urgent": 1}
_PRIORITY_WORDS: dict[int, Literal["high", "normal", "low"]] = {1: "high", 2: "normal", 3: "low"}
# the page knows the platform's account words: a cooldown is its flood_wait
_ACCOUNT_WORDS = {"active": "active", "cooldown": "flood_wait", "blocked": "blocked", "disabled": "disabled"}
# the health states whose rest ends at the account's cooldown_until
_RESTING = frozenset({"cooling_down", "spam_flagged"})
# log statuses the page counts as a success, and those that are the account's or the system's
# trouble rather than the person's (the rest: the person could not be reached)
_SUCCEEDED = frozenset({"success", "already_member"})
_SYSTEM = frozenset(
    {
        "flood_wait",
        "peer_flood",
        "account_dead",
        "no_admin_right",
        "chat_unavailable",
        "transient",
        "driver_error",
        "delivery_unknown",  # a message handed over whose answer never came: ours to settle
    }
)
_LIST_BATCH = 200  # tasks read per statement while the page's list is paged by offset
_NO_HOURS = datetime.max.replace(tzinfo=UTC)  # a stats window with no hours in it: per account only
_PAGE_STATUSES: dict[TaskStatus, PageStatus] = {
    TaskStatus.DRAFT: "pending",
    TaskStatus.SCHEDULED: "pending",
    TaskStatus.RUNNING: "running",
    TaskStatus.PAUSED: "paused",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "cancelled",
}
# the page's status words → ours
STATUSES: dict[str, frozenset[TaskStatus]] = {
    word: frozenset(ours for ours, page in _PAGE_STATUSES.items() if page == word)
    for word in dict.fromkeys(_PAGE_STATUSES.values())
}


def page_status(status: TaskStatus) -> PageStatus:
    return _PAGE_STATUSES[status]


MAX_EXTRA_FIELDS = 64


def extra_fields(raw: Any, body: type[msgspec.Struct]) -> dict[str, Any]:
    """What a body holds besides the fields ``body`` and PageSettings name (kept, not refused)."""
    if not isinstance(raw, dict):
        return {}
    extra = {k: v for k, v in raw.items() if k not in body.__struct_fields__}
    settings = raw.get("settings")
    if isinstance(settings, dict):
        extra |= {k: v for k, v in settings.items() if k not in PageSettings.__struct_fields__}
    if len(extra) > MAX_EXTRA_FIELDS:
        raise invalid("settings", f"at most {MAX_EXTRA_FIELDS} fields besides the ones this service reads")
    return extra


def task_create(body: PageTaskCreate, extra: dict[str, Any], settings: Settings) -> InviteTaskCreate:
    """Our task, from the page's create body (and ``extra``: what else it sent, kept)."""
    group = body.target_group_id or body.settings.group_id
    invite = group is not None or body.settings.invite_type == "group_invite"
    if invite and group is None:
        raise invalid("settings.group_id", "required for an invite task (invite_type group_invite)")
    delay = body.delay_between_invites
    if delay is None:
        delay = body.settings.delay_between_invites
    fallback = invite and falls_back(extra) is True and _written(body.invite_message)
    return InviteTaskCreate(
        platform=body.platform,
        task_type="invite_to_group" if invite else "send_messages",
        title=body.name,
        description=body.description,
        target_group_id=group if invite else None,
        message_template=body.invite_message if fallback or not invite else None,
        priority=PRIORITIES[body.priority],
        settings=TaskSettings(
            account_ids=body.settings.allowed_account_ids or None,
            min_pause_seconds=_pause(delay, settings),
            daily_limit_per_account=_daily_limit(body.max_invites_per_account, settings),
            privacy_fallback="invite_link" if fallback else None,
            extra=extra or None,
        ),
    )


FALLBACK_FIELD = "fallback_to_messages"


def falls_back(extra: dict[str, Any]) -> bool | None:
    """What the page's ``settings.fallback_to_messages`` says (kept in ``extra`` as sent):
    True or False, None when it is left out (or is not a bool)."""
    value = extra.get(FALLBACK_FIELD)
    return value if isinstance(value, bool) else None


def _written(message: str | None) -> bool:
    return message is not None and bool(message.strip())


def _pause(delay: float | None, settings: Settings) -> float | None:
    """The page's delay as the task's pause: never below ours."""
    return None if delay is None else max(delay, settings.min_pause_seconds)


def _daily_limit(limit: int | None, settings: Settings) -> int | None:
    """The page's per-account limit as the task's: never above our daily quota."""
    return None if limit is None else min(limit, settings.daily_quota)


class FrontendService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        clock: Clock,
        tenant: Tenant,
        accounts: AccountsProvider,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self.tasks = TaskService(pool, settings, clock, tenant)
        self.reports = ReportService(pool, settings, clock, tenant)
        self.accounts = AccountsService(pool, accounts, settings, clock, tenant.user_id)

    # --- tasks -------------------------------------------------------------------------

    async def create(self, body: PageTaskCreate, extra: dict[str, Any]) -> PageTask:
        return await self._item(await self.tasks.create(task_create(body, extra, self._settings)))

    async def update(self, task_id: uuid.UUID, body: PageTaskUpdate, extra: dict[str, Any]) -> PageTask:
        current = await self.tasks.get(task_id)
        invite = current.task_type == "invite_to_group"
        change = InviteTaskUpdate()
        if body.name is not UNSET:
            change.title = body.name
        if body.description is not UNSET:
            change.description = body.description
        if body.priority is not UNSET:
            change.priority = PRIORITIES[body.priority]
        if body.invite_message is not UNSET and not invite:
            change.message_template = body.invite_message
        page = body.settings if body.settings is not UNSET else None
        group = body.target_group_id if body.target_group_id is not UNSET else None
        if group is None and page is not None:
            group = page.group_id
        if group and invite:
            change.target_group_id = group
        settings = current.settings
        delay = body.delay_between_invites
        if delay is UNSET:
            delay = page.delay_between_invites if page and page.delay_between_invites is not None else UNSET
        if delay is not UNSET:
            settings = msgspec.structs.replace(settings, min_pause_seconds=_pause(delay, self._settings))
        if body.max_invites_per_account is not UNSET:
            limit = _daily_limit(body.max_invites_per_account, self._settings)
            settings = msgspec.structs.replace(settings, daily_limit_per_account=limit)
        if page is not None:  # the page sends its settings whole: they replace what it sent before
            if page.allowed_account_ids is not None:
                settings = msgspec.structs.replace(settings, account_ids=page.allowed_account_ids or None)
            settings = msgspec.structs.replace(settings, extra=extra or None)
        if invite:  # the fallback to messages: on with a message to send, else off (no template)
            wanted = falls_back(extra) if page is not None else None
            on = current.settings.privacy_fallback == "invite_link" if wanted is None else wanted
            message = current.message_template if body.invite_message is UNSET else body.invite_message
            on = on and _written(message)
            if (message if on else None) != current.message_template:
                change.message_template = message if on else None
            if on != (settings.privacy_fallback == "invite_link"):
                settings = msgspec.structs.replace(settings, privacy_fallback="invite_link" if on else None)
        if settings != current.settings:
            change.settings = settings
        return await self._item(await self.tasks.update(task_id, change))

    async def get(self, task_id: uuid.UUID) -> PageTask:
        return await self._item(await self.tasks.get(task_id))

    async def list_page(
        self, statuses: list[str], platforms: list[str], page: int, page_size: int
    ) -> PageTaskList:
        """The page pages by offset and wants a total: the tenant's tasks are read newest first in
        batches (a tenant holds tens or hundreds, not millions), filtered, then sliced."""
        wanted: set[TaskStatus] = set()
        for word in statuses:
            if word not in STATUSES:
                raise invalid("status", f"one of {', '.join(STATUSES)}")
            wanted |= STATUSES[word]
        only = next(iter(wanted)) if len(wanted) == 1 else None
        platform = platforms[0] if len(platforms) == 1 else None
        found: list[InviteTaskResponse] = []
        cursor: str | None = None
        while True:
            batch = await self.tasks.list_page(
                status=only,
                task_type=None,
                platform=platform,
                priority=None,
                cursor=cursor,
                limit=_LIST_BATCH,
            )
            found += [
                t
                for t in batch.items
                if (not wanted or t.status in wanted) and (not platforms or t.platform in platforms)
            ]
            cursor = batch.next_cursor
            if cursor is None:
                break
        total = len(found)
        pages = math.ceil(total / page_size)
        shown = found[(page - 1) * page_size : page * page_size]
        return PageTaskList(
            items=list(await asyncio.gather(*(self._item(t) for t in shown))),
            total=total,
            page=page,
            page_size=page_size,
            total_pages=pages,
            has_next=page < pages,
            has_prev=page > 1,
        )

    async def delete(self, task_id: uuid.UUID) -> None:
        await self.tasks.delete(task_id)

    # --- control -----------------------------------------------------------------------

    async def execute(self, task_id: uuid.UUID) -> Execution:
        """Start a pending task, resume a paused one; a running one is left as it is."""
        task = await self.tasks.get(task_id)
        if task.status is TaskStatus.RUNNING:
            message = "the task is already running"
        elif task.status is TaskStatus.PAUSED:
            task, message = await self.tasks.apply(task_id, Action.RESUME), "task resumed"
        elif task.status is TaskStatus.SCHEDULED:
            # the page has no schedule: "start" means now. Paused, unscheduled, resumed: each
            # step is a legal transition of its own (a scheduled task only starts when due).
            await self.tasks.apply(task_id, Action.PAUSE)
            await self.tasks.update(task_id, InviteTaskUpdate(scheduled_at=None))
            task, message = await self.tasks.apply(task_id, Action.RESUME), "task started"
        else:  # a draft starts; a finished task gets the state machine's 409
            task, message = await self.tasks.apply(task_id, Action.START), "task started"
        return Execution(
            message=message, task_id=task.id, status=page_status(task.status), started_at=task.started_at
        )

    async def pause(self, task_id: uuid.UUID) -> Execution:
        task = await self.tasks.get(task_id)
        if task.status is TaskStatus.PAUSED:
            message = "the task is already paused"
        elif task.status is TaskStatus.DRAFT:  # the page's "cancel" of a pending task lands here
            raise conflict("the task has not started, so there is nothing to pause; delete it to drop it")
        else:
            task, message = await self.tasks.apply(task_id, Action.PAUSE), "task paused"
        return Execution(message=message, task_id=task.id, status=page_status(task.status))

    # --- progress ----------------------------------------------------------------------

    async def status(self, task_id: uuid.UUID) -> PageTaskStatus:
        task = await self.tasks.get(task_id)
        report = await self.reports.progress(task_id)  # our /status: the counts and the ETA
        end = task.completed_at or self._clock.now()
        return PageTaskStatus(
            task_id=task.id,
            status=page_status(report.status),
            progress_percentage=report.percent_done,
            targets=targets(report),
            counts=report.counts,
            timing=Timing(
                created_at=task.created_at,
                started_at=task.started_at,
                ended_at=task.completed_at,
                execution_time_seconds=(end - task.started_at).total_seconds() if task.started_at else None,
                estimated_completion_at=None if task.completed_at else report.eta,
            ),
            settings=self._page_settings(task),
            error_message=report.status_reason,
            driver=report.driver,
        )

    async def logs(
        self, task_id: uuid.UUID, *, limit: int, offset: int, status: str | None, action: str | None
    ) -> list[LogEntry]:
        page = await self.reports.logs(
            task_id,
            status=status,
            account_id=None,
            action=action,
            since=None,
            until=None,
            cursor=None,
            limit=offset + limit,
        )
        return [log_entry(str(task_id), entry) for entry in page.items[offset:]]

    # --- accounts ----------------------------------------------------------------------

    async def account_list(self) -> list[PageAccount]:
        return [page_account(view) for view in (await self.accounts.list_accounts()).accounts]

    async def task_accounts(self, task_id: uuid.UUID) -> TaskAccounts:
        """The task's accounts with their live state: those it has used, or (before it ran) those
        its settings name, or all the tenant's."""
        task = await self.tasks.get(task_id)
        stats = await self.reports.stats(task_id, _NO_HOURS, _NO_HOURS)
        live = {view.id: view for view in (await self.accounts.list_accounts()).accounts}
        in_task = {a.account_id: a for a in stats.by_account}
        ids = list(in_task) or task.settings.account_ids or list(live)
        accounts = [
            task_account(live.get(account_id), account_id, in_task.get(account_id), self._settings)
            for account_id in ids
        ]
        usable = [a for a in accounts if a.available and a.status == "active" and a.task_state != "blocked"]
        return TaskAccounts(
            task_id=task.id,
            platform=task.platform,
            total_accounts=len(accounts),
            active_accounts=len(usable),
            available_now=sum(a.daily_invites_used < a.daily_invite_limit for a in usable),
            accounts=accounts,
            aggregates=AccountAggregates(
                daily_limit_total=sum(a.daily_invite_limit for a in usable),
                used_today=sum(a.daily_invites_used for a in accounts),
                remaining_today=sum(max(0, a.daily_invite_limit - a.daily_invites_used) for a in usable),
                in_cooldown=sum(a.status == "flood_wait" or a.task_state == "cooldown" for a in accounts),
                blocked=sum(
                    a.status in ("blocked", "disabled") or a.task_state == "blocked" for a in accounts
                ),
            ),
        )

    # --- helpers -----------------------------------------------------------------------

    async def _item(self, task: InviteTaskResponse) -> PageTask:
        report = await self.tasks.status_report(uuid.UUID(task.id))
        done = targets(report)
        return PageTask(
            id=task.id,
            title=task.title,
            name=task.title,
            description=task.description,
            platform=task.platform,
            task_type=task.task_type,
            status=page_status(report.status),
            priority=_PRIORITY_WORDS[task.priority],
            progress_percentage=report.percent_done,
            target_count=done.total,
            completed_count=done.invited,
            failed_count=done.failed,
            target_group_id=task.target_group_id,
            invite_message=task.message_template,
            delay_between_invites=task.settings.min_pause_seconds or self._settings.min_pause_seconds,
            max_invites_per_account=task.settings.daily_limit_per_account or self._settings.daily_quota,
            settings=self._page_settings(task),
            error_message=report.status_reason,
            driver=report.driver,
            created_at=task.created_at,
            updated_at=task.updated_at,
            started_at=task.started_at,
            completed_at=task.completed_at,
        )

    def _page_settings(self, task: InviteTaskResponse) -> dict[str, Any]:
        """Ours, what the page sent besides, and the page's own keys, as it reads them."""
        ours: dict[str, Any] = msgspec.to_builtins(msgspec.structs.replace(task.settings, extra=None))
        invite = task.task_type == "invite_to_group"
        return {
            **ours,
            **(task.settings.extra or {}),
            "group_id": task.target_group_id if invite else None,
            "invite_type": "group_invite" if invite else "message",
            "allowed_account_ids": list(task.settings.account_ids or []),
            "delay_between_invites": task.settings.min_pause_seconds or self._settings.min_pause_seconds,
        }


def targets(report: TaskStatusResponse) -> Targets:
    counts = report.counts
    return Targets(
        total=report.total,
        pending=counts["pending"] + counts["in_flight"],
        invited=counts["succeeded"],
        failed=counts["failed"] + counts["skipped"] + counts["uncertain"],
        cancelled=counts["cancelled"],
    )


def log_entry(task_id: str, entry: reports.LogEntry) -> LogEntry:
    who = entry.user_identifier or "—"
    detail = str(entry.details.get("detail") or "")
    kind: Literal["INVITE_SUCCESSFUL", "INVITE_FAILED", "ERROR_OCCURRED"]
    if entry.status in _SUCCEEDED:
        kind, message = "INVITE_SUCCESSFUL", f"{who}: {entry.status.replace('_', ' ')}"
    elif entry.status in _SYSTEM or entry.target_id is None:
        kind, message = "ERROR_OCCURRED", f"{entry.status}: {detail}" if detail else entry.status
    else:
        kind = "INVITE_FAILED"
        message = f"{who}: {entry.status.replace('_', ' ')}" + (f" ({detail})" if detail else "")
    return LogEntry(
        id=entry.id,
        task_id=task_id,
        target_id=entry.target_id,
        account_id=entry.account_id,
        action_type=kind,
        action=entry.action,
        status=entry.status,
        message=message,
        created_at=entry.created_at,
        details={
            **entry.details,
            "result_status": entry.status.upper(),
            "target_username": entry.user_identifier,
        },
    )


def page_account(view: AccountView) -> PageAccount:
    word = _ACCOUNT_WORDS[view.status]
    return PageAccount(
        account_id=view.id,
        platform="telegram",
        username=view.label,
        status=word,
        account_status=word,
        status_reason=view.status_reason,
        available=view.available,
        daily_invite_limit=view.daily_limit,
        daily_invites_used=view.used_today,
        flood_wait_until=view.cooldown_until if view.status == "cooldown" else None,
        blocked_until=None,  # a blocked account stays blocked until the platform says otherwise
        health=str(view.health),
        health_until=view.cooldown_until if view.health in _RESTING else None,
        warmup_day=view.warmup_day,
        warmup_days=view.warmup_days,
    )


def task_account(
    view: AccountView | None, account_id: str, stats: reports.AccountStats | None, settings: Settings
) -> TaskAccount:
    base = (
        page_account(view)
        if view is not None
        else PageAccount(
            account_id=account_id,
            platform="telegram",
            username="",
            status="disabled",
            account_status="disabled",
            status_reason="not listed by the platform",
            available=False,
            daily_invite_limit=settings.daily_quota,
            daily_invites_used=0,
            flood_wait_until=None,
            blocked_until=None,
            health="dead",  # as GET /accounts calls a disabled account
        )
    )
    return TaskAccount(
        **msgspec.structs.asdict(base),
        task_state=stats.state if stats else None,
        task_state_reason=stats.state_reason if stats else None,
        actions=stats.actions if stats else 0,
    )
