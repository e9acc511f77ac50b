"""The Parsing Service port: what an import asks of it, and the shapes of its answers.

The adapter (``invite.integrations.parsing``) implements ``ParsingSource``; the audience
import and the Mailing page's routes see only this.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import msgspec


class InvalidTaskId(ValueError):
    """The parsing task id is not a uuid (the caller answers 422 on ``task_id``)."""


class TooManyResults(Exception):
    """The task holds more results than the caller allows; nothing was kept."""

    def __init__(self, total: int, limit: int) -> None:
        super().__init__(f"the parsing task holds {total} results, more than the limit of {limit}")
        self.total = total
        self.limit = limit


class PlatformData(msgspec.Struct, frozen=True):
    """``platform_specific_data`` of a Telegram result; every field may be absent."""

    user_id: int | str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    is_bot: bool | None = None
    is_verified: bool | None = None
    is_premium: bool | None = None
    user_type: str | None = None
    phone: str | None = None
    language_code: str | None = None
    chat_id: int | str | None = None
    chat_title: str | None = None


class ParsingResult(msgspec.Struct, frozen=True):
    """One person a parsing task found. Unknown fields of the service are ignored."""

    id: str | int
    task_id: str | int | None = None
    platform: str | None = None
    platform_id: str | int | None = None  # the Telegram user id, as a string today
    username: str | None = None
    display_name: str | None = None
    author_phone: str | None = None
    created_at: str | None = None
    platform_specific_data: PlatformData | None = None


class ParsingTaskSummary(msgspec.Struct, frozen=True):
    """One of a tenant's parsing tasks as ``GET /results/grouped`` lists it."""

    task_id: str | int
    platform: str | None = None
    target_url: str | None = None  # the channel or group it parsed
    title: str | None = None
    status: str | None = None
    total_results: int = 0
    created_at: str | None = None


def parse_task_id(task_id: str) -> str:
    """The canonical form of a parsing task id; InvalidTaskId when it is not a uuid."""
    try:
        return str(uuid.UUID(task_id))
    except (ValueError, AttributeError, TypeError):
        raise InvalidTaskId("task_id must be a uuid") from None


class ParsingSource(Protocol):
    """The people a tenant's parsing tasks found, all or nothing."""

    async def fetch_results(
        self, task_id: str, user_id: str, *, max_results: int | None = None
    ) -> list[ParsingResult]:
        """Every result of ``task_id`` visible to tenant ``user_id``, deduplicated by id; an empty
        list for an unknown or foreign task. Raises InvalidTaskId for a task id that is not a
        uuid, TooManyResults past ``max_results``, and UpstreamError when the service fails."""
        ...

    async def tasks(self, user_id: str) -> list[ParsingTaskSummary]:
        """Tenant ``user_id``'s parsing tasks, newest first; UpstreamError when the service fails."""
        ...
