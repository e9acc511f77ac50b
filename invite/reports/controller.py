"""HTTP endpoints of reports: stats, the final report and its CSV/XLSX export, the execution
log, retry of failed targets, and the live event stream of a task."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)
from litestar.params import FromPath, QueryParameter, SkipValidation
from litestar.response import ServerSentEvent, Stream
from litestar.status_codes import HTTP_200_OK

from invite.kernel.clock import Clock
from invite.kernel.events import TaskEventHub
from invite.kernel.problems import check_instants
from invite.kernel.settings import Settings
from invite.reports.events import event_stream
from invite.reports.export import csv_stream, xlsx_stream
from invite.reports.schemas import LogPage, RetryFailedResponse, TaskForecast, TaskReport, TaskStatsResponse
from invite.reports.service import ReportService, provide_report_service

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ExportFormat = Literal["json", "csv", "xlsx"]


@dataclass
class ReportOperation(Operation):
    """The report's 200 by format: JSON, a CSV or an XLSX download. (From ``TaskReport | Stream``
    Litestar documents "oneOf TaskReport or anything", which every JSON report matches twice.)"""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.content = {
                "application/json": OpenAPIMediaType(schema=Reference("#/components/schemas/TaskReport")),
                "text/csv": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
                XLSX_MEDIA_TYPE: OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                ),
            }


def provide_event_hub(state: State) -> TaskEventHub:
    hub: TaskEventHub = state.event_hub
    return hub


class ReportController(Controller):
    path = "/tasks/{task_id:uuid}"
    tags = ["reports"]  # noqa: RUF012
    dependencies = {  # noqa: RUF012
        "reports": Provide(provide_report_service, sync_to_thread=False),
        "event_hub": Provide(provide_event_hub, sync_to_thread=False),
    }

    @get("/stats", summary="Per account, per outcome and per hour")
    async def stats(
        self,
        reports: NamedDependency[ReportService],
        task_id: FromPath[uuid.UUID],
        since: Annotated[
            datetime | None, QueryParameter(description="first hour to include (ISO 8601)")
        ] = None,
        until: Annotated[
            datetime | None, QueryParameter(description="hours before this time (ISO 8601)")
        ] = None,
    ) -> TaskStatsResponse:
        check_instants(since=since, until=until)
        return await reports.stats(task_id, since, until)

    @get(
        "/report",
        summary="The task's report: JSON, or one row per target as CSV or XLSX",
        response_description="JSON (TaskReport), or a text/csv or XLSX download, by `format`",
        operation_class=ReportOperation,
    )
    async def report(
        self,
        reports: NamedDependency[ReportService],
        task_id: FromPath[uuid.UUID],
        format: Annotated[ExportFormat, QueryParameter(description="json, csv or xlsx")] = "json",
    ) -> TaskReport | Stream:
        if format == "json":
            return await reports.report(task_id)
        pages = await reports.export_pages(task_id)
        if format == "csv":
            content = csv_stream(pages)
        else:
            content = xlsx_stream(pages, await reports.stats(task_id, None, None))
        return Stream(
            content,
            # as a header: Litestar would put the handler's JSON media type on a Stream
            headers={
                "content-type": "text/csv; charset=utf-8" if format == "csv" else XLSX_MEDIA_TYPE,
                "content-disposition": f'attachment; filename="task-{task_id}.{format}"',
            },
        )

    @get("/forecast", summary="When the task will be done: days, finish date, people a day, what limits it")
    async def forecast(
        self, reports: NamedDependency[ReportService], task_id: FromPath[uuid.UUID]
    ) -> TaskForecast:
        return await reports.forecast(task_id)

    @get("/logs", summary="The execution log, newest first, filtered and paginated")
    async def logs(
        self,
        reports: NamedDependency[ReportService],
        task_id: FromPath[uuid.UUID],
        status: Annotated[str | None, QueryParameter(max_length=20)] = None,
        account_id: Annotated[str | None, QueryParameter(max_length=255)] = None,
        action: Annotated[str | None, QueryParameter(max_length=50)] = None,
        since: Annotated[
            datetime | None, QueryParameter(description="entries at or after (ISO 8601)")
        ] = None,
        until: Annotated[datetime | None, QueryParameter(description="entries before (ISO 8601)")] = None,
        cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> LogPage:
        check_instants(since=since, until=until)
        return await reports.logs(
            task_id,
            status=status,
            account_id=account_id,
            action=action,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )

    @post(
        "/retry-failed", status_code=HTTP_200_OK, summary="Re-queue targets that failed for transient reasons"
    )
    async def retry_failed(
        self, reports: NamedDependency[ReportService], task_id: FromPath[uuid.UUID]
    ) -> RetryFailedResponse:
        return await reports.retry_failed(task_id)

    @get("/events", summary="Live status and progress (Server-Sent Events)", media_type="text/event-stream")
    async def events(
        self,
        reports: NamedDependency[ReportService],
        event_hub: NamedDependency[SkipValidation[TaskEventHub]],
        clock: NamedDependency[SkipValidation[Clock]],
        app_settings: NamedDependency[Settings],
        task_id: FromPath[uuid.UUID],
    ) -> ServerSentEvent:
        await reports.status(task_id)  # 404 now, before the stream starts
        return ServerSentEvent(
            event_stream(
                event_hub,
                clock,
                str(task_id),
                lambda: reports.status(task_id),
                app_settings.sse_heartbeat_seconds,
            )
        )
