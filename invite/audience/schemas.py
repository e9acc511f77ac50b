"""What the import endpoints take and give back."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from invite.reports.schemas import TaskForecast


class Role(StrEnum):
    """What a column holds: the names a mapping takes and ``Columns`` gives back."""

    USERNAME = "username"
    USER_ID = "user_id"
    PHONE = "phone"
    IDENTIFIER = "identifier"  # a lone column of usernames, ids and phones, told apart by value
    FIRST_NAME = "first_name"
    LAST_NAME = "last_name"
    FULL_NAME = "full_name"
    IS_BOT = "is_bot"
    USER_TYPE = "user_type"


IDENTIFYING = frozenset({Role.USERNAME, Role.USER_ID, Role.PHONE, Role.IDENTIFIER})

Code = Literal[
    "invalid", "no_identifier", "bot", "channel", "duplicate", "suppressed", "already_in_task", "over_limit"
]


class ParsingImport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    task_id: Annotated[UUID, msgspec.Meta(description="The Invite Service task the people go into.")]
    parsing_task_id: Annotated[
        str, msgspec.Meta(description="The Parsing Service task whose results to import (a uuid).")
    ]


class RejectedRow(msgspec.Struct, frozen=True):
    """A row that was (or would be) left out, and why."""

    row: Annotated[
        int,
        msgspec.Meta(
            description="Row in the file as a spreadsheet shows it (CSV: the record's line; "
            "JSON and parsing results: the position in the list), counting from 1."
        ),
    ]
    code: Code
    reason: str
    value: str | None = None  # the identifier as written, cut to 100 characters


class Counts(msgspec.Struct, frozen=True):
    rows: int  # data rows read (blank rows and the header not counted)
    imported: int  # written (or, in a dry run, that would be written)
    rejected: int  # every row not imported, the sum of the counts below
    invalid: int
    no_identifier: int
    bots: int
    channels: int  # rows describing the parsed channel itself (the Parsing Service's metadata row)
    duplicates: int  # the same person earlier in the file
    suppressed: int  # on the tenant's suppression list
    already_in_task: int
    over_limit: int  # past the task's target limit: reported, not silently dropped


class GuessedColumn(msgspec.Struct, frozen=True):
    """A column whose role no header alias named: found by a word in its header or by what
    it holds. Check it, or pass a mapping."""

    role: Role
    column: str  # as named in the file (``column N`` when the file has no header)
    reason: str  # e.g. "header 'Ник в Telegram' contains 'ник'; 58 of 60 values are usernames"


class Columns(msgspec.Struct, frozen=True, omit_defaults=True):
    """The columns used, as named in the file (``column N`` when the file has no header)."""

    header_row: int | None = None
    username: str | None = None
    user_id: str | None = None
    phone: str | None = None
    identifier: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    full_name: str | None = None
    is_bot: str | None = None
    user_type: str | None = None
    guessed: list[GuessedColumn] = msgspec.field(default_factory=list)  # the dry run shows what to check


class Source(msgspec.Struct, frozen=True, omit_defaults=True):
    kind: Literal["file", "parsing", "legacy"]
    name: str | None = None  # the file's name or the parsing task id
    format: str = ""
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None


class PreviewTarget(msgspec.Struct, frozen=True):
    row: int
    kind: str
    value: str
    key: str
    data: dict[str, Any]


class ImportResult(msgspec.Struct, frozen=True, kw_only=True):
    import_id: UUID | None  # null for a dry run; page the rejected rows at GET /imports/{id}
    task_id: UUID | None
    dry_run: bool
    source: Source
    columns: Columns
    counts: Counts
    target_limit: int  # the task's limit of targets
    targets_before: int  # targets the task held before
    rejected_rows: list[RejectedRow]  # one page, in row order
    rejected_offset: int
    rejected_kept: int  # rejected rows kept for paging (the first N of counts.rejected)
    preview: list[PreviewTarget] = msgspec.field(default_factory=list)  # dry runs: the first targets
    # a dry run into a task: when the task would be done with these people added
    forecast: TaskForecast | None = None
