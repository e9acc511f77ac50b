"""What the statements of sql/queries/replies.sql take and return (columns in field order)."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec


class Watched(msgspec.Struct, frozen=True):
    """A held account worth a poll, and where its first read begins."""

    account_id: str
    since: datetime


class Unheld(msgspec.Struct, frozen=True):
    """An account worth a poll that no replica holds: its tenant, and where its first read begins."""

    account_id: str
    user_id: str
    since: datetime


class Borrowed(msgspec.Struct, frozen=True):
    """A short lease taken for a read, and the lease as it was before (put back after)."""

    id: str
    user_id: str
    previous_owner: str | None
    previous_expires_at: datetime | None


class ReplySeen(msgspec.Struct, frozen=True):
    """A reply as the statements match it: who (every key the platform named), and when. No text."""

    keys: list[str]
    at: datetime


class MarkedReply(msgspec.Struct, frozen=True):
    id: uuid.UUID
    task_id: uuid.UUID


class OptedOut(msgspec.Struct, frozen=True):
    """A target whose person asked to stop: their tenant, their key and the keys their replies named."""

    id: uuid.UUID
    task_id: uuid.UUID
    user_id: str
    identifier_key: str
    keys: list[str]


class OptOutWindow(msgspec.Struct, frozen=True):
    reached: int  # people the task's messages reached (delivered, or refused by a block)
    blocked: int
    opt_outs: int  # replies asking to stop
