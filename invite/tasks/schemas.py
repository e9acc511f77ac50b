"""The task API's request and response bodies (names as in the customer's brief)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from invite.tasks.states import TaskStatus
from invite.tasks.task_settings import NO_NUL, TaskSettings

if TYPE_CHECKING:
    from invite.tasks.rows import StoredTask

Platform = Literal["telegram", "instagram", "whatsapp"]
TaskType = Literal["invite_to_group", "send_messages"]
# HIGH=1, NORMAL=2, LOW=3; either form is accepted, responses use the number
PriorityIn = Literal[1, 2, 3, "HIGH", "NORMAL", "LOW"]
PRIORITY_NAMES = {"HIGH": 1, "NORMAL": 2, "LOW": 3}
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
Description = Annotated[str, msgspec.Meta(max_length=10_000, pattern=NO_NUL)]
GroupId = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]
Template = Annotated[
    str, msgspec.Meta(min_length=1, max_length=4096, pattern=NO_NUL)
]  # Telegram's message limit
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
TARGET_STATUSES = ("pending", "in_flight", "succeeded", "skipped", "failed", "uncertain", "cancelled")
UNFINISHED_TARGETS = frozenset({"pending", "in_flight"})


def priority_number(value: int | str) -> int:
    return PRIORITY_NAMES[value] if isinstance(value, str) else value


class InviteTaskCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    platform: Platform
    task_type: TaskType
    title: Title
    description: Description | None = None
    target_group_id: GroupId | None = None  # required for invite_to_group
    message_template: Template | None = None  # required for send_messages: {username}, {first_name}, ...
    priority: PriorityIn = 2
    scheduled_at: AwareDatetime | None = None  # None: start runs it now
    settings: TaskSettings = msgspec.field(default_factory=TaskSettings)


class InviteTaskUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Fields to change; a field left out keeps its value, ``null`` clears an optional one."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    target_group_id: GroupId | UnsetType | None = UNSET
    message_template: Template | UnsetType | None = UNSET
    priority: PriorityIn | UnsetType = UNSET
    scheduled_at: AwareDatetime | UnsetType | None = UNSET
    settings: TaskSettings | UnsetType = UNSET


class InviteTaskResponse(msgspec.Struct, kw_only=True):
    id: str
    platform: Platform
    task_type: TaskType
    title: str
    description: str | None
    target_group_id: str | None
    message_template: str | None
    priority: int
    status: TaskStatus
    status_reason: str | None
    driver: str  # "sandbox" (the Telegram simulator) or "telegram"
    progress: dict[str, Any]
    settings: TaskSettings
    created_at: datetime
    updated_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: StoredTask) -> InviteTaskResponse:
        return cls(
            id=str(row.id),
            platform=row.platform,
            task_type=row.task_type,
            title=row.title,
            description=row.description,
            target_group_id=row.target_group_id,
            message_template=row.message_template,
            priority=row.priority,
            status=TaskStatus(row.status),
            status_reason=row.status_reason,
            driver=row.driver,
            progress=row.progress,
            settings=msgspec.convert(row.settings, TaskSettings),
            created_at=row.created_at,
            updated_at=row.updated_at,
            scheduled_at=row.scheduled_at,
            started_at=row.started_at,
            completed_at=row.completed_at,
        )


class TaskListResponse(msgspec.Struct, kw_only=True):
    items: list[InviteTaskResponse]
    next_cursor: str | None  # pass as ``cursor`` for the next (older) page; None on the last page


class TaskStatusResponse(msgspec.Struct, kw_only=True):
    task_id: str
    status: TaskStatus
    status_reason: str | None
    driver: str
    total: int  # targets in the task
    processed: int  # targets with a final outcome
    percent_done: float
    counts: dict[str, int]  # targets by state, every state present
