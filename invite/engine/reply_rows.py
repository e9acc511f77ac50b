"""What the statements of sql/queries/replies.sql take and return (columns in field order)."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec


class Watched(msgspec.Struct, frozen=True):
    """A held account worth a poll, and where its first read begins."""

    account_id: str
    since: datetime


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
