"""Adding, listing and removing suppressed people; adding also takes them out of running work.

Identifiers go through the import's normalisation, so ``@Alice``, ``t.me/alice`` and
``alice`` are one entry, and a person given with several identifiers is suppressed under
each of them (imports and targets are matched on any identifier they carry).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import polars as pl
from litestar import Request

from invite.audience.columns import Role
from invite.audience.normalise import IDENTIFIER_COLUMNS, KEY_COLUMNS, people
from invite.audience.schemas import Columns
from invite.audience.service import analyse, columns_of, rejected_rows
from invite.audience.upload import Upload, mapping_field, read_sheet
from invite.kernel import audit
from invite.kernel.auth import Tenant
from invite.kernel.clock import Clock
from invite.kernel.problems import Problem, invalid, not_found
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql
from invite.suppressions.schemas import Suppression, SuppressionPage, SuppressionResult

REJECTED_SHOWN = 100
_KEY_FORM = ("u:", "id:", "p:")


class _Added(msgspec.Struct, frozen=True):
    identifier_key: str  # suppressions.add: a person not listed before


def check_identifiers(identifiers: Sequence[str], region: str) -> pl.DataFrame:
    """normalise.people over a list of lone identifiers, ``row`` being the position (from 1)."""
    frame = pl.DataFrame({"c0": list(identifiers)}, schema={"c0": pl.String})
    frame = frame.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.Int64))
    return people(frame, {Role.IDENTIFIER: "c0"}, region)


def _entries(checked: pl.DataFrame) -> pl.DataFrame:
    """(key, identifier) for every valid identifier of every row that names someone; bots too."""
    usable = checked.filter(pl.col("code").is_null() | (pl.col("code") == "bot"))
    parts = [
        usable.select(pl.col(key).alias("key"), pl.col(value).alias("identifier"))
        for key, value in zip(KEY_COLUMNS, IDENTIFIER_COLUMNS, strict=True)
    ]
    return pl.concat(parts).drop_nulls("key").unique("key", keep="first", maintain_order=True)


async def suppress(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    user_id: str,
    checked: pl.DataFrame,
    reason: str | None,
    now: datetime,
    source: str,
    columns: Columns | None = None,
) -> SuppressionResult:
    """Add every valid person of ``checked`` and skip their pending targets, in one transaction."""
    entries = _entries(checked)
    keys = entries.get_column("key").to_list()
    sql = Sql(settings.sql_dir)
    async with pool.acquire() as conn, conn.transaction():
        await sql.execute(conn, "suppressions.lock_tenant", user_id=user_id)
        added = await sql.fetch(
            conn,
            "suppressions.add",
            _Added,
            user_id=user_id,
            keys=keys,
            identifiers=entries.get_column("identifier").to_list(),
            reason=reason,
            now=now,
        )
        status = await sql.execute(
            conn, "suppressions.skip_pending_targets", user_id=user_id, keys=keys, now=now
        )
        skipped = int(status.split()[-1])
        await audit.record(
            conn,
            settings.sql_dir,
            user_id=user_id,
            action="suppress",
            resource="suppressions",
            resource_id=None,
            details={"source": source, "added": len(added), "targets_skipped": skipped},
        )
    rejected = checked.filter(pl.col("code").is_in(["invalid", "no_identifier"]))
    return SuppressionResult(
        received=checked.height,
        added=len(added),
        already=len(keys) - len(added),
        rejected=rejected.height,
        rejected_rows=rejected_rows(rejected, 0, REJECTED_SHOWN),
        targets_skipped=skipped,
        columns=columns,
    )


def key_of(identifier: str, region: str) -> str:
    """The key of one identifier, given as written (``@alice``) or as a key (``u:alice``)."""
    if identifier.startswith(_KEY_FORM):
        return identifier
    row = check_identifiers([identifier], region).row(0, named=True)
    if row["key"] is None:
        raise invalid("identifier", row["reason"] or "not a username, user id or phone")
    key: str = row["key"]
    return key


def _cursor(created_at: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{key}".encode()).decode()


def _after(cursor: str | None) -> tuple[datetime | None, str | None]:
    if cursor is None:
        return None, None
    try:
        when, _, key = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(when), key
    except (ValueError, binascii.Error):
        raise invalid("cursor", "not a cursor this endpoint gave out") from None


async def page(
    pool: asyncpg.Pool,
    settings: Settings,
    user_id: str,
    *,
    cursor: str | None,
    limit: int,
    identifier: str | None,
) -> SuppressionPage:
    sql = Sql(settings.sql_dir)
    if identifier is not None:
        key = key_of(identifier, settings.phone_default_region)
        found = await sql.fetchrow(pool, "suppressions.find", Suppression, user_id=user_id, key=key)
        return SuppressionPage([found] if found else [], None)
    when, after = _after(cursor)
    rows = await sql.fetch(
        pool,
        "suppressions.page",
        Suppression,
        user_id=user_id,
        after_created_at=when,
        after_key=after,
        limit=limit + 1,
    )
    items = rows[:limit]
    more = len(rows) > limit
    return SuppressionPage(items, _cursor(items[-1].created_at, items[-1].key) if more else None)


async def remove(pool: asyncpg.Pool, settings: Settings, user_id: str, identifier: str) -> None:
    """Take someone off the list. Targets it skipped stay skipped: nobody is re-queued by this."""
    key = key_of(identifier, settings.phone_default_region)
    sql = Sql(settings.sql_dir)
    async with pool.acquire() as conn, conn.transaction():
        await sql.execute(conn, "suppressions.lock_tenant", user_id=user_id)
        if await sql.fetchval(conn, "suppressions.remove", user_id=user_id, key=key) is None:
            raise not_found("suppression")
        await audit.record(
            conn,
            settings.sql_dir,
            user_id=user_id,
            action="unsuppress",
            resource="suppressions",
            resource_id=key,
        )


def provide_suppression_service(request: Request[Tenant, Any, Any]) -> SuppressionService:
    state = request.app.state  # one dependency, not four: see invite.app
    return SuppressionService(state.pool, state.settings, state.clock, request.user.user_id)


class SuppressionService:
    """The tenant's suppression list, for one request."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, clock: Clock, user_id: str) -> None:
        self._pool = pool
        self._settings = settings
        self._clock = clock
        self._user_id = user_id

    async def add(self, identifiers: Sequence[str], reason: str | None) -> SuppressionResult:
        region = self._settings.phone_default_region
        checked = await asyncio.to_thread(check_identifiers, identifiers, region)
        return await suppress(
            self._pool,
            self._settings,
            user_id=self._user_id,
            checked=checked,
            reason=reason,
            now=self._clock.now(),
            source="api",
        )

    async def add_file(self, upload: Upload) -> SuppressionResult:
        """Everyone in the uploaded file, its ``reason`` field kept with each entry."""
        reason = upload.fields.get("reason") or None
        if reason is not None and len(reason) > 500:
            raise Problem(422, "Invalid request", "at most 500 characters", field="reason")
        sheet = await read_sheet(upload, self._settings)
        region = self._settings.phone_default_region
        analysis = await asyncio.to_thread(analyse, sheet, mapping_field(upload), region)
        return await suppress(
            self._pool,
            self._settings,
            user_id=self._user_id,
            checked=analysis.people,
            reason=reason,
            now=self._clock.now(),
            source=f"file:{upload.filename or ''}",
            columns=columns_of(analysis.layout),
        )

    async def page(self, *, cursor: str | None, limit: int, identifier: str | None) -> SuppressionPage:
        return await page(
            self._pool, self._settings, self._user_id, cursor=cursor, limit=limit, identifier=identifier
        )

    async def remove(self, identifier: str) -> None:
        await remove(self._pool, self._settings, self._user_id, identifier)
