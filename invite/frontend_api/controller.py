"""The Mailing page's routes, as its gateway delivers them (``FRONTEND_API_PREFIX``, FRONTEND-CALLS.md).

Errors are our problem details, with ``detail`` saying what the page shows its user: for an
invalid field, the field in the page's own name and the reason.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, Router, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.openapi.spec import Tag
from litestar.params import FromPath, JSONBody, QueryParameter, SkipValidation
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from invite.audience.imports import ImportService, provide_import_service
from invite.audience.schemas import ImportResult
from invite.audience.upload import Uploaded, hang_up_after_413
from invite.frontend_api.multipart import provide_page_upload
from invite.frontend_api.rights import RightsCheck
from invite.frontend_api.schemas import (
    AdminCheck,
    AdminCheckRequest,
    Components,
    DetailedHealth,
    Execution,
    LogEntry,
    PageAccount,
    PageImport,
    PageTask,
    PageTaskCreate,
    PageTaskList,
    PageTaskStatus,
    PageTaskUpdate,
    ParsingImportRequest,
    ParsingTask,
    TaskAccounts,
    TrialRequest,
)
from invite.frontend_api.service import FrontendService, extra_fields
from invite.frontend_api.trial import Answer, TestInvites
from invite.health import READY_TIMEOUT_SECONDS, ready
from invite.kernel.auth import JwtSecret, Tenant
from invite.kernel.clock import Clock
from invite.kernel.http import UpstreamError
from invite.kernel.problems import Problem, invalid
from invite.kernel.settings import Settings
from invite.platforms.base import StrategyFactory
from invite.platforms.parsing import ParsingSource

TAG = "platform frontend"
OPENAPI_TAG = Tag(
    name=TAG,
    description="The platform's own Mailing page (content-factory's frontend) calls these, through its "
    "gateway (`/api/invite/{path}` → `FRONTEND_API_PREFIX/{path}`), with its own field names and "
    "words. They map onto this service's API and share its tasks; new clients should use that API.",
)
# our field names → the page's, in the errors it shows
_PAGE_NAMES = {
    "title": "name",
    "message_template": "invite_message",
    "target_group_id": "settings.group_id",
    "settings.account_ids": "settings.allowed_account_ids",
    "settings.min_pause_seconds": "delay_between_invites",
    "settings.daily_limit_per_account": "max_invites_per_account",
}


def provide_frontend(request: Request[Tenant, Any, Any]) -> FrontendService:
    state = request.app.state  # one dependency, not several: see invite.app
    return FrontendService(state.pool, state.settings, state.clock, request.user, state.accounts_provider)


def provide_rights_check(
    request: Request[Tenant, Any, Any], strategies: NamedDependency[SkipValidation[StrategyFactory]]
) -> RightsCheck:
    state = request.app.state
    return RightsCheck(
        state.pool, state.settings, state.clock, request.user.user_id, state.accounts_provider, strategies
    )


def provide_test_invites(request: Request[Tenant, Any, Any]) -> TestInvites:
    state = request.app.state
    return TestInvites(
        state.pool, state.settings, state.clock, request.user, state.accounts_provider, state.event_hub
    )


def trial_response(request: Request[Any, Any, Any], answer: Answer, now: datetime) -> Response[Any]:
    """200 with the action's answer, 202 while it is under way, or the refusal's problem (with
    Retry-After when a quota, a pause or a cooldown will pass)."""
    if answer.problem is not None:
        problem = page_problem(request, answer.problem)
        if answer.retry_at is not None:
            seconds = max(1, math.ceil((answer.retry_at - now).total_seconds()))
            problem.headers["Retry-After"] = str(seconds)
        return problem
    assert answer.trial is not None
    if answer.trial.state == "done":
        return Response(answer.trial, status_code=HTTP_200_OK)
    location = request.url.path.rstrip("/")
    if not location.endswith(answer.trial.trial_id):  # the POST: where to look later
        location = f"{location}/{answer.trial.trial_id}"
    return Response(answer.trial, status_code=HTTP_202_ACCEPTED, headers={"Location": location})


def page_problem(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The app's problem answer, its fields named as the page names them and listed in ``detail``."""
    if isinstance(exc, Problem):
        response = hang_up_after_413(request, exc)
    else:
        response = request.app.exception_handlers[ValidationException](request, exc)
    body = msgspec.json.decode(response.content)
    params = body.get("invalid-params") or []
    for param in params:
        param["name"] = _PAGE_NAMES.get(param["name"], param["name"])
    if params:
        body["detail"] = "; ".join(f"{p['name']}: {p['reason']}" for p in params)
    return Response(
        msgspec.json.encode(body),
        status_code=response.status_code,
        media_type=response.media_type,
        headers=response.headers,
    )


