"""The rows of sql/queries/tasks.sql, as the statements return them (columns in field order)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from invite.tasks.schemas import Platform, TaskType


class StoredTask(msgspec.Struct, frozen=True):
    """A task as the API reads it: every statement of tasks.sql that returns a task, and
    reports.reopen, selects these columns in this order."""

    id: uuid.UUID
    platform: Platform  # the columns' CHECKs are these Literals
    task_type: TaskType
    title: str
    description: str | None
    target_group_id: str | None
    message_template: str | None
    priority: int
    status: str
    status_reason: str | None
    driver: str
    progress: dict[str, Any]
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None


class TaskCounts(msgspec.Struct, frozen=True):
    """A task's state and its trigger-kept counters as two parallel arrays (None before it has a
    target): tasks.status_report, and the first columns of reports.stats and reports.progress."""

    status: str
    status_reason: str | None
    driver: str
    statuses: list[str] | None
    ns: list[int] | None


class TargetCount(msgspec.Struct, frozen=True):
    status: str
    n: int
