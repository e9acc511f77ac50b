"""HTTP endpoints of the audience import: a file, a Parsing Service task, a dry run of either."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter, SkipValidation

from invite.audience.readers import ReadLimits, Sheet, SourceFormat, read_file, sheet_from_records
from invite.audience.schemas import ImportResult, ParsingImport, Source
from invite.audience.service import ImportSource, check_task, get_import, run_import
from invite.audience.upload import Upload, hang_up_after_413, multipart_operation, read_upload
from invite.integrations.parsing import ParsingClient
from invite.kernel.auth import Tenant
from invite.kernel.clock import Clock
from invite.kernel.http import UpstreamError
from invite.kernel.problems import Problem, invalid
from invite.kernel.settings import Settings
from invite.platforms.parsing import InvalidTaskId, TooManyResults, parse_task_id
from invite.reports.service import ReportService

# at most an int4: rows are kept by the thousand (IMPORT_REJECTED_KEPT), never 2**31
RejectedOffset = Annotated[
    int, QueryParameter(ge=0, le=2**31 - 1, description="First rejected row to return (paging).")
]
RejectedLimit = Annotated[int, QueryParameter(ge=1, le=1000, description="Rejected rows to return (paging).")]

_FORM_FIELDS = {
    "task_id": "The task the people go into (uuid).",
    "mapping": "Optional JSON object overriding column detection, role → header as written in the file, e.g. "
    '{"username": "Ник", "phone": "Тел.", "first_name": null} (null: do not read that role). Roles: username, '
    "user_id, phone, identifier, first_name, last_name, full_name, is_bot, user_type.",
}
FILE_DESCRIPTION = (
    "CSV (, ; tab |; UTF-8, UTF-8/16 with BOM, cp1251), XLSX or JSON; at most MAX_UPLOAD_BYTES (10 MB)."
)


def provide_parsing_client(
    state: State, app_settings: NamedDependency[Settings], clock: NamedDependency[SkipValidation[Clock]]
) -> ParsingClient:
    if app_settings.parsing_service_url is None:
        raise Problem(
            503, "Service unavailable", "the Parsing Service is not configured (PARSING_SERVICE_URL)"
        )
    return ParsingClient(
        app_settings.parsing_service_url,
        state.jwt_secret,  # the app's JwtSecret: looked up per call, so a rotation lands
        retries=app_settings.http_retries,
        max_results=app_settings.parsing_max_results,
        clock=clock,
        client=state.http,  # the app's client: its timeout is HTTP_TIMEOUT_SECONDS
    )


async def read_sheet(upload: Upload, settings: Settings) -> Sheet:
    """The uploaded file as a sheet, read off the event loop within the upload limits."""
    limits = ReadLimits(
        max_bytes=settings.max_upload_bytes, max_uncompressed_bytes=settings.max_xlsx_unpacked_bytes
    )
    return await asyncio.to_thread(read_file, upload.data, upload.filename, upload.content_type, limits)


def _task_id(value: str | None, *, required: bool) -> uuid.UUID | None:
    if value is None or not value.strip():
        if required:
            raise invalid("task_id", "required: the task the people go into")
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise invalid("task_id", "must be a uuid") from None


def mapping_field(value: str | None) -> dict[str, str | None] | None:
    if value is None or not value.strip():
        return None
    try:
        return msgspec.json.decode(value, type=dict[str, str | None])
    except msgspec.DecodeError:
        raise invalid("mapping", 'a JSON object of role → column header, e.g. {"username": "Ник"}') from None


async def _file_source(upload: Upload, settings: Settings) -> ImportSource:
    sheet = await read_sheet(upload, settings)
    source = Source(
        kind="file",
        name=upload.filename,
        format=sheet.format.value,
        encoding=sheet.encoding,
        delimiter=sheet.delimiter,
        sheet=sheet.sheet_name,
    )
    return ImportSource(sheet, source, mapping_field(upload.fields.get("mapping")))


async def _parsing_source(parsing: ParsingClient, parsing_task_id: str, user_id: str) -> ImportSource:
    try:
        results = await parsing.fetch_results(parsing_task_id, user_id)
    except InvalidTaskId:
        raise invalid("parsing_task_id", "must be a uuid") from None
    except TooManyResults as exc:
        raise invalid("parsing_task_id", str(exc)) from None
    except UpstreamError as exc:
        raise Problem(
            502,
            "Bad gateway",
            f"the {exc.service} failed: {exc.detail}; nothing was imported",
            extra={"service": exc.service},
        ) from None
    if not results:
        raise invalid(
            "parsing_task_id",
            "the Parsing Service has no results for this task (unknown, not yours, or empty)",
        )
    sheet = sheet_from_records(msgspec.to_builtins(results), SourceFormat.PARSING)
    return ImportSource(sheet, Source(kind="parsing", name=parse_task_id(parsing_task_id), format="parsing"))


class ImportController(Controller):
    path = "/"
    tags = ["audience"]  # noqa: RUF012
    dependencies = {"parsing": Provide(provide_parsing_client, sync_to_thread=False)}  # noqa: RUF012
    exception_handlers = {Problem: hang_up_after_413}  # noqa: RUF012

    @post(
        "/import/file",
        summary="Import people from a file into a task",
        description="Columns are found by their headers (English or Russian; the Parsing Service's and "
        "Telegram member scrapers' exports; a title row above the header is fine), by a known word in "
        "a header (`Ник в Telegram`, `Номер телефона клиента`) and by what a column holds (usernames "
        "and t.me links, user ids, phones, names); `columns.guessed` says which columns were guessed "
        "and why. Without a header, the first column is read as identifiers. The whole file is imported or nothing is: rows that "
        "are invalid, duplicated, suppressed, already in the task or past its target limit are left out "
        "and reported with their row numbers. Page through all rejected rows at GET /imports/{import_id}.",
        status_code=201,
        request_max_body_size=None,  # read_upload enforces MAX_UPLOAD_BYTES while the body streams in
        operation_class=multipart_operation(FILE_DESCRIPTION, _FORM_FIELDS, required=("task_id",)),
    )
    async def import_file(
        self,
        request: Request[Tenant, Any, Any],
        db_pool: NamedDependency[asyncpg.Pool],
        app_settings: NamedDependency[Settings],
        tenant: NamedDependency[Tenant],
        rejected_offset: RejectedOffset = 0,
        rejected_limit: RejectedLimit = 100,
    ) -> ImportResult:
        return await _import_upload(
            request, db_pool, app_settings, tenant, rejected_offset, rejected_limit, dry_run=False
        )

    @post(
        "/import/parsing",
        summary="Import the people a Parsing Service task found",
        description="Reads every page of the parsing task's results (GET /results/{task_id}) and imports "
        "them like a file. If the Parsing Service fails or times out the answer is 502 and nothing is "
        "imported; an unknown, foreign or empty parsing task is 422.",
        status_code=201,
    )
    async def import_parsing(
        self,
        db_pool: NamedDependency[asyncpg.Pool],
        app_settings: NamedDependency[Settings],
        tenant: NamedDependency[Tenant],
        parsing: NamedDependency[SkipValidation[ParsingClient]],
        data: JSONBody[ParsingImport],
        rejected_offset: RejectedOffset = 0,
        rejected_limit: RejectedLimit = 100,
    ) -> ImportResult:
        return await _import_parsing(
            db_pool,
            app_settings,
            tenant,
            parsing,
            data.parsing_task_id,
            data.task_id,
            rejected_offset,
            rejected_limit,
            dry_run=False,
        )

    @get(
        "/import/validate",
        summary="Dry run: what importing a Parsing Service task would do",
        description="Nothing is written. Names its input in the query: `parsing_task_id` (required) and, "
        "optionally, `task_id` to check against that task (people it already has, its target limit, "
        "whether it can still take people). A file cannot travel in a GET: POST it to the same path. "
        "The answer is the import's result with `dry_run: true` and a `preview` of the first targets.",
    )
    async def validate_parsing(
        self,
        request: Request[Tenant, Any, Any],
        db_pool: NamedDependency[asyncpg.Pool],
        app_settings: NamedDependency[Settings],
        tenant: NamedDependency[Tenant],
        parsing: NamedDependency[SkipValidation[ParsingClient]],
        parsing_task_id: Annotated[str, QueryParameter(description="The Parsing Service task (uuid).")],
        task_id: Annotated[
            uuid.UUID | None, QueryParameter(description="Optional: the task to check against.")
        ] = None,
        rejected_offset: RejectedOffset = 0,
        rejected_limit: RejectedLimit = 100,
    ) -> ImportResult:
        result = await _import_parsing(
            db_pool,
            app_settings,
            tenant,
            parsing,
            parsing_task_id,
            task_id,
            rejected_offset,
            rejected_limit,
            dry_run=True,
        )
        return await _with_forecast(request, result)

    @post(
        "/import/validate",
        summary="Dry run: what importing a file would do",
        description="The same multipart form as POST /import/file, `task_id` optional (without it the file "
        "is checked on its own, as for a new task). Nothing is written; the answer is the import's "
        "result with `dry_run: true` and a `preview` of the first targets.",
        status_code=200,
        request_max_body_size=None,
        operation_class=multipart_operation(FILE_DESCRIPTION, _FORM_FIELDS),
    )
    async def validate_file(
        self,
        request: Request[Tenant, Any, Any],
        db_pool: NamedDependency[asyncpg.Pool],
        app_settings: NamedDependency[Settings],
        tenant: NamedDependency[Tenant],
        rejected_offset: RejectedOffset = 0,
        rejected_limit: RejectedLimit = 100,
    ) -> ImportResult:
        result = await _import_upload(
            request, db_pool, app_settings, tenant, rejected_offset, rejected_limit, dry_run=True
        )
        return await _with_forecast(request, result)

    @get(
        "/imports/{import_id:uuid}",
        summary="An import's result, with a page of its rejected rows",
        description="The first IMPORT_REJECTED_KEPT (10,000) rejected rows of each import are kept, in row "
        "order; the counts always cover every row.",
    )
    async def read_import(
        self,
        db_pool: NamedDependency[asyncpg.Pool],
        app_settings: NamedDependency[Settings],
        tenant: NamedDependency[Tenant],
        import_id: FromPath[uuid.UUID],
        rejected_offset: RejectedOffset = 0,
        rejected_limit: RejectedLimit = 100,
    ) -> ImportResult:
        return await get_import(
            db_pool, app_settings, tenant.user_id, import_id, rejected_offset, rejected_limit
        )


async def _with_forecast(request: Request[Tenant, Any, Any], result: ImportResult) -> ImportResult:
    """A dry run into a task says when the task would be done with the people it would add."""
    if result.task_id is None:
        return result
    state = request.app.state
    reports = ReportService(state.pool, state.settings, state.clock, request.user, state.accounts_provider)
    try:
        forecast = await reports.forecast(result.task_id, adding=result.counts.imported)
    except UpstreamError:
        return result  # the accounts could not be listed: the dry run's answer stands without it
    return msgspec.structs.replace(result, forecast=forecast)


async def _import_upload(
    request: Request[Tenant, Any, Any],
    db_pool: asyncpg.Pool,
    app_settings: Settings,
    tenant: Tenant,
    rejected_offset: int,
    rejected_limit: int,
    *,
    dry_run: bool,
) -> ImportResult:
    """A multipart upload through the import pipeline; a dry run may leave out the task."""
    upload = await read_upload(request, app_settings.max_upload_bytes)
    task_id = _task_id(upload.fields.get("task_id"), required=not dry_run)
    source = await _file_source(upload, app_settings)
    return await run_import(
        db_pool,
        app_settings,
        user_id=tenant.user_id,
        task_id=task_id,
        what=source,
        dry_run=dry_run,
        rejected_offset=rejected_offset,
        rejected_limit=rejected_limit,
    )


async def _import_parsing(
    db_pool: asyncpg.Pool,
    app_settings: Settings,
    tenant: Tenant,
    parsing: ParsingClient,
    parsing_task_id: str,
    task_id: uuid.UUID | None,
    rejected_offset: int,
    rejected_limit: int,
    *,
    dry_run: bool,
) -> ImportResult:
    """A Parsing Service task through the import pipeline; a dry run may leave out the task.

    The task is checked before the Parsing Service is asked, so a 404/409 costs it nothing.
    """
    if task_id is not None:
        await check_task(db_pool, app_settings, tenant.user_id, task_id)
    source = await _parsing_source(parsing, parsing_task_id, tenant.user_id)
    return await run_import(
        db_pool,
        app_settings,
        user_id=tenant.user_id,
        task_id=task_id,
        what=source,
        dry_run=dry_run,
        rejected_offset=rejected_offset,
        rejected_limit=rejected_limit,
    )