def _page_import(result: ImportResult, source_name: str | None) -> PageImport:
    counts = result.counts
    reasons = {
        name: n
        for name, n in msgspec.structs.asdict(counts).items()
        if name not in ("rows", "imported", "rejected") and n
    }
    return PageImport(
        message=f"{counts.imported} of {counts.rows} imported",
        imported_count=counts.imported,
        rejected_count=counts.rejected,
        total_rows=counts.rows,
        import_id=str(result.import_id) if result.import_id else None,
        task_id=str(result.task_id),
        source_name=source_name,
        rejected_by_reason=reasons,
    )


TaskId = FromPath[uuid.UUID]
Frontend = NamedDependency[FrontendService]
Imports = NamedDependency[ImportService]
Parsing = NamedDependency[SkipValidation[ParsingSource]]
_FRONTEND = {"frontend": Provide(provide_frontend, sync_to_thread=False)}


class PageTasks(Controller):
    path = "/tasks"
    tags = [TAG]  # noqa: RUF012
    dependencies = {  # noqa: RUF012
        **_FRONTEND,
        "imports": Provide(provide_import_service, sync_to_thread=False),
        "trials": Provide(provide_test_invites, sync_to_thread=False),
    }

    @post("/", summary="Create a task (the page's fields)")
    async def create(
        self, request: Request[Tenant, Any, Any], frontend: Frontend, data: JSONBody[PageTaskCreate]
    ) -> PageTask:
        return await frontend.create(data, extra_fields(await request.json(), PageTaskCreate))

    @get("/", summary="The tenant's tasks, a page at a time")
    async def list_tasks(
        self,
        frontend: Frontend,
        status: Annotated[list[str] | None, QueryParameter(description="pending, running, ...")] = None,
        platform: Annotated[list[str] | None, QueryParameter(description="telegram, ...")] = None,
        page: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
        page_size: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    ) -> PageTaskList:
        return await frontend.list_page(status or [], platform or [], page, page_size)

    @get("/{task_id:uuid}", summary="A task")
    async def read(self, frontend: Frontend, task_id: TaskId) -> PageTask:
        return await frontend.get(task_id)

    @put("/{task_id:uuid}", summary="Edit a task that is not running")
    async def update(
        self,
        request: Request[Tenant, Any, Any],
        frontend: Frontend,
        task_id: TaskId,
        data: JSONBody[PageTaskUpdate],
    ) -> PageTask:
        return await frontend.update(task_id, data, extra_fields(await request.json(), PageTaskUpdate))

    @delete("/{task_id:uuid}", status_code=HTTP_204_NO_CONTENT, summary="Delete a task that is not running")
    async def remove(self, frontend: Frontend, task_id: TaskId) -> None:
        await frontend.delete(task_id)

    @post(
        "/{task_id:uuid}/execute",
        status_code=HTTP_200_OK,
        summary="Start a pending task, resume a paused one",
    )
    async def execute(self, frontend: Frontend, task_id: TaskId) -> Execution:
        return await frontend.execute(task_id)

    @post("/{task_id:uuid}/pause", status_code=HTTP_200_OK, summary="Pause a running task")
    async def pause(self, frontend: Frontend, task_id: TaskId) -> Execution:
        return await frontend.pause(task_id)

    @get("/{task_id:uuid}/status", summary="Progress, targets and timing")
    async def status(self, frontend: Frontend, task_id: TaskId) -> PageTaskStatus:
        return await frontend.status(task_id)

    @get("/{task_id:uuid}/logs", summary="The execution log, newest first, as a list")
    async def logs(
        self,
        frontend: Frontend,
        task_id: TaskId,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=10_000)] = 0,
        status: Annotated[str | None, QueryParameter(max_length=20)] = None,
        action: Annotated[str | None, QueryParameter(max_length=50)] = None,
    ) -> list[LogEntry]:
        return await frontend.logs(task_id, limit=limit, offset=offset, status=status, action=action)

    @get("/{task_id:uuid}/accounts", summary="The task's accounts with their live state")
    async def accounts(self, frontend: Frontend, task_id: TaskId) -> TaskAccounts:
        return await frontend.task_accounts(task_id)

    @post(
        "/{task_id:uuid}/test-invite",
        status_code=HTTP_200_OK,
        summary="One real action for one target with one account, within every quota",
        description="target_id and account_id in the query (or a JSON body); account_id left out: "
        "the task's first connected account. 200: the platform's answer; 202: still under way "
        "after TRIAL_WAIT_SECONDS (it happens once, or not at all: GET the Location); 429 with "
        "Retry-After: a quota, the pause or a cooldown holds; 409: another rule refuses (a quota "
        "of zero, which never passes, too).",
    )
    async def test_invite(
        self,
        request: Request[Tenant, Any, Any],
        trials: NamedDependency[TestInvites],
        clock: NamedDependency[SkipValidation[Clock]],
        task_id: TaskId,
        target_id: Annotated[str | None, QueryParameter(max_length=100)] = None,
        account_id: Annotated[str | None, QueryParameter(min_length=1, max_length=255)] = None,
    ) -> Response[Any]:
        if target_id is None:  # the page's api.ts sends them as a JSON body
            body = await request.body()
            if body.strip():
                try:
                    sent = msgspec.json.decode(body, type=TrialRequest)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise invalid("body", f"target_id and account_id expected: {exc}") from None
                target_id, account_id = sent.target_id, account_id or sent.account_id
        answer = await trials.run(task_id, target_id, account_id)
        return trial_response(request, answer, clock.now())

    @get("/{task_id:uuid}/test-invite/{trial_id:uuid}", summary="A test invite's outcome, later")
    async def test_invite_outcome(
        self,
        request: Request[Tenant, Any, Any],
        trials: NamedDependency[TestInvites],
        clock: NamedDependency[SkipValidation[Clock]],
        task_id: TaskId,
        trial_id: FromPath[uuid.UUID],
    ) -> Response[Any]:
        return trial_response(request, await trials.look(task_id, trial_id), clock.now())

    @post(
        "/check-admin-rights",
        status_code=HTTP_200_OK,
        summary="Which accounts may invite into a group, asked of Telegram now",
        dependencies={"rights": Provide(provide_rights_check, sync_to_thread=False)},
    )
    async def check_admin_rights(
        self, rights: NamedDependency[RightsCheck], data: JSONBody[AdminCheckRequest]
    ) -> AdminCheck:
        return await rights.check(data.group_link)

    @post("/{task_id:uuid}/import/parsing", status_code=HTTP_200_OK, summary="Import a parsing task's people")
    async def import_parsing(
        self, imports: Imports, parsing: Parsing, task_id: TaskId, data: JSONBody[ParsingImportRequest]
    ) -> PageImport:
        result = await imports.from_parsing(parsing, data.parsing_task_id, task_id, dry_run=False)
        return _page_import(result, data.source_name)

    @post(
        "/{task_id:uuid}/import/file",
        status_code=HTTP_200_OK,
        summary="Import people from a file (multipart, whatever the Content-Type header says)",
        request_max_body_size=None,  # provide_page_upload enforces MAX_UPLOAD_BYTES as the body streams in
        dependencies={"upload": Provide(provide_page_upload)},
    )
    async def import_file(self, imports: Imports, upload: Uploaded, task_id: TaskId) -> PageImport:
        result = await imports.from_file(upload, task_id, dry_run=False)
        return _page_import(result, upload.fields.get("source_name"))


