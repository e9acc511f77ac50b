"""What the suppression endpoints take and give back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from invite.audience.schemas import Columns, RejectedRow
from invite.tasks.task_settings import NO_NUL

MAX_IDENTIFIERS = 10_000


class SuppressionsAdd(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    identifiers: Annotated[
        list[str],
        msgspec.Meta(
            min_length=1,
            max_length=MAX_IDENTIFIERS,
            description="Usernames (@name, t.me/name), user ids or phones, normalised as in an import.",
        ),
    ]
    reason: Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)] | None = None


class Suppression(msgspec.Struct, frozen=True):
    identifier: str  # as given, normalised: username, user id or E.164 phone
    key: str  # u:<username lower>, id:<n> or p:<E.164>: what imports and targets are matched on
    reason: str | None
    created_at: datetime


class SuppressionPage(msgspec.Struct, frozen=True):
    items: list[Suppression]
    next_cursor: str | None  # pass as ?cursor= for the next page; null on the last one


class SuppressionResult(msgspec.Struct, frozen=True, kw_only=True):
    received: int  # identifiers sent, or data rows of the file
    added: int  # entries created: a row with a username and a user id suppresses both
    already: int  # entries that were on the list already
    rejected: int  # identifiers or rows that name nobody valid
    rejected_rows: list[RejectedRow]  # the first 100, in order (row: position in the list or file row)
    targets_skipped: int  # pending targets of the tenant's tasks now skipped as suppressed
    columns: Columns | None = None  # for a file: the columns read
