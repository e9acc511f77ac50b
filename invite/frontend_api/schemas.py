"""What the Mailing page sends and reads, in its own names and words (FRONTEND-CALLS.md).

Request bodies accept fields they do not name (the page's own settings, a newer page's
fields): the service keeps those in the task's settings and gives them back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from invite.tasks.schemas import Description, GroupId, Platform, Template, Title
from invite.tasks.task_settings import AccountId

PageStatus = Literal["pending", "running", "paused", "completed", "failed", "cancelled"]
PriorityWord = Literal["low", "normal", "high", "urgent"]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=86_400)]
PerDay = Annotated[int, msgspec.Meta(ge=1, le=100_000)]


class PageSettings(msgspec.Struct, kw_only=True):
    """The keys of the page's ``settings`` that mean something here; the rest are kept as sent."""

    group_id: GroupId | None = None  # set: an invite task into this group
    invite_type: str | None = None  # "group_invite" or "message"
    allowed_account_ids: list[AccountId] | None = None  # the accounts check-admin-rights found ready
    delay_between_invites: Seconds | None = None


class PageTaskCreate(msgspec.Struct, kw_only=True):
    name: Title
    description: Description | None = None
    platform: Platform = "telegram"
    priority: PriorityWord = "normal"
    delay_between_invites: Seconds | None = None  # → the pause between actions (never below ours)
    max_invites_per_account: PerDay | None = None  # → the per-account daily limit (never above ours)
    invite_message: Template | None = None  # the template of a message task
    target_group_id: GroupId | None = None  # what settings.group_id says, if the page ever sends it here
    settings: PageSettings = msgspec.field(default_factory=PageSettings)


class PageTaskUpdate(msgspec.Struct, kw_only=True):
    """Fields to change; a field left out keeps its value."""

    name: Title | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    priority: PriorityWord | UnsetType = UNSET
    delay_between_invites: Seconds | UnsetType | None = UNSET
    max_invites_per_account: PerDay | UnsetType | None = UNSET
    invite_message: Template | UnsetType | None = UNSET
    target_group_id: GroupId | UnsetType = UNSET
    settings: PageSettings | UnsetType = UNSET


class PageTask(msgspec.Struct, kw_only=True):
    id: str
    title: str
    name: str  # the old backend's name for the title
    description: str | None
    platform: str
    task_type: str
    status: PageStatus
    priority: Literal["low", "normal", "high"]
    progress_percentage: float
    target_count: int
    completed_count: int  # targets invited (or messaged)
    failed_count: int  # targets finished otherwise
    target_group_id: str | None
    invite_message: str | None
    delay_between_invites: float | None
    max_invites_per_account: int | None
    settings: dict[str, Any]
    error_message: str | None  # why the task is paused or failed
    driver: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class PageTaskList(msgspec.Struct, kw_only=True):
    items: list[PageTask]
    total: int
    page: int
    page_size: int
    total_pages: int
    has_next: bool
    has_prev: bool


class Execution(msgspec.Struct, kw_only=True, omit_defaults=True):
    message: str
    task_id: str
    status: PageStatus
    started_at: datetime | None = None


class Targets(msgspec.Struct, kw_only=True):
    total: int
    pending: int  # not yet acted on (queued or in flight)
    invited: int  # succeeded
    failed: int  # failed, skipped (privacy, not found, ...) or uncertain
    cancelled: int


class Timing(msgspec.Struct, kw_only=True):
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    execution_time_seconds: float | None
    estimated_completion_at: datetime | None  # our /status's ETA; None: finished, or no account can act yet


class PageTaskStatus(msgspec.Struct, kw_only=True):
    task_id: str
    status: PageStatus
    progress_percentage: float
    targets: Targets
    counts: dict[str, int]  # targets by our states, every state present
    timing: Timing
    settings: dict[str, Any]
    error_message: str | None
    driver: str


