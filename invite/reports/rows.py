"""The rows of sql/queries/reports.sql (and forecast.sql), as the statements return them:
columns in field order. Parallel arrays are None when the task has none of that kind."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from invite.tasks.rows import TaskCounts


class StatsRow(TaskCounts, frozen=True):
    """reports.stats: the task's counters, then its per-account rollup, its accounts' state in
    it, its per-hour rollup and its reply counters per account."""

    r_account: list[str] | None
    r_action: list[str] | None
    r_status: list[str] | None
    r_outcome: list[str] | None
    r_n: list[int] | None
    r_first: list[datetime] | None
    r_last: list[datetime] | None
    a_account: list[str] | None
    a_state: list[str] | None
    a_reason: list[str | None] | None
    a_cooldown: list[datetime | None] | None
    h_hour: list[datetime] | None
    h_status: list[str] | None
    h_outcome: list[str] | None
    h_n: list[int] | None
    p_account: list[str] | None
    p_replies: list[int] | None
    p_opt_outs: list[int] | None


class ProgressRow(TaskCounts, frozen=True):
    """reports.progress: the task's counters, the fields its limits come from, the actions
    logged, and the quota state of its accounts (``a_task_status`` None: not attached)."""

    id: uuid.UUID
    user_id: str
    platform: str
    task_type: str
    target_group_id: str | None
    message_template: str | None
    priority: int
    settings: dict[str, Any] | None
    recent: int
    actions: int
    floods: int
    link_actions: int  # messages carrying a one-use invite link (not FloodWaits)
    offered: int  # invites whose person was offered such a link
    invites: int  # invites answered (not FloodWaits)
    refused: int  # ... refused for the person's privacy
    links_due: int  # people waiting for their link's message
    a_id: list[str] | None
    a_task_status: list[str | None] | None
    a_status: list[str] | None
    a_reason: list[str | None] | None
    a_cooldown: list[datetime | None] | None
    a_task_cooldown: list[datetime | None] | None
    a_window: list[datetime | None] | None
    a_count: list[int] | None
    a_limit: list[int | None] | None
    a_last: list[datetime | None] | None
    a_multiplier: list[float] | None
    a_warmup: list[datetime | None] | None  # each account's clean history's start (warm-up)


class ExportRow(msgspec.Struct, frozen=True):
    """reports.export_page: one target of the export."""

    seq: int
    user_identifier: str
    status: str
    outcome: str | None
    account_id: str | None
    attempts: int
    processed_at: datetime | None
    error_message: str | None
    username: str | None
    first_name: str | None
    last_name: str | None
    replied_at: datetime | None  # their first reply (the text is never stored)
    opted_out_at: datetime | None  # their reply asking to stop
    link_state: str | None  # their one-use invite link: None, due, sent, joined, expired


class LogRow(msgspec.Struct, frozen=True):
    """reports.logs_page, reports.logs_page_by_account: one entry of the execution log."""

    id: uuid.UUID
    created_at: datetime
    target_id: uuid.UUID | None
    account_id: str
    action: str
    status: str
    details: dict[str, Any]
    user_identifier: str | None


class Requeued(msgspec.Struct, frozen=True):
    """reports.requeue_failed: targets put back in the queue, and those left failed as suppressed."""

    requeued: int
    suppressed: int


class TenantHistory(msgspec.Struct, frozen=True):
    """forecast.tenant_history: what the tenant's other tasks of the kind met."""

    actions: int
    floods: int
    flood_seconds: float | None
    invites: int  # invites answered (not FloodWaits)
    refused: int  # ... refused for the person's privacy