@get(
    "/accounts",
    tags=[TAG],
    summary="The tenant's accounts with their live state, as a list",
    dependencies=_FRONTEND,
)
async def page_accounts(frontend: Frontend) -> list[PageAccount]:
    return await frontend.account_list()


@get("/parsing-tasks", tags=[TAG], summary="The tenant's parsing tasks that found people")
async def parsing_tasks(parsing: Parsing, tenant: NamedDependency[Tenant]) -> list[ParsingTask]:
    try:
        found = await parsing.tasks(tenant.user_id)
    except UpstreamError as exc:
        raise Problem(502, "Bad gateway", f"the {exc.service} failed: {exc.detail}") from None
    return [
        ParsingTask(
            id=str(task.task_id),
            platform=task.platform or "telegram",
            status=task.status or "completed",
            result_count=task.total_results,
            created_at=task.created_at,
            link=task.target_url or "",
            title=task.title or "",
        )
        for task in found
        if task.total_results > 0  # nothing to import from the others
    ]


@get("/health", opt={"exclude_from_auth": True}, security=[{}], tags=[TAG], summary="Liveness")
async def page_health() -> dict[str, str]:
    return {"status": "healthy", "service": "invite-service"}


@get(
    "/health/detailed",
    opt={"exclude_from_auth": True},
    security=[{}],
    tags=[TAG],
    summary="The database and Vault, each checked",
)
async def page_health_detailed(
    db_pool: NamedDependency[asyncpg.Pool],
    app_settings: NamedDependency[Settings],
    jwt_secret: NamedDependency[SkipValidation[JwtSecret]],
) -> DetailedHealth:
    try:
        await ready.fn(db_pool=db_pool, app_settings=app_settings)  # our readiness check
        database = "healthy"
    except Problem:
        database = "unhealthy"
    vault = "not_configured"
    if app_settings.vault_addr:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await jwt_secret()
            vault = "healthy"
        except Exception:
            vault = "unhealthy"
    healthy = database == "healthy" and vault != "unhealthy"
    return DetailedHealth(
        status="healthy" if healthy else "degraded",
        service="invite-service",
        components=Components(database=database, vault=vault),
    )


def frontend_router(path: str) -> Router:
    """The page's API at ``path`` (FRONTEND_API_PREFIX)."""
    return Router(
        path=path,
        route_handlers=[page_health, page_health_detailed, PageTasks, page_accounts, parsing_tasks],
        exception_handlers={Problem: page_problem, ValidationException: page_problem},
    )
