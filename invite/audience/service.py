"""The import pipeline: sheet → people → what goes into the task, written in one COPY.

``analyse`` (CPU, run in a worker thread) finds the columns and checks every row;
``run_import`` then, in one transaction, locks the task, leaves out the people the task
already has, the tenant's suppressed people and whoever is past the task's limit, and
COPYs the rest. Any error rolls everything back: an import is whole or nothing.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import polars as pl

from invite.audience.columns import Layout, Role, detect
from invite.audience.normalise import KEY_COLUMNS, people
from invite.audience.readers import Sheet
from invite.audience.schemas import (
    Columns,
    Counts,
    GuessedColumn,
    ImportResult,
    PreviewTarget,
    RejectedRow,
    Source,
)
from invite.kernel import audit
from invite.kernel.db import DbConnection
from invite.kernel.problems import Problem, conflict, not_found
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql
from invite.observability.metrics import import_rows, imports_total
from invite.tasks.states import EDITABLE, TaskStatus

PREVIEW_ROWS = 20
TARGET_COLUMNS = ["task_id", "user_identifier", "identifier_key", "user_data"]


class _Key(msgspec.Struct, frozen=True):
    key: str  # audience.task_keys, audience.suppressed_keys


class _StoredImport(msgspec.Struct, frozen=True):
    report: dict[str, Any]  # the ImportResult as it was, without its rows
    page: list[Any]  # the rejected rows asked for


@dataclass(frozen=True)
class Analysis:
    """Every data row of a sheet checked on its own and against the rows above it."""

    people: pl.DataFrame  # normalise.people's columns plus dup_of
    layout: Layout


def _non_blank(frame: pl.DataFrame) -> pl.Expr:
    if not frame.columns:
        return pl.lit(False)
    return pl.any_horizontal(pl.col(c).str.strip_chars().str.len_chars() > 0 for c in frame.columns)


def analyse(sheet: Sheet, mapping: Mapping[str, str | None] | None, region: str) -> Analysis:
    """Columns found, rows normalised, duplicates within the sheet marked; 422 when no rows."""
    if sheet.frame.height == 0:
        raise Problem(422, "Empty file", "there are no people in it", field="file", reason="empty")
    layout = detect(sheet.frame, named=sheet.named, region=region, mapping=mapping)
    data = (
        sheet.frame.slice(layout.data_start)
        .with_row_index("row", offset=layout.data_start + 1)
        .filter(_non_blank(sheet.frame))
    )
    if data.height == 0:
        reason = (
            "the file has a header row but no people under it" if layout.header_row else "no people in it"
        )
        raise Problem(422, "No rows", reason, field="file", reason=reason)
    checked = _channel_rows(
        people(data.with_columns(pl.col("row").cast(pl.Int64)), layout.columns, region), data, layout
    )
    ok = pl.col("code").is_null()
    # The earliest fine row sharing any of this row's keys: the same person named by
    # username in one row and by user id or phone in another is still one person.
    first = [pl.when(ok & pl.col(k).is_not_null()).then(pl.col("row")).min().over(k) for k in KEY_COLUMNS]
    return Analysis(checked.with_columns(pl.min_horizontal(first).alias("dup_of")), layout)


# The Parsing Service stores one row about the parsed channel beside its people, through its
# API and in its exports: platform_id "channel_<id>", display_name "Channel: <title>", and no
# author id (PLATFORM-AS-RUN.md). Its @username is the channel's, not a person's.
_CHANNEL_ID = r"(?i)^channel_"
_CHANNEL_NAME = "Channel: "
_PERSON_ID = r"^\d+$"


def _channel_rows(checked: pl.DataFrame, data: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    """``checked`` with the rows describing the channel itself rejected (code ``channel``)."""

    def column(role: Role) -> pl.Expr:
        name = layout.columns.get(role)
        return pl.col(name).cast(pl.String).str.strip_chars() if name is not None else pl.lit(None, pl.String)

    platform_id, name = column(Role.USER_ID), column(Role.FULL_NAME)
    channel = data.select(
        (
            platform_id.str.contains(_CHANNEL_ID).fill_null(False)
            | (
                name.str.starts_with(_CHANNEL_NAME).fill_null(False)
                & ~platform_id.str.contains(_PERSON_ID).fill_null(False)
            )
        ).alias("channel")
    ).get_column("channel")
    return checked.with_columns(
        pl.when(channel).then(pl.lit("channel")).otherwise(pl.col("code")).alias("code"),
        pl.when(channel)
        .then(pl.lit("describes the channel itself, not a person (the Parsing Service's channel row)"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
    )


def candidate_keys(analysis: Analysis) -> list[str]:
    fine = analysis.people.filter(pl.col("code").is_null())
    keys = pl.concat([fine.get_column(k).drop_nulls() for k in KEY_COLUMNS])
    return keys.unique().to_list()


def decide(
    analysis: Analysis, existing: set[str], suppressed: set[str], capacity: int, limit: int
) -> pl.DataFrame:
    """Each row's fate: ``code``/``reason`` null for the rows to write, in file order."""

    def any_key_in(keys: set[str]) -> pl.Expr:
        listed = pl.Series(list(keys), dtype=pl.String).implode()
        return pl.any_horizontal(pl.col(k).is_in(listed) for k in KEY_COLUMNS).fill_null(False)

    fine = pl.col("code").is_null()
    duplicate = fine & (pl.col("dup_of") < pl.col("row"))
    suppressed_row = fine & ~duplicate & any_key_in(suppressed)
    known = fine & ~duplicate & ~suppressed_row & any_key_in(existing)
    staged = analysis.people.with_columns(
        pl.when(duplicate)
        .then(pl.lit("duplicate"))
        .when(suppressed_row)
        .then(pl.lit("suppressed"))
        .when(known)
        .then(pl.lit("already_in_task"))
        .otherwise(pl.col("code"))
        .alias("code"),
        pl.when(duplicate)
        .then(pl.format("the same person as row {}", pl.col("dup_of")))
        .when(suppressed_row)
        .then(pl.lit("on your suppression list"))
        .when(known)
        .then(pl.lit("already in this task"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
    )
    over = pl.col("code").is_null() & (pl.col("code").is_null().cum_sum() > capacity)
    return staged.with_columns(
        pl.when(over).then(pl.lit("over_limit")).otherwise(pl.col("code")).alias("code"),
        pl.when(over)
        .then(pl.lit(f"over the task's limit of {limit} targets"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
    )


def _counts(decided: pl.DataFrame) -> Counts:
    by_code: dict[str | None, int] = {code: n for code, n in decided.group_by("code").len().iter_rows()}
    imported = by_code.pop(None, 0)
    return Counts(
        rows=decided.height,
        imported=imported,
        rejected=decided.height - imported,
        invalid=by_code.get("invalid", 0),
        no_identifier=by_code.get("no_identifier", 0),
        bots=by_code.get("bot", 0),
        channels=by_code.get("channel", 0),
        duplicates=by_code.get("duplicate", 0),
        suppressed=by_code.get("suppressed", 0),
        already_in_task=by_code.get("already_in_task", 0),
        over_limit=by_code.get("over_limit", 0),
    )


def rejected_rows(decided: pl.DataFrame, offset: int, limit: int) -> list[RejectedRow]:
    page = decided.filter(pl.col("code").is_not_null()).slice(offset, limit)
    return [
        RejectedRow(row=row, code=code, reason=reason, value=value)
        for row, code, reason, value in page.select("row", "code", "reason", "shown").iter_rows()
    ]


def _preview(decided: pl.DataFrame) -> list[PreviewTarget]:
    head = decided.filter(pl.col("code").is_null()).head(PREVIEW_ROWS)
    return [
        PreviewTarget(
            row, kind, value, key, {k: v for k, v in msgspec.json.decode(data).items() if v is not None}
        )
        for row, kind, value, key, data in head.select("row", "kind", "value", "key", "user_data").iter_rows()
    ]


def columns_of(layout: Layout) -> Columns:
    named = {role.value: label for role, label in layout.labels.items()}
    guessed = [GuessedColumn(role, layout.labels[role], why) for role, why in layout.guessed.items()]
    return msgspec.structs.replace(
        msgspec.convert({"header_row": layout.header_row, **named}, Columns), guessed=guessed
    )


async def _copy_targets(conn: DbConnection, task_id: UUID, decided: pl.DataFrame) -> None:
    # CSV COPY straight from polars: asyncpg's copy_records_to_table speaks binary COPY and
    # has no binary encoder for jsonb, while CSV lets PostgreSQL parse user_data itself.
    rows = decided.filter(pl.col("code").is_null()).select(
        pl.lit(str(task_id)).alias("task_id"), "value", "key", "user_data"
    )
    if rows.height:
        payload = rows.write_csv(include_header=False).encode()
        await conn.copy_to_table(
            "invite_targets", source=io.BytesIO(payload), columns=TARGET_COLUMNS, format="csv"
        )


def _ensure_editable(status: str | None) -> None:
    """``status``: the task's (audience.find_task, lock_task), None when it is not the tenant's."""
    if status is None:
        raise not_found("task")
    if TaskStatus(status) not in EDITABLE:
        raise conflict(
            f"people can be added to a task only while it is draft, scheduled or paused; this one is {status}"
        )


async def check_task(pool: asyncpg.Pool, settings: Settings, user_id: str, task_id: UUID) -> None:
    """404/409 before fetching anything from elsewhere; the import checks again under its lock."""
    _ensure_editable(
        await Sql(settings.sql_dir).fetchval(pool, "audience.find_task", task_id=task_id, user_id=user_id)
    )


@dataclass(frozen=True)
class ImportSource:
    sheet: Sheet
    source: Source
    mapping: Mapping[str, str | None] | None = None


async def run_import(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    user_id: str,
    task_id: UUID | None,
    what: ImportSource,
    dry_run: bool,
    rejected_offset: int = 0,
    rejected_limit: int = 100,
) -> ImportResult:
    """Import (or, with ``dry_run``, only describe importing) ``what`` into the tenant's task.

    404 for a task that is not the tenant's, 409 when the task can no longer be changed.
    A dry run may leave ``task_id`` out: it then checks the file alone, as for a new task.
    """
    analysis = await asyncio.to_thread(analyse, what.sheet, what.mapping, settings.phone_default_region)
    sql = Sql(settings.sql_dir)
    keys = candidate_keys(analysis)
    limit = settings.max_targets_per_task
    async with pool.acquire() as conn, conn.transaction():
        before, existing = 0, set[str]()
        if task_id is not None:
            _ensure_editable(
                await sql.fetchval(
                    conn,
                    "audience.find_task" if dry_run else "audience.lock_task",
                    task_id=task_id,
                    user_id=user_id,
                )
            )
            before = await sql.fetchval(conn, "audience.target_count", task_id=task_id)
            existing = {r.key for r in await sql.fetch(conn, "audience.task_keys", _Key, task_id=task_id)}
        if not dry_run:
            # Imports and suppression changes of a tenant take turns, so a person suppressed
            # while this import runs cannot slip in behind the check below.
            await sql.execute(conn, "suppressions.lock_tenant", user_id=user_id)
        suppressed = {
            r.key for r in await sql.fetch(conn, "audience.suppressed_keys", _Key, user_id=user_id, keys=keys)
        }
        decided = await asyncio.to_thread(
            decide, analysis, existing, suppressed, max(limit - before, 0), limit
        )
        counts = _counts(decided)
        result = ImportResult(
            import_id=None,
            task_id=task_id,
            dry_run=dry_run,
            source=what.source,
            columns=columns_of(analysis.layout),
            counts=counts,
            target_limit=limit,
            targets_before=before,
            rejected_rows=rejected_rows(decided, rejected_offset, rejected_limit),
            rejected_offset=rejected_offset,
            rejected_kept=min(counts.rejected, settings.import_rejected_kept),
            preview=_preview(decided) if dry_run else [],
        )
        if dry_run:
            return result
        assert task_id is not None
        await _copy_targets(conn, task_id, decided)
        import_id = await _record(conn, settings, user_id, task_id, result, decided)
    imports_total.labels(source=what.source.kind).inc()
    for code, n in msgspec.structs.asdict(counts).items():
        if code not in ("rows", "rejected") and n:
            import_rows.labels(outcome=code).inc(n)
    return msgspec.structs.replace(result, import_id=import_id)


async def _record(
    conn: DbConnection,
    settings: Settings,
    user_id: str,
    task_id: UUID,
    result: ImportResult,
    decided: pl.DataFrame,
) -> UUID:
    report = msgspec.to_builtins(msgspec.structs.replace(result, rejected_rows=[], preview=[]))
    kept = msgspec.to_builtins(rejected_rows(decided, 0, settings.import_rejected_kept))
    import_id: UUID = await Sql(settings.sql_dir).fetchval(
        conn,
        "audience.insert_import",
        user_id=user_id,
        task_id=task_id,
        source=result.source.kind,
        source_name=result.source.name,
        report=report,
        rejected=kept,
    )
    await audit.record(
        conn,
        settings.sql_dir,
        user_id=user_id,
        action="import",
        resource="task",
        resource_id=str(task_id),
        details={"import_id": str(import_id), "source": report["source"], "counts": report["counts"]},
    )
    return import_id


async def get_import(
    pool: asyncpg.Pool, settings: Settings, user_id: str, import_id: UUID, offset: int, limit: int
) -> ImportResult:
    row = await Sql(settings.sql_dir).fetchrow(
        pool,
        "audience.get_import",
        _StoredImport,
        import_id=import_id,
        user_id=user_id,
        offset=offset,
        limit=limit,
    )
    if row is None:
        raise not_found("import")
    report = dict(row.report, import_id=str(import_id), rejected_rows=row.page, rejected_offset=offset)
    return msgspec.convert(report, ImportResult)
