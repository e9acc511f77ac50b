"""HTTP endpoints of tasks: CRUD, list, status and the customer's state changes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from invite.kernel.auth import Tenant
from invite.kernel.problems import invalid
from invite.reports.schemas import TaskProgress
from invite.reports.service import ReportService, provide_report_service
from invite.tasks.schemas import (
    PRIORITY_NAMES,
    InviteTaskCreate,
    InviteTaskResponse,
    InviteTaskUpdate,
    Platform,
    TaskListResponse,
    TaskType,
)
from invite.tasks.service import TaskService
from invite.tasks.states import Action, TaskStatus


def provide_task_service(request: Request[Tenant, Any, Any]) -> TaskService:
    state = request.app.state  # one dependency, not four: see invite.app
    return TaskService(state.pool, state.settings, state.clock, request.user)


def _priority_filter(value: str | None) -> int | None:
    if value is None:
        return None
    if value.upper() in PRIORITY_NAMES:
        return PRIORITY_NAMES[value.upper()]
    if value in ("1", "2", "3"):
        return int(value)
    raise invalid("priority", "must be 1, 2, 3 or HIGH, NORMAL, LOW")


class TaskController(Controller):
    path = "/tasks"
    tags = ["tasks"]  # noqa: RUF012
    dependencies = {"tasks": Provide(provide_task_service, sync_to_thread=False)}  # noqa: RUF012

    @post("/", summary="Create a task (draft)")
    async def create(
        self, tasks: NamedDependency[TaskService], data: JSONBody[InviteTaskCreate]
    ) -> InviteTaskResponse:
        return await tasks.create(data)

    @get("/", summary="List tasks, newest first")
    async def list_tasks(
        self,
        tasks: NamedDependency[TaskService],
        status: FromQuery[TaskStatus | None] = None,
        task_type: FromQuery[TaskType | None] = None,
        platform: FromQuery[Platform | None] = None,
        priority: Annotated[str | None, QueryParameter(description="1|2|3 or HIGH|NORMAL|LOW")] = None,
        cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> TaskListResponse:
        return await tasks.list_page(
            status=status,
            task_type=task_type,
            platform=platform,
            priority=_priority_filter(priority),
            cursor=cursor,
            limit=limit,
        )

    @get("/{task_id:uuid}", summary="A task")
    async def read(
        self, tasks: NamedDependency[TaskService], task_id: FromPath[uuid.UUID]
    ) -> InviteTaskResponse:
        return await tasks.get(task_id)

    @put("/{task_id:uuid}", summary="Edit a task that is not running")
    async def update(
        self,
        tasks: NamedDependency[TaskService],
        task_id: FromPath[uuid.UUID],
        data: JSONBody[InviteTaskUpdate],
    ) -> InviteTaskResponse:
        return await tasks.update(task_id, data)

    @delete("/{task_id:uuid}", status_code=HTTP_204_NO_CONTENT, summary="Delete a task that is not running")
    async def remove(self, tasks: NamedDependency[TaskService], task_id: FromPath[uuid.UUID]) -> None:
        await tasks.delete(task_id)

    @get(
        "/{task_id:uuid}/status",
        summary="Progress: targets by state, the last hour's rate, accounts by state, ETA",
        dependencies={"reports": Provide(provide_report_service, sync_to_thread=False)},
    )
    async def status(
        self, reports: NamedDependency[ReportService], task_id: FromPath[uuid.UUID]
    ) -> TaskProgress:
        return await reports.progress(task_id)

    @post("/{task_id:uuid}/start", status_code=HTTP_200_OK, summary="Start (or schedule) a draft task")
    async def start(
        self, tasks: NamedDependency[TaskService], task_id: FromPath[uuid.UUID]
    ) -> InviteTaskResponse:
        return await tasks.apply(task_id, Action.START)

    @post("/{task_id:uuid}/pause", status_code=HTTP_200_OK, summary="Pause a running or scheduled task")
    async def pause(
        self, tasks: NamedDependency[TaskService], task_id: FromPath[uuid.UUID]
    ) -> InviteTaskResponse:
        return await tasks.apply(task_id, Action.PAUSE)

    @post("/{task_id:uuid}/resume", status_code=HTTP_200_OK, summary="Resume a paused task")
    async def resume(
        self, tasks: NamedDependency[TaskService], task_id: FromPath[uuid.UUID]
    ) -> InviteTaskResponse:
        return await tasks.apply(task_id, Action.RESUME)

    @post("/{task_id:uuid}/cancel", status_code=HTTP_200_OK, summary="Cancel a task for good")
    async def cancel(
        self, tasks: NamedDependency[TaskService], task_id: FromPath[uuid.UUID]
    ) -> InviteTaskResponse:
        return await tasks.apply(task_id, Action.CANCEL)
