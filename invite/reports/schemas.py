"""Response bodies of the reporting endpoints: stats, the final report, the log, retry-failed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from invite.tasks.schemas import InviteTaskResponse, TaskStatusResponse
from invite.tasks.states import TaskStatus


class ReplyStats(msgspec.Struct, kw_only=True):
    """What the people a message task reached answered (all zero for an invite task)."""

    reached: int  # people its messages reached: delivered, or refused because they blocked the account
    replied: int  # ... who wrote back (the time is on their target, never the text)
    opted_out: int  # ... who wrote back asking not to be written to again (suppressed)
    blocked: int  # ... who had blocked the account (suppressed)
    reply_rate: float  # replied / reached, 0..1
    opt_out_rate: float  # opted_out / reached
    block_rate: float  # blocked / reached


class LinkStats(msgspec.Struct, kw_only=True):
    """One-use invite links (an invite task's settings.privacy_fallback; all zero otherwise)."""

    offered: int  # people an invite could not add for privacy, offered a link
    sent: int  # ... whose message with the link went out
    joined: int  # ... who came in through it
    expired: int  # ... whose link ran out unused (revoked)
    join_rate: float  # joined / sent, 0..1


class AccountStats(msgspec.Struct, kw_only=True):
    account_id: str
    state: str | None  # in this task: active, cooldown, blocked, excluded (None: never assigned)
    state_reason: str | None
    cooldown_until: datetime | None
    actions: int  # execution log entries of this account in this task
    by_status: dict[str, int]
    by_outcome: dict[str, int]
    first_action_at: datetime | None
    last_action_at: datetime | None
    replies: ReplyStats  # of the people this account messaged in the task


class HourStats(msgspec.Struct, kw_only=True):
    hour: datetime  # start of the UTC hour
    actions: int
    by_status: dict[str, int]
    by_outcome: dict[str, int]


class TaskStatsResponse(msgspec.Struct, kw_only=True):
    task_id: str
    status: TaskStatus
    driver: str
    targets: dict[str, int]  # targets by state, every state present
    actions: int  # execution log entries (attempts), all accounts
    by_action: dict[str, int]
    by_outcome: dict[str, int]  # attempts by the platform's answer (success, flood_wait, ...)
    by_account: list[AccountStats]
    by_hour: list[HourStats]  # hours with activity, oldest first, within [since, until)
    replies: ReplyStats  # all accounts
    links: LinkStats  # all accounts


class TargetTotals(msgspec.Struct, kw_only=True):
    total: int
    processed: int  # in a final state
    succeeded: int
    success_rate: float  # succeeded / processed, 0..1
    by_status: dict[str, int]


class TaskReport(msgspec.Struct, kw_only=True):
    task: InviteTaskResponse
    final: bool  # the task is finished (completed, cancelled, failed): the numbers won't change
    generated_at: datetime
    duration_seconds: float | None  # from start to completion (or to now while unfinished)
    targets: TargetTotals
    actions: int
    by_outcome: dict[str, int]
    by_account: list[AccountStats]
    links: LinkStats


class LogEntry(msgspec.Struct, kw_only=True):
    id: str
    created_at: datetime
    target_id: str | None
    user_identifier: str | None
    account_id: str
    action: str
    status: str
    details: dict[str, Any]


class LogPage(msgspec.Struct, kw_only=True):
    items: list[LogEntry]
    next_cursor: str | None  # pass as ``cursor`` for the next (older) page; None on the last page


class RetryFailedResponse(msgspec.Struct, kw_only=True):
    task_id: str
    requeued: int  # targets put back in the queue
    skipped_suppressed: int  # failed people left out because the tenant suppressed them since
    status: TaskStatus  # the task's status afterwards
    reopened: bool  # a finished task went back to running


class TaskProgress(TaskStatusResponse, kw_only=True):
    """/status: the counts, and how fast the task goes and when it will be done."""

    rate_per_hour: float  # actions an hour since the start of the previous whole UTC hour
    accounts: dict[str, int]  # the task's accounts by state (ACCOUNT_STATES), only states present
    eta: datetime | None  # when everyone still pending will have been reached; None: no account can act
    limited_by: list[str]  # what holds the pace: accounts, quota, pause, send_window, cooldown


class TaskForecast(msgspec.Struct, kw_only=True):
    """Before start or while running: how long the rest takes with the accounts the task uses."""

    task_id: str
    status: TaskStatus
    generated_at: datetime
    remaining: int  # people still to reach
    accounts: int  # accounts that can act for the task
    accounts_by_state: dict[str, int]
    people_per_day: int  # at the accounts' steady pace
    days: float | None  # from now to the finish; None: no account can act
    finish_at: datetime | None
    limited_by: list[str]  # accounts, quota, pause, send_window, cooldown
