"""The rows of the link watcher's statements (sql/queries/links.sql), as the repository hands
them over and takes them."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec


class SavedLink(msgspec.Struct, frozen=True):
    """The link made for a target before."""

    url: str
    expires_at: datetime
    account_id: str


class OpenLink(msgspec.Struct, frozen=True):
    """A link neither used nor revoked: whose it is, into which group, until when."""

    target_id: uuid.UUID
    account_id: str
    group_id: str
    url: str
    expires_at: datetime


class Joined(msgspec.Struct, frozen=True):
    """A person who came in through the link of ``target_id``, at ``at`` (mark_joined's rows)."""

    target_id: uuid.UUID
    at: datetime


class LinkTarget(msgspec.Struct, frozen=True):
    """A target the watcher settled."""

    id: uuid.UUID
    task_id: uuid.UUID
