"""The rows of the test-invite statements (sql/queries/trials.sql), as the repository reads them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from invite.engine.statuses import TargetStatus, TrialStatus


class WaitingTrial(msgspec.Struct, frozen=True):
    """A trial waiting for an account this replica holds or may lease, with its task's row."""

    trial_id: uuid.UUID
    account_id: str
    expires_at: datetime
    channel_invites: int  # the account's invites into the task's channel so far
    # the task, as leases.running_tasks reads a running one (repository.TaskRow)
    id: uuid.UUID
    user_id: str
    platform: str
    task_type: str
    target_group_id: str | None
    message_template: str | None
    priority: int
    settings: dict[str, Any] | None


class TrialClaim(msgspec.Struct, frozen=True):
    """What the trial's claim decided: refused (the rule's name), or the target it put in flight."""

    refused: str | None
    id: uuid.UUID | None
    identifier_key: str | None
    user_data: dict[str, Any] | None
    attempts: int | None
    notified: int


class TrialState(msgspec.Struct, frozen=True):
    """A trial as its requester sees it: its state, and what the action it claimed did."""

    id: uuid.UUID
    task_id: uuid.UUID
    target_id: uuid.UUID
    account_id: str
    state: TrialStatus
    outcome: str | None  # refused: the rule that said no
    detail: str | None
    retry_at: datetime | None
    expires_at: datetime
    target_status: TargetStatus
    target_outcome: str | None
    target_error: str | None
    logged: str | None  # the execution log's status of the claimed attempt (the platform's answer)
    logged_details: dict[str, Any] | None


class TrialId(msgspec.Struct, frozen=True):
    id: uuid.UUID | None


class TrialRequested(msgspec.Struct, frozen=True):
    id: uuid.UUID | None  # None: a trial was open on the target already
    notified: int


class TargetTask(msgspec.Struct, frozen=True):
    task_id: uuid.UUID


class Notified(msgspec.Struct, frozen=True):
    notified: int