class LogEntry(msgspec.Struct, kw_only=True):
    id: str
    task_id: str
    target_id: str | None
    account_id: str
    action_type: Literal["INVITE_SUCCESSFUL", "INVITE_FAILED", "ERROR_OCCURRED"]
    action: str  # ours: invite_to_group, send_message, check_invite_right
    status: str  # ours: the platform's answer (success, privacy_restricted, flood_wait, ...)
    message: str
    created_at: datetime
    details: dict[str, Any]  # ours, plus result_status and target_username


class PageAccount(msgspec.Struct, kw_only=True):
    account_id: str
    platform: str
    username: str  # @username, a name, or a masked phone
    status: str  # active, flood_wait, blocked, disabled (the platform's words)
    account_status: str  # the same
    status_reason: str | None
    available: bool  # listed by the accounts provider now
    daily_invite_limit: int
    daily_invites_used: int
    flood_wait_until: datetime | None
    blocked_until: datetime | None
    # ours, besides what the page reads (GET /accounts's health): healthy, pacing, cooling_down,
    # spam_flagged, frozen, dead, warming_up
    health: str = "healthy"
    health_until: datetime | None = None  # cooling_down, spam_flagged: when the rest is over
    warmup_day: int | None = None  # warming_up: day N ...
    warmup_days: int | None = None  # ... of M


class TaskAccount(PageAccount, kw_only=True):
    task_state: str | None  # in this task: active, cooldown, blocked, excluded (None: not assigned yet)
    task_state_reason: str | None
    actions: int  # this account's entries in the task's execution log


class AccountAggregates(msgspec.Struct, kw_only=True):
    daily_limit_total: int
    used_today: int
    remaining_today: int
    in_cooldown: int
    blocked: int


class TaskAccounts(msgspec.Struct, kw_only=True):
    task_id: str
    platform: str
    total_accounts: int
    active_accounts: int
    available_now: int  # active, listed, with quota left today
    accounts: list[TaskAccount]
    aggregates: AccountAggregates


class AdminCheckRequest(msgspec.Struct, kw_only=True):
    group_link: GroupId  # @group, https://t.me/group or a numeric id


class CheckedAccount(PageAccount, kw_only=True):
    reason: str | None  # why it cannot invite there (None: it can)


class AdminCheck(msgspec.Struct, kw_only=True):
    group_link: str
    group_name: str
    ready_accounts: list[CheckedAccount]
    unavailable_accounts: list[CheckedAccount]
    can_proceed: bool  # at least one account may invite there
    estimated_capacity: int  # actions the ready accounts have left today


class ParsingTask(msgspec.Struct, kw_only=True):
    id: str
    platform: str
    status: str
    result_count: int
    created_at: str | None
    link: str
    title: str


class ParsingImportRequest(msgspec.Struct, kw_only=True):
    parsing_task_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    source_name: Annotated[str, msgspec.Meta(max_length=255)] | None = None


class PageImport(msgspec.Struct, kw_only=True):
    message: str
    imported_count: int
    rejected_count: int
    total_rows: int
    import_id: str | None
    task_id: str
    source_name: str | None
    rejected_by_reason: dict[str, int]  # invalid, duplicates, suppressed, ... (zeros left out)


class TrialRequest(msgspec.Struct, kw_only=True):
    """test-invite's two fields, when a page sends them as a JSON body instead of the query."""

    target_id: str | None = None
    account_id: str | None = None


class InviteTrial(msgspec.Struct, kw_only=True):
    """A test invite's answer: what the one action did (200), or that it is still under way (202)."""

    message: str  # what the page shows
    success: bool  # the person was invited (or messaged)
    trial_id: str
    task_id: str
    target_id: str
    account_id: str
    state: Literal["waiting", "taken", "done"]  # waiting, taken: not answered yet (202)
    status: str  # the target's status now: succeeded, skipped, failed, pending, uncertain, in_flight
    outcome: str | None  # the platform's answer: success, already_member, privacy_restricted, ...
    result_status: str | None  # the same in capitals, as the page's log entries say
    detail: str


class Components(msgspec.Struct, kw_only=True):
    database: str  # healthy, unhealthy
    vault: str  # healthy, unhealthy, not_configured


class DetailedHealth(msgspec.Struct, kw_only=True):
    status: str  # healthy, degraded
    service: str
    components: Components
