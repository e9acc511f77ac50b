"""HTTP endpoints of the suppression list: add, list, remove, import from a file."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from invite.audience.upload import (
    FILE_DESCRIPTION,
    Uploaded,
    hang_up_after_413,
    multipart_operation,
    provide_upload,
)
from invite.kernel.problems import Problem
from invite.suppressions.schemas import SuppressionPage, SuppressionResult, SuppressionsAdd
from invite.suppressions.service import SuppressionService, provide_suppression_service

_IMPORT_FIELDS = {
    "mapping": "Optional JSON object, role → column header, as for POST /import/file.",
    "reason": "Optional note kept with every entry (at most 500 characters).",
}
Suppressions = NamedDependency[SuppressionService]


class SuppressionController(Controller):
    path = "/suppressions"
    tags = ["suppressions"]  # noqa: RUF012
    dependencies = {  # noqa: RUF012
        "suppressions": Provide(provide_suppression_service, sync_to_thread=False),
        "upload": Provide(provide_upload),
    }
    exception_handlers = {Problem: hang_up_after_413}  # noqa: RUF012

    @post(
        "/",
        status_code=201,
        summary="Suppress people: they are never contacted by any of your tasks",
        description="Identifiers are normalised as in an import. Their still-pending targets in your tasks "
        "are skipped (outcome `suppressed`) in the same transaction; targets already in flight finish.",
    )
    async def add(self, suppressions: Suppressions, data: JSONBody[SuppressionsAdd]) -> SuppressionResult:
        return await suppressions.add(data.identifiers, data.reason)

    @get("/", summary="The suppression list, newest first")
    async def list_suppressions(
        self,
        suppressions: Suppressions,
        cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        identifier: Annotated[
            str | None, QueryParameter(description="Look one person up (any form: @name, id, phone, key).")
        ] = None,
    ) -> SuppressionPage:
        return await suppressions.page(cursor=cursor, limit=limit, identifier=identifier)

    @delete(
        "/{identifier:str}",
        status_code=204,
        summary="Take someone off the suppression list",
        description="`identifier`: a username, user id, phone or key (`u:name`, `id:42`, `p:+79123456789`). "
        "Targets the entry skipped stay skipped.",
    )
    async def remove(self, suppressions: Suppressions, identifier: FromPath[str]) -> None:
        await suppressions.remove(identifier)

    @post(
        "/import",
        status_code=201,
        summary="Suppress everyone in a file",
        description="Read like POST /import/file (same formats, columns found the same way).",
        request_max_body_size=None,  # provide_upload enforces MAX_UPLOAD_BYTES while the body streams in
        operation_class=multipart_operation(FILE_DESCRIPTION, _IMPORT_FIELDS),
    )
    async def import_file(self, suppressions: Suppressions, upload: Uploaded) -> SuppressionResult:
        return await suppressions.add_file(upload)
