"""HTTP endpoints of the audience import: a file, a Parsing Service task, a dry run of either."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter, SkipValidation

from invite.audience.imports import ImportService, provide_import_service
from invite.audience.schemas import ImportResult, ParsingImport
from invite.audience.upload import (
    FILE_DESCRIPTION,
    Uploaded,
    hang_up_after_413,
    multipart_operation,
    provide_upload,
)
from invite.kernel.http import UpstreamError
from invite.kernel.problems import Problem, invalid
from invite.platforms.parsing import ParsingSource
from invite.reports.service import ReportService, provide_report_service

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
# a dry run into a task answers with its forecast
_FORECAST = {"reports": Provide(provide_report_service, sync_to_thread=False)}
Imports = NamedDependency[ImportService]
Parsing = NamedDependency[SkipValidation[ParsingSource]]


def _task_id(value: str | None, *, required: bool) -> uuid.UUID | None:
    if value is None or not value.strip():
        if required:
            raise invalid("task_id", "required: the task the people go into")
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise invalid("task_id", "must be a uuid") from None


class ImportController(Controller):
    path = "/"
    tags = ["audience"]  # noqa: RUF012
    dependencies = {  # noqa: RUF012
        "imports": Provide(provide_import_service, sync_to_thread=False),
        "upload": Provide(provide_upload),
    }
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
        request_max_body_size=None,  # provide_upload enforces MAX_UPLOAD_BYTES while the body streams in
        operation_class=multipart_operation(FILE_DESCRIPTION, _FORM_FIELDS, required=("task_id",)),
    )
    async def import_file(
        self,
        imports: Imports,
        upload: Uploaded,
        rejected_offset: RejectedOffset = 0,
        rejected_limit: RejectedLimit = 100,
    ) -> ImportResult:
        task_id = _task_id(upload.fields.get("task_id"), required=True)
        return await imports.from_file(
            upload, task_id, dry_run=False, rejected_offset=rejected_offset, rejected_limit=rejected_limit
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
        imports: Imports,
        parsing: Parsing,
        data: JSONBody[ParsingImport],
        rejected_offset: RejectedOffset = 0,
        rejected_limit: RejectedLimit = 100,
    ) -> ImportResult:
        return await imports.from_parsing(
            parsing,
            data.parsing_task_id,
            data.task_id,
            dry_run=False,
            rejected_offset=rejected_offset,
            rejected_limit=rejected_limit,
        )

    @get(
        "/import/validate",
        summary="Dry run: what importing a Parsing Service task would do",
        description="Nothing is written. Names its input in the query: `parsing_task_id` (required) and, "
        "optionally, `task_id` to check against that task (people it already has, its target limit, "
        "whether it can still take people). A file cannot travel in a GET: POST it to the same path. "
        "The answer is the import's result with `dry_run: true` and a `preview` of the first targets.",
        dependencies=_FORECAST,
    )
    async def validate_parsing(
        self,
        imports: Imports,
        parsing: Parsing,
        reports: NamedDependency[ReportService],
        parsing_task_id: Annotated[str, QueryParameter(description="The Parsing Service task (uuid).")],
        task_id: Annotated[
            uuid.UUID | None, QueryParameter(description="Optional: the task to check against.")
        ] = None,
        rejected_offset: RejectedOffset = 0,
        rejected_limit: RejectedLimit = 100,
    ) -> ImportResult:
        result = await imports.from_parsing(
            parsing,
            parsing_task_id,
            task_id,
            dry_run=True,
            rejected_offset=rejected_offset,
            rejected_limit=rejected_limit,
        )
        return await _with_forecast(reports, result)

    @post(
        "/import/validate",
        summary="Dry run: what importing a file would do",
        description="The same multipart form as POST /import/file, `task_id` optional (without it the file "
        "is checked on its own, as for a new task). Nothing is written; the answer is the import's "
        "result with `dry_run: true` and a `preview` of the first targets.",
        status_code=200,
        request_max_body_size=None,
        operation_class=multipart_operation(FILE_DESCRIPTION, _FORM_FIELDS),
        dependencies=_FORECAST,
    )
    async def validate_file(
        self,
        imports: Imports,
        upload: Uploaded,
        reports: NamedDependency[ReportService],
        rejected_offset: RejectedOffset = 0,
        rejected_limit: RejectedLimit = 100,
    ) -> ImportResult:
        task_id = _task_id(upload.fields.get("task_id"), required=False)
        result = await imports.from_file(
            upload, task_id, dry_run=True, rejected_offset=rejected_offset, rejected_limit=rejected_limit
        )
        return await _with_forecast(reports, result)

    @get(
        "/imports/{import_id:uuid}",
        summary="An import's result, with a page of its rejected rows",
        description="The first IMPORT_REJECTED_KEPT (10,000) rejected rows of each import are kept, in row "
        "order; the counts always cover every row.",
    )
    async def read_import(
        self,
        imports: Imports,
        import_id: FromPath[uuid.UUID],
        rejected_offset: RejectedOffset = 0,
        rejected_limit: RejectedLimit = 100,
    ) -> ImportResult:
        return await imports.get(import_id, rejected_offset, rejected_limit)


async def _with_forecast(reports: ReportService, result: ImportResult) -> ImportResult:
    """A dry run into a task says when the task would be done with the people it would add."""
    if result.task_id is None:
        return result
    try:
        forecast = await reports.forecast(result.task_id, adding=result.counts.imported)
    except UpstreamError:
        return result  # the accounts could not be listed: the dry run's answer stands without it
    return msgspec.structs.replace(result, forecast=forecast)
