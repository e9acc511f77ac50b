"""The import service a request gets: a file or a Parsing Service task through the pipeline.

One per request (``provide_import_service``), for the import routes and the Mailing page's.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
from litestar import Request

from invite.audience.readers import SourceFormat, sheet_from_records
from invite.audience.schemas import ImportResult, Source
from invite.audience.service import ImportSource, check_task, get_import, run_import
from invite.audience.upload import Upload, mapping_field, read_sheet
from invite.kernel.auth import Tenant
from invite.kernel.http import UpstreamError
from invite.kernel.problems import Problem, invalid
from invite.kernel.settings import Settings
from invite.platforms.parsing import InvalidTaskId, ParsingSource, TooManyResults, parse_task_id


def provide_import_service(request: Request[Tenant, Any, Any]) -> ImportService:
    state = request.app.state  # one dependency, not three: see invite.app
    return ImportService(state.pool, state.settings, request.user.user_id)


class ImportService:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, user_id: str) -> None:
        self._pool = pool
        self._settings = settings
        self._user_id = user_id

    async def from_file(
        self,
        upload: Upload,
        task_id: uuid.UUID | None,
        *,
        dry_run: bool,
        rejected_offset: int = 0,
        rejected_limit: int = 100,
    ) -> ImportResult:
        """An upload through the import pipeline; a dry run may leave out the task."""
        sheet = await read_sheet(upload, self._settings)
        source = Source(
            kind="file",
            name=upload.filename,
            format=sheet.format.value,
            encoding=sheet.encoding,
            delimiter=sheet.delimiter,
            sheet=sheet.sheet_name,
        )
        what = ImportSource(sheet, source, mapping_field(upload))
        return await self._run(what, task_id, dry_run, rejected_offset, rejected_limit)

    async def from_parsing(
        self,
        parsing: ParsingSource,
        parsing_task_id: str,
        task_id: uuid.UUID | None,
        *,
        dry_run: bool,
        rejected_offset: int = 0,
        rejected_limit: int = 100,
    ) -> ImportResult:
        """A Parsing Service task through the import pipeline; a dry run may leave out the task.

        The task is checked before the Parsing Service is asked, so a 404/409 costs it nothing.
        """
        if task_id is not None:
            await check_task(self._pool, self._settings, self._user_id, task_id)
        try:
            results = await parsing.fetch_results(parsing_task_id, self._user_id)
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
        source = Source(kind="parsing", name=parse_task_id(parsing_task_id), format="parsing")
        return await self._run(ImportSource(sheet, source), task_id, dry_run, rejected_offset, rejected_limit)

    async def get(self, import_id: uuid.UUID, rejected_offset: int, rejected_limit: int) -> ImportResult:
        return await get_import(
            self._pool, self._settings, self._user_id, import_id, rejected_offset, rejected_limit
        )

    async def _run(
        self,
        what: ImportSource,
        task_id: uuid.UUID | None,
        dry_run: bool,
        rejected_offset: int,
        rejected_limit: int,
    ) -> ImportResult:
        return await run_import(
            self._pool,
            self._settings,
            user_id=self._user_id,
            task_id=task_id,
            what=what,
            dry_run=dry_run,
            rejected_offset=rejected_offset,
            rejected_limit=rejected_limit,
        )
