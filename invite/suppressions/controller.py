"""HTTP endpoints of the suppression list: add, list, remove, import from a file."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter, SkipValidation

from invite.audience.controller import FILE_DESCRIPTION, mapping_field, read_sheet
from invite.audience.service import analyse, columns_of
from invite.audience.upload import hang_up_after_413, multipart_operation, read_upload
from invite.kernel.auth import Tenant
from invite.kernel.clock import Clock
from invite.kernel.problems import Problem
from invite.kernel.settings import Settings
from invite.suppressions.schemas import SuppressionPage, SuppressionResult, SuppressionsAdd
from invite.suppressions.service import check_identifiers, page, remove, suppress

_IMPORT_FIELDS = {
    "mapping": "Optional JSON object, role → column header, as for POST /import/file.",
    "reason": "Optional note kept with every entry (at most 500 characters).",
}


class SuppressionController(Controller):
    path = "/suppressions"
    tags = ["suppressions"]  # noqa: RUF012
    exception_handlers = {Problem: hang_up_after_413}  # noqa: RUF012

    @post(
        "/",
        status_code=201,
        summary="Suppress people: they are never contacted by any of your tasks",
        description="Identifiers are normalised as in an import. Their still-pending targets in your tasks "
        "are skipped (outcome `suppressed`) in the same transaction; targets already in flight finish.",
    )
    async def add(
        self,
        db_pool: NamedDependency[asyncpg.Pool],
        app_settings: NamedDependency[Settings],
        clock: NamedDependency[SkipValidation[Clock]],
        tenant: NamedDependency[Tenant],
        data: JSONBody[SuppressionsAdd],
    ) -> SuppressionResult:
        checked = await asyncio.to_thread(
            check_identifiers, data.identifiers, app_settings.phone_default_region
        )
        return await suppress(
            db_pool,
            app_settings,
            user_id=tenant.user_id,
            checked=checked,
            reason=data.reason,
            now=clock.now(),
            source="api",
        )

    @get("/", summary="The suppression list, newest first")
    async def list_suppressions(
        self,
        db_pool: NamedDependency[asyncpg.Pool],
        app_settings: NamedDependency[Settings],
        tenant: NamedDependency[Tenant],
        cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        identifier: Annotated[
            str | None, QueryParameter(description="Look one person up (any form: @name, id, phone, key).")
        ] = None,
    ) -> SuppressionPage:
        return await page(
            db_pool, app_settings, tenant.user_id, cursor=cursor, limit=limit, identifier=identifier
        )

    @delete(
        "/{identifier:str}",
        status_code=204,
        summary="Take someone off the suppression list",
        description="`identifier`: a username, user id, phone or key (`u:name`, `id:42`, `p:+79123456789`). "
        "Targets the entry skipped stay skipped.",
    )
    async def remove(
        self,
        db_pool: NamedDependency[asyncpg.Pool],
        app_settings: NamedDependency[Settings],
        tenant: NamedDependency[Tenant],
        identifier: FromPath[str],
    ) -> None:
        await remove(db_pool, app_settings, tenant.user_id, identifier)

    @post(
        "/import",
        status_code=201,
        summary="Suppress everyone in a file",
        description="Read like POST /import/file (same formats, columns found the same way).",
        request_max_body_size=None,  # read_upload enforces MAX_UPLOAD_BYTES while the body streams in
        operation_class=multipart_operation(FILE_DESCRIPTION, _IMPORT_FIELDS),
    )
    async def import_file(
        self,
        request: Request[Tenant, Any, Any],
        db_pool: NamedDependency[asyncpg.Pool],
        app_settings: NamedDependency[Settings],
        clock: NamedDependency[SkipValidation[Clock]],
        tenant: NamedDependency[Tenant],
    ) -> SuppressionResult:
        upload = await read_upload(request, app_settings.max_upload_bytes)
        reason = upload.fields.get("reason") or None
        if reason is not None and len(reason) > 500:
            raise Problem(422, "Invalid request", "at most 500 characters", field="reason")
        sheet = await read_sheet(upload, app_settings)
        analysis = await asyncio.to_thread(
            analyse, sheet, mapping_field(upload.fields.get("mapping")), app_settings.phone_default_region
        )
        return await suppress(
            db_pool,
            app_settings,
            user_id=tenant.user_id,
            checked=analysis.people,
            reason=reason,
            now=clock.now(),
            source=f"file:{upload.filename or ''}",
            columns=columns_of(analysis.layout),
        )
