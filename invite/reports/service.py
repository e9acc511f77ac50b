"""Reporting use cases: stats, the final report and its export, the execution log, and
re-queueing failed targets.

Everything reads trigger-kept counters and rollups (``invite_task_counts``, 0004's
``invite_stats_by_*``) or pages through an index, so a request costs the same at a thousand
targets as at a million.

**Retry failed** puts a task's failed targets whose outcome says another try may work
(``RETRYABLE_OUTCOMES``, the decision table's retryable rows: a transient error, or an
account-side problem another account or a later moment can get past) back in the queue:
pending, attempts reset, due now, no account.
Targets skipped for a reason about the person (privacy, not found, ...) stay as they are, and
``uncertain`` messages are never re-sent; people the tenant suppressed since they failed stay
failed and are counted (``skipped_suppressed``). It works on a scheduled, running or paused task, and
it **reopens** a completed or failed task to running, counting against the tenant's
active-task limit. A cancelled or draft task is refused (409), as is a finished task already
past its retention date (it is being removed).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import asyncpg
import msgspec
from litestar import Request

from invite.engine import opt_outs
from invite.engine.bucket import Bucket, Limits
from invite.engine.decisions import DECISIONS, RETRYABLE_OUTCOMES, Call, EngineOutcome
from invite.engine.forecast import TELEGRAM_DEFAULTS, History, Refusals, Seat, Seen, Warmup, plan
from invite.engine.registry import RunningTask
from invite.engine.repository import TaskRow
from invite.engine.warmup import warmup_cap, warmup_day
from invite.kernel import audit
from invite.kernel.auth import Tenant
from invite.kernel.clock import Clock
from invite.kernel.cursors import Cursor, decode_cursor, encode_cursor
from invite.kernel.db import DbConnection
from invite.kernel.events import TaskEvent
from invite.kernel.problems import Problem, conflict, invalid, not_found
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql
from invite.observability.metrics import tasks_total
from invite.platforms.base import AccountsProvider, OutcomeKind, RateLimits
from invite.reports.rows import ExportRow, LogRow, ProgressRow, Requeued, StatsRow, TenantHistory
from invite.reports.schemas import (
    AccountStats,
    HourStats,
    LinkStats,
    LogEntry,
    LogPage,
    ReplyStats,
    RetryFailedResponse,
    TargetTotals,
    TaskForecast,
    TaskProgress,
    TaskReport,
    TaskStatsResponse,
)
from invite.reports.status_plans import Planned, StatusPlans
from invite.tasks import states
from invite.tasks.rows import StoredTask, TargetCount
from invite.tasks.schemas import UNFINISHED_TARGETS, TaskStatusResponse
from invite.tasks.service import TaskService, status_response
from invite.tasks.states import TaskStatus

EXPORT_PAGE_SIZE = 5000
# what an invite refused for the person's privacy is logged as: skipped, or (in a task offering
# one-use links) offered a link -- the forecast's share of people a link is offered to
REFUSED_FOR_PRIVACY = (
    DECISIONS[OutcomeKind.PRIVACY_RESTRICTED].logged,
    DECISIONS[EngineOutcome.LINK_DUE].logged,
)
RETRY_FROM = frozenset({TaskStatus.SCHEDULED, TaskStatus.RUNNING, TaskStatus.PAUSED})
REOPEN_FROM = states.allowed_from(states.Action.REOPEN)
STATUS_EVENTS = 50  # reservations /status replays before going on at the steady rate
STATUS_PLAN_SECONDS = 30.0  # how long /status keeps a task's rate, accounts and ETA (clock seconds)
STATUS_PLANS_KEPT = 10_000  # tasks whose /status plan this process keeps, at most
PRIOR_TASKS = 10  # the tenant's most recent tasks whose FloodWaits a task expects before its own
_BEGINNING = datetime.min.replace(tzinfo=UTC)
_END = datetime.max.replace(tzinfo=UTC)


_STATUS_PLANS = StatusPlans(STATUS_PLAN_SECONDS, STATUS_PLANS_KEPT)  # (tenant, task) → its /status plan


def provide_report_service(request: Request[Tenant, Any, Any]) -> ReportService:
    """The routes' ReportService (the reports', a task's status, an import's dry run)."""
    state = request.app.state  # one dependency, not four: see invite.app
    return ReportService(state.pool, state.settings, state.clock, request.user, state.accounts_provider)


class ReportService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        clock: Clock,
        tenant: Tenant,
        accounts: AccountsProvider | None = None,
    ) -> None:
        self._pool = pool
        self._accounts = accounts  # for the forecast of a task not started yet
        self._settings = settings
        self._clock = clock
        self._tenant = tenant.user_id
        self._sql = Sql(settings.sql_dir)
        self._tasks = TaskService(pool, settings, clock, tenant)

    async def status(self, task_id: uuid.UUID) -> TaskStatusResponse:
        """The task's basic status (404 for another tenant's task)."""
        return await self._tasks.status_report(task_id)

    # --- progress and forecast ---------------------------------------------------------

    async def progress(self, task_id: uuid.UUID) -> TaskProgress:
        """/status: the counts with the last hour's rate, the accounts by state and the ETA.

        The counts are always read afresh (tenant-scoped: 404 for another's task); the rest is
        a plan made at most once per task every STATUS_PLAN_SECONDS in this process and shared
        (``status_plans.py``): a plan reads and replays every account of the task."""
        status = await self._tasks.status_report(task_id)
        now = self._clock.now()
        planned = await _STATUS_PLANS.get(
            (self._tenant, task_id), status.status, now, lambda: self._status_plan(task_id, now)
        )
        return TaskProgress(**msgspec.structs.asdict(status), **planned._asdict())

    async def _status_plan(self, task_id: uuid.UUID, now: datetime) -> Planned:
        row = await self._progress_row(task_id, now, [])
        status = status_response(task_id, row)
        history = await self._history(task_id, row, status)
        with self._clock.busy():  # the accounts' buckets replayed off the event loop
            return await asyncio.to_thread(_status_plan, row, status, history, self._settings, now)

    async def forecast(self, task_id: uuid.UUID, adding: int = 0) -> TaskForecast:
        """How long the rest of the task takes (with ``adding`` more people: an import's dry run).
        A task not yet started has no accounts attached: those it would use (its account_ids,
        else every account the provider lists) are asked of the accounts provider, with the
        quota state the engine keeps of each."""
        now = self._clock.now()
        row = await self._progress_row(task_id, now, [])
        listed: dict[str, int | None] = {}
        task = _task_of(row)
        if row.a_id is None and self._accounts is not None and task is not None:
            wanted = task.settings.account_ids
            listed = {
                a.id: a.daily_limit
                for a in await self._accounts.list_accounts(self._tenant)
                if a.user_id == self._tenant and (wanted is None or a.id in wanted)
            }
            row = await self._progress_row(task_id, now, list(listed))
        status = status_response(task_id, row)
        seats, by_state = _seats(row, listed, self._settings, now)
        planned = plan(
            now,
            _remaining(status) + adding,
            seats,
            relax_step=self._settings.pace_multiplier_step,
            history=await self._history(task_id, row, status),
            warmup=_warmup(self._settings),
            links_due=row.links_due,
        )
        return TaskForecast(
            task_id=str(task_id),
            status=status.status,
            generated_at=now,
            remaining=planned.remaining,
            accounts=planned.accounts,
            accounts_by_state=by_state,
            people_per_day=planned.people_per_day,
            days=None if planned.days is None else round(planned.days, 3),
            finish_at=planned.finish_at,
            limited_by=planned.limited_by,
        )

    async def _history(self, task_id: uuid.UUID, row: ProgressRow, status: TaskStatusResponse) -> History:
        """What the task's FloodWaits have cost so far, the tenant's other tasks of its kind
        filling in while it has few of its own (``History.of``): their rate from the rollups,
        their cooldown the mean wait from the log plus the margin the engine adds to each."""
        own = (
            await self._sql.fetchval(self._pool, "reports.flood_seconds", task_id=task_id)
            if row.floods
            else None
        )
        other = await self._sql.fetchrow(
            self._pool,
            "forecast.tenant_history",
            TenantHistory,
            user_id=self._tenant,
            platform=row.platform,
            task_type=row.task_type,
            task_id=task_id,
            tasks=PRIOR_TASKS,
            invite_action=Call.INVITE.value,
            refused=list(REFUSED_FOR_PRIVACY),
        )
        assert other is not None  # an aggregate row always comes back
        margin = self._settings.flood_wait_margin_seconds
        # what the people reached cost, one-use links aside (the replay counts those itself): the
        # messages carrying them, the invites that offered them, and the people whose link went
        done_by_link = row.offered - row.links_due
        return History.of(
            Seen(row.actions - row.link_actions - row.offered, row.floods, (own or 0.0) + margin),
            status.processed - done_by_link,
            Seen(other.actions, other.floods, (other.flood_seconds or 0.0) + margin),
            refusals=Refusals(row.invites, row.refused),
            tenant_refusals=Refusals(other.invites, other.refused),
        )

    async def _progress_row(self, task_id: uuid.UUID, now: datetime, account_ids: list[str]) -> ProgressRow:
        row = await self._sql.fetchrow(
            self._pool,
            "reports.progress",
            ProgressRow,
            task_id=task_id,
            user_id=self._tenant,
            rate_since=_rate_since(now),
            account_ids=account_ids,
            not_actions=[Call.LINK_JOINS.value],
            link_action=Call.LINK_MESSAGE.value,
            invite_action=Call.INVITE.value,
            offered=DECISIONS[EngineOutcome.LINK_DUE].logged,
            refused=list(REFUSED_FOR_PRIVACY),
        )
        if row is None:
            raise not_found("task")
        return row

    # --- stats and the report ----------------------------------------------------------

    async def stats(
        self, task_id: uuid.UUID, since: datetime | None, until: datetime | None
    ) -> TaskStatsResponse:
        stats = await self._stats(task_id, since or _BEGINNING, until or _END)
        return TaskStatsResponse(
            task_id=stats.status.task_id,
            status=stats.status.status,
            driver=stats.status.driver,
            targets=stats.status.counts,
            actions=sum(stats.by_action.values()),
            by_action=stats.by_action,
            by_outcome=stats.by_outcome,
            by_account=stats.by_account,
            by_hour=stats.by_hour,
            replies=stats.replies,
            links=link_stats(stats.by_outcome),
        )

    async def report(self, task_id: uuid.UUID) -> TaskReport:
        task = await self._tasks.get(task_id)
        stats = await self._stats(task_id, _END, _END)  # no hours
        status = stats.status
        now = self._clock.now()
        succeeded = status.counts.get("succeeded", 0)
        end = task.completed_at or now
        return TaskReport(
            task=task,
            final=task.status in states.FINISHED,
            generated_at=now,
            duration_seconds=(end - task.started_at).total_seconds() if task.started_at else None,
            targets=TargetTotals(
                total=status.total,
                processed=status.processed,
                succeeded=succeeded,
                success_rate=round(succeeded / status.processed, 4) if status.processed else 0.0,
                by_status=status.counts,
            ),
            actions=sum(stats.by_outcome.values()),
            by_outcome=stats.by_outcome,
            by_account=stats.by_account,
            links=link_stats(stats.by_outcome),
        )

    async def _stats(self, task_id: uuid.UUID, since: datetime, until: datetime) -> _Stats:
        """reports.stats: one statement, folded here (404 for another tenant's task)."""
        row = await self._sql.fetchrow(
            self._pool,
            "reports.stats",
            StatsRow,
            task_id=task_id,
            user_id=self._tenant,
            since=since,
            until=until,
        )
        if row is None:
            raise not_found("task")
        return _fold_stats(task_id, row)

    async def export_pages(self, task_id: uuid.UUID) -> AsyncIterator[Sequence[ExportRow]]:
        """The task's targets, a page at a time; 404 here, before anything streams."""
        await self._tasks.status_report(task_id)
        return self._target_pages(task_id)

    async def _target_pages(self, task_id: uuid.UUID) -> AsyncIterator[Sequence[ExportRow]]:
        after = 0
        while True:
            page = await self._sql.fetch(
                self._pool,
                "reports.export_page",
                ExportRow,
                task_id=task_id,
                after_seq=after,
                limit=EXPORT_PAGE_SIZE,
            )
            if page:
                yield page
            if len(page) < EXPORT_PAGE_SIZE:
                return
            after = page[-1].seq

    # --- the execution log -------------------------------------------------------------

    async def logs(
        self,
        task_id: uuid.UUID,
        *,
        status: str | None,
        account_id: str | None,
        action: str | None,
        since: datetime | None,
        until: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> LogPage:
        if since is not None and until is not None and since >= until:
            raise invalid("since", "must be before until")
        await self._tasks.status_report(task_id)
        if cursor is not None:
            after = decode_cursor(cursor)
        else:  # rows strictly before `until`: (until, smallest id) is just past the last one
            after = Cursor(until, uuid.UUID(int=0)) if until else Cursor(_END, uuid.UUID(int=(1 << 128) - 1))
        args: dict[str, Any] = {
            "task_id": task_id,
            "before_created_at": after.created_at,
            "before_id": after.id,
            "since": since or _BEGINNING,
            "status": status,
            "action": action,
            "limit": limit + 1,
        }
        name = "reports.logs_page"
        if account_id is not None:
            name = "reports.logs_page_by_account"
            args["account_id"] = account_id
        rows = await self._sql.fetch(self._pool, name, LogRow, **args)
        more = len(rows) > limit
        rows = rows[:limit]
        return LogPage(
            items=[_log_entry(r) for r in rows],
            next_cursor=encode_cursor(Cursor(rows[-1].created_at, rows[-1].id)) if more else None,
        )

    # --- retry failed ------------------------------------------------------------------

    async def retry_failed(self, task_id: uuid.UUID) -> RetryFailedResponse:
        now = self._clock.now()
        async with self._pool.acquire() as conn, conn.transaction():
            # the same order of locks as a start: tenant first, then the task's row
            await self._sql.execute(conn, "tasks.lock_tenant_starts", user_id=self._tenant)
            row = await self._sql.fetchrow(
                conn, "tasks.get_for_update", StoredTask, task_id=task_id, user_id=self._tenant
            )
            if row is None:
                raise not_found("task")
            status = TaskStatus(row.status)
            if status not in RETRY_FROM | REOPEN_FROM:
                raise Problem(
                    409,
                    "Conflict",
                    f"a {status.value} task has nothing to retry",
                    extra={"task_status": status.value},
                )
            reopening = status in REOPEN_FROM
            if reopening:
                self._check_not_expired(row.completed_at, now)
            counts = await self._sql.fetchrow(
                conn,
                "reports.requeue_failed",
                Requeued,
                task_id=task_id,
                outcomes=list(RETRYABLE_OUTCOMES),
                user_id=self._tenant,
            )
            assert counts is not None  # an aggregate row always comes back
            requeued, suppressed = counts.requeued, counts.suppressed
            pending = await self._pending(conn, task_id)
            reopened = reopening and pending > 0
            if reopened:
                await self._tasks.check_active_limit(conn, "before reopening this one")
                row = await self._sql.fetchrow(
                    conn,
                    "reports.reopen",
                    StoredTask,
                    task_id=task_id,
                    user_id=self._tenant,
                    allowed_from=[s.value for s in REOPEN_FROM],
                    now=now,
                )
                assert row is not None  # the row lock held the status still
            await audit.record(
                conn,
                self._settings.sql_dir,
                user_id=self._tenant,
                action="task.retry_failed",
                resource="task",
                resource_id=str(task_id),
                details={
                    "requeued": requeued,
                    "skipped_suppressed": suppressed,
                    "reopened": reopened,
                    "from": status.value,
                },
            )
            event = TaskEvent(task_id=str(task_id), type="progress", requeued=requeued)
            if reopened:
                event = TaskEvent(
                    task_id=str(task_id), type="status", status="running", reason="retry_failed"
                )
            if requeued or reopened:
                await self._sql.execute(conn, "tasks.notify", event=event.encode())
        if reopened:
            tasks_total.labels(platform=row.platform, status=TaskStatus.RUNNING.value).inc()
        return RetryFailedResponse(
            task_id=str(task_id),
            requeued=requeued,
            skipped_suppressed=suppressed,
            status=TaskStatus(row.status),
            reopened=reopened,
        )

    def _check_not_expired(self, completed_at: datetime | None, now: datetime) -> None:
        days = self._settings.finished_task_retention_days
        if days and completed_at is not None and completed_at < now - timedelta(days=days):
            raise conflict(f"the task finished more than {days} days ago and is being removed")

    async def _pending(self, conn: DbConnection, task_id: uuid.UUID) -> int:
        counts = {
            r.status: r.n
            for r in await self._sql.fetch(conn, "tasks.target_counts", TargetCount, task_id=task_id)
        }
        return int(counts.get("pending", 0))

    # --- helpers -----------------------------------------------------------------------


class _Stats(NamedTuple):
    status: TaskStatusResponse
    by_action: dict[str, int]
    by_outcome: dict[str, int]
    by_account: list[AccountStats]  # by account id, with the account's state in the task
    by_hour: list[HourStats]  # oldest first
    replies: ReplyStats  # all accounts


def _fold_stats(task_id: uuid.UUID, row: StatsRow) -> _Stats:
    """A row of reports.stats folded into totals, per account and per hour."""
    accounts: dict[str, AccountStats] = {}
    for account_id, state, reason, cooldown_until in zip(
        row.a_account or (),
        row.a_state or (),
        row.a_reason or (),
        row.a_cooldown or (),
        strict=True,
    ):
        accounts[account_id] = _account(account_id, state, reason, cooldown_until)
    by_action: dict[str, int] = {}
    by_outcome: dict[str, int] = {}
    tallies: dict[str, list[int]] = {}  # account → [reached, replied, opted out, blocked]
    for account_id, action, status, outcome, n, first_at, last_at in zip(
        row.r_account or (),
        row.r_action or (),
        row.r_status or (),
        row.r_outcome or (),
        row.r_n or (),
        row.r_first or (),
        row.r_last or (),
        strict=True,
    ):
        by_action[action] = by_action.get(action, 0) + n
        by_outcome[outcome] = by_outcome.get(outcome, 0) + n
        stats = accounts.get(account_id)
        if stats is None:  # an account that acted here but has no state in the task
            stats = accounts[account_id] = _account(account_id, None, None, None)
        if action in opt_outs.ACTIONS and status in opt_outs.REACHED:
            tally = tallies.setdefault(account_id, [0, 0, 0, 0])
            tally[0] += n
            tally[3] += n if status == opt_outs.BLOCKED else 0
        stats.actions += n
        stats.by_status[status] = stats.by_status.get(status, 0) + n
        stats.by_outcome[outcome] = stats.by_outcome.get(outcome, 0) + n
        if stats.first_action_at is None or first_at < stats.first_action_at:
            stats.first_action_at = first_at
        if stats.last_action_at is None or last_at > stats.last_action_at:
            stats.last_action_at = last_at
    for account_id, replied, opted_out in zip(
        row.p_account or (), row.p_replies or (), row.p_opt_outs or (), strict=True
    ):
        tally = tallies.setdefault(account_id, [0, 0, 0, 0])
        tally[1] += replied
        tally[2] += opted_out
        if account_id not in accounts:
            accounts[account_id] = _account(account_id, None, None, None)
    for account_id, tally in tallies.items():
        accounts[account_id].replies = _reply_stats(*tally)
    hours: dict[datetime, HourStats] = {}
    for hour, status, outcome, n in zip(
        row.h_hour or (),
        row.h_status or (),
        row.h_outcome or (),
        row.h_n or (),
        strict=True,
    ):
        stats_ = hours.get(hour)
        if stats_ is None:
            stats_ = hours[hour] = HourStats(hour=hour, actions=0, by_status={}, by_outcome={})
        stats_.actions += n
        stats_.by_status[status] = stats_.by_status.get(status, 0) + n
        stats_.by_outcome[outcome] = stats_.by_outcome.get(outcome, 0) + n
    return _Stats(
        status=status_response(task_id, row),
        by_action=by_action,
        by_outcome=by_outcome,
        by_account=[accounts[account_id] for account_id in sorted(accounts)],
        by_hour=list(hours.values()),
        replies=_reply_stats(*(sum(column) for column in zip(*tallies.values(), strict=True))),
    )


def link_stats(by_outcome: dict[str, int]) -> LinkStats:
    """The one-use invite links, from the execution log's outcomes: each as its row of the
    decision table logs it."""

    def n(key: EngineOutcome) -> int:
        return by_outcome.get(DECISIONS[key].logged, 0)

    sent, joined = n(EngineOutcome.LINK_SENT), n(EngineOutcome.JOINED_VIA_LINK)
    return LinkStats(
        offered=n(EngineOutcome.LINK_DUE),
        sent=sent,
        joined=joined,
        expired=n(EngineOutcome.LINK_EXPIRED),
        join_rate=round(joined / sent, 4) if sent else 0.0,
    )


def _reply_stats(reached: int = 0, replied: int = 0, opted_out: int = 0, blocked: int = 0) -> ReplyStats:
    def rate(n: int) -> float:
        return round(n / reached, 4) if reached else 0.0

    return ReplyStats(
        reached=reached,
        replied=replied,
        opted_out=opted_out,
        blocked=blocked,
        reply_rate=rate(replied),
        opt_out_rate=rate(opted_out),
        block_rate=rate(blocked),
    )


def _account(
    account_id: str, state: str | None, reason: str | None, cooldown_until: datetime | None
) -> AccountStats:
    return AccountStats(
        account_id=account_id,
        state=state,
        state_reason=reason,
        cooldown_until=cooldown_until,
        actions=0,
        by_status={},
        by_outcome={},
        first_action_at=None,
        last_action_at=None,
        replies=_reply_stats(),
    )


def _log_entry(row: LogRow) -> LogEntry:
    return LogEntry(
        id=str(row.id),
        created_at=row.created_at,
        target_id=str(row.target_id) if row.target_id else None,
        user_identifier=row.user_identifier,
        account_id=row.account_id,
        action=row.action,
        status=row.status,
        details=row.details,
    )


def _rate_since(now: datetime) -> datetime:
    """The start of /status's rate window: the previous whole UTC hour (the rollup's grain), so
    the rate covers between one and two hours, never a few minutes."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def _status_plan(
    row: ProgressRow, status: TaskStatusResponse, history: History, settings: Settings, now: datetime
) -> Planned:
    """/status's rate, accounts by state and ETA: STATUS_EVENTS reservations replayed, then the
    steady rate."""
    seats, by_state = _seats(row, {}, settings, now)
    planned = plan(
        now,
        _remaining(status),
        seats,
        relax_step=settings.pace_multiplier_step,
        history=history,
        max_events=STATUS_EVENTS,
        warmup=_warmup(settings),
        links_due=row.links_due,
    )
    since = _rate_since(now)
    return Planned(
        rate_per_hour=round(row.recent / ((now - since) / timedelta(hours=1)), 2),
        accounts=by_state,
        eta=planned.finish_at,
        limited_by=planned.limited_by,
    )


def _warmup(settings: Settings) -> Warmup:
    """The engine's warm-up cap (warmup.py), for the forecast's replay."""

    def cap(since: datetime | None, at: datetime, full: int) -> int:
        return warmup_cap(warmup_day(since, at, settings), full, settings)

    return cap


def _remaining(status: TaskStatusResponse) -> int:
    return sum(status.counts[name] for name in UNFINISHED_TARGETS)


def _task_of(row: ProgressRow) -> RunningTask | None:
    """The task as the engine reads it; None for stored settings it cannot use (the engine
    pauses such a task with the reason): nothing to plan with, never a 500."""
    task = TaskRow(
        id=row.id,
        user_id=row.user_id,
        platform=row.platform,
        task_type=row.task_type,
        target_group_id=row.target_group_id,
        message_template=row.message_template,
        priority=row.priority,
        settings=row.settings,
    )
    try:
        return RunningTask.from_row(task)
    except (msgspec.ValidationError, ValueError, TypeError):
        return None


def _seats(
    row: ProgressRow, listed: dict[str, int | None], settings: Settings, now: datetime
) -> tuple[list[Seat], dict[str, int]]:
    """The task's accounts as the forecast sees them, and how many are in each state.

    ``listed``: accounts the provider would give a task not started yet (id → its daily limit),
    fresh when the engine has never used them. The platform's figures are the published ones
    (the strategy's are the same for Telegram; another platform is held to the service's).
    """
    task = _task_of(row)
    if task is None:
        return [], {}
    published = TELEGRAM_DEFAULTS if task.platform == "telegram" else None
    platform = published or RateLimits(
        settings.daily_quota, settings.daily_quota_with_link, settings.min_pause_seconds
    )
    known = zip(
        row.a_id or (),
        row.a_task_status or (),
        row.a_status or (),
        row.a_reason or (),
        row.a_cooldown or (),
        row.a_task_cooldown or (),
        row.a_window or (),
        row.a_count or (),
        row.a_limit or (),
        row.a_last or (),
        row.a_multiplier or (),
        row.a_warmup or (),
        strict=True,
    )
    seats: list[Seat] = []
    by_state: dict[str, int] = {}
    computed: dict[int | None, Limits | None] = {}  # accounts share a few limits: one each

    linked: dict[int | None, Limits | None] = {}

    def limits_for(account_limit: int | None) -> Limits | None:
        if account_limit not in computed:
            computed[account_limit] = task.limits(settings, platform, account_limit)
        return computed[account_limit]

    def link_limits_for(account_limit: int | None) -> Limits | None:
        """A one-use link's message's limits, in a task offering them (the link quota)."""
        if not task.offers_link:
            return None
        if account_limit not in linked:
            linked[account_limit] = task.limits(settings, platform, account_limit, link=True)
        return linked[account_limit]

    for (
        account_id,
        in_task,
        status,
        reason,
        cooldown,
        task_cooldown,
        window,
        count,
        limit,
        last,
        mult,
        since,
    ) in known:
        cooldowns = [c for c in (cooldown, task_cooldown) if c is not None]
        bucket = Bucket(window, count, last, max(cooldowns) if cooldowns else None, mult)
        own = [c for c in (limit, listed.get(account_id)) if c is not None]
        usable = in_task not in ("excluded", "blocked") and status not in ("blocked", "disabled")
        lowest = min(own) if own else None
        limits = limits_for(lowest) if usable else None
        seats.append(Seat(account_id, bucket, limits, since, link_limits_for(lowest)))
        warming = warmup_day(since, now, settings) is not None
        state = _state(in_task, status, reason, bucket, limits, now, warming)
        by_state[state] = by_state.get(state, 0) + 1
    for account_id in listed.keys() - set(row.a_id or ()):
        limits = limits_for(listed[account_id])
        # its warm-up starts when first used
        seats.append(Seat(account_id, Bucket(), limits, now, link_limits_for(listed[account_id])))
        fresh = "warming_up" if warmup_day(now, now, settings) is not None else "active"
        state = fresh if limits is not None else "excluded"
        by_state[state] = by_state.get(state, 0) + 1
    return seats, by_state


def _state(
    in_task: str | None,
    status: str,
    reason: str | None,
    bucket: Bucket,
    limits: Limits | None,
    now: datetime,
    warming: bool = False,
) -> str:
    """An account's state as the customer reads it: active (may act now), pacing (waiting for
    its pause, its pacing, its send window or tomorrow's quota), warming_up (held below the full
    quota by its warm-up, warmup.py), cooling_down (FloodWait), spam_flagged (PeerFlood),
    blocked, frozen, excluded (may not serve this task)."""
    said = (reason or "").casefold()
    if in_task == "excluded" or (limits is None and status not in ("blocked", "disabled")):
        return "excluded"
    if status in ("blocked", "disabled") or in_task == "blocked":
        return "frozen" if "frozen" in said else "blocked"
    if bucket.cooling(now):
        return "spam_flagged" if "peerflood" in said.replace(" ", "") else "cooling_down"
    assert limits is not None
    if warming:
        return "warming_up"
    return "pacing" if bucket.next_allowed(now, limits) > now else "active"
