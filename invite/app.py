"""The Litestar application: routes, dependencies, auth, error shape and lifespan.

``create_app()`` is the one factory (uvicorn, tests and the CLI use it). The lifespan opens
the database (DATABASE_URL, or an embedded PostgreSQL), migrates it (``invite.wiring.open_replica``,
the start-up the engine-only worker shares), and then starts the background services; it stops
them in reverse order on shutdown. The engine gets a pool of its
own (``engine_pool``), so a request never waits for a connection behind it.

Every controller gets its feature's service the same way: a ``provide_<service>(request)``
beside the service (or in the controller, when only it uses it) builds it from
``request.app.state`` and ``request.user``, registered in the controller's ``dependencies``, and
the handlers take it as ``NamedDependency[...]``. One provider reading the request, not several
dependencies: Litestar resolves several dependencies of one level in a task group, a task each,
on every request (~13 % of a /status request's CPU in a profile). ``app.state`` holds
``settings``, ``clock``, ``pool``, ``http`` (a shared httpx.AsyncClient), ``jwt_secret``,
``verified_tokens`` and ``accounts_provider`` (the process's one, an AccountsProvider: see
``invite.wiring``). Handlers may also take, from this app, ``db_pool`` (asyncpg.Pool),
``tenant`` (Tenant, from the bearer token), ``app_settings`` (Settings), ``clock`` (Clock),
``jwt_secret`` (JwtSecret) and the adapters a route drives itself, as their ports:
``strategies`` (StrategyFactory) and ``parsing`` (ParsingSource); mark the ones that are not
plain data ``SkipValidation[...]``. Features never build an adapter: only ``invite.wiring``
does. Raise ``invite.kernel.problems.Problem`` for client errors.
"""

from __future__ import annotations

import gc
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any, Protocol

import asyncpg
import httpx
import msgspec
import structlog
from litestar import Litestar, Request, Response, Router
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.types import ControllerRouterHandler

from invite.accounts.controller import AccountsController
from invite.audience.controller import ImportController
from invite.frontend_api.controller import OPENAPI_TAG, frontend_router
from invite.health import health, ready, root_health
from invite.kernel.auth import IdentityResolver, JwtSecret, Tenant, VerifiedTokens, jwt_auth
from invite.kernel.clock import Clock, RealClock
from invite.kernel.http import UpstreamError
from invite.kernel.problems import InvalidParam, Problem, ProblemDetails
from invite.kernel.settings import Settings, SettingsError, load_settings
from invite.kernel.shutdown import Drain
from invite.observability.logging import configure_logging
from invite.observability.request_context import RequestContextMiddleware, echo_request_id
from invite.observability.scrape import metrics
from invite.openapi import docs_config
from invite.reports.controller import ReportController
from invite.reports.gauges import FleetGauges
from invite.reports.retention import Retention
from invite.suppressions.controller import SuppressionController
from invite.tasks.controller import TaskController
from invite.wiring import Replica, open_replica, provide_parsing, provide_strategies

log = structlog.get_logger(__name__)

# Every API controller, mounted under settings.api_prefix. Add yours here, one line each.
API_HANDLERS: list[ControllerRouterHandler] = [
    health,
    ready,
    AccountsController,
    TaskController,
    ReportController,
    ImportController,
    SuppressionController,
]

# Outside the prefix and without auth: Prometheus scrapes this.
ROOT_HANDLERS: list[ControllerRouterHandler] = [metrics, root_health]

# PostgreSQL gone or refusing connections: the client should retry later, not fix its request.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.ConnectionDoesNotExistError,
    ConnectionError,
    TimeoutError,
)

# Text PostgreSQL cannot store (NUL characters, as text or as \u0000 in jsonb): the client's
# input, wherever a field without its own check let it through.
UNSTORABLE_TEXT: tuple[type[Exception], ...] = (
    asyncpg.CharacterNotInRepertoireError,
    asyncpg.UntranslatableCharacterError,
)


class BackgroundService(Protocol):
    """A long-running part of the process (the engine): started after the database is ready."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def background_services(state: State, replica: Replica) -> list[BackgroundService]:
    """What runs beside the API, in the order it starts: the LISTEN hub first (the engine and the
    event streams hear through it), the engine last (started after the rest, stopped first)."""
    services: list[BackgroundService] = [
        replica.events,
        FleetGauges(state.pool, state.settings, state.clock),
        Retention(state.pool, state.settings, state.clock),
    ]
    if replica.engine is not None:
        services.append(replica.engine)
    return services


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Litestar:
    settings = settings or load_settings()
    configure_logging(settings)
    if settings.frontend_api_prefix.rstrip("/") == settings.api_prefix.rstrip("/"):
        raise SettingsError(
            "FRONTEND_API_PREFIX: must differ from API_PREFIX (the two APIs never share a path)"
        )
    auth = jwt_auth(exclude=["^/docs", "^/metrics$"])
    return Litestar(
        route_handlers=[
            Router(path=settings.api_prefix, route_handlers=API_HANDLERS),
            frontend_router(settings.frontend_api_prefix),  # the platform's Mailing page
            *ROOT_HANDLERS,
        ],
        on_app_init=[auth.on_app_init, _outermost_request_context],
        lifespan=[_lifespan],
        state=State(
            {
                "settings": settings,
                "clock": clock or RealClock(),
                "jwt_secret": JwtSecret(settings),
                "verified_tokens": VerifiedTokens(),
            }
        ),
        dependencies={
            # Litestar reports a body field's error as a 500 when the field shares a dependency's
            # name (e.g. a task's "settings"): keep these names unlike any request field.
            "app_settings": Provide(_settings, sync_to_thread=False),
            "clock": Provide(_clock, sync_to_thread=False),
            "db_pool": Provide(_db_pool, sync_to_thread=False),
            "tenant": Provide(_tenant, sync_to_thread=False),
            "jwt_secret": Provide(_jwt_secret, sync_to_thread=False),
            # the adapters a route drives itself, through their ports (see invite.wiring)
            "strategies": Provide(provide_strategies),
            "parsing": Provide(provide_parsing, sync_to_thread=False),
        },
        exception_handlers={
            Problem: _problem_response,
            ValidationException: _validation_response,
            NotAuthorizedException: _unauthorized_response,
            HTTPException: _http_response,
            UpstreamError: _upstream_response,
            RecursionError: _too_deep_response,
            **dict.fromkeys(DATABASE_UNAVAILABLE, _database_unavailable_response),
            **dict.fromkeys(UNSTORABLE_TEXT, _unstorable_text_response),
            Exception: _internal_error_response,
        },
        before_send=[echo_request_id],
        logging_config=None,  # configure_logging() owns logging
        openapi_config=docs_config(
            title="Invite Service",
            version="1",
            description="Outreach campaigns on Telegram within the platform's limits. "
            "Errors are RFC 9457 problem details (application/problem+json).",
            tags=[OPENAPI_TAG],
        ),
    )


def _outermost_request_context(config: AppConfig) -> AppConfig:
    # after the JWT middleware was inserted first: the request context must wrap it
    config.middleware.insert(0, RequestContextMiddleware())
    return config


@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    state = app.state
    settings: Settings = state.settings
    await state.jwt_secret()  # a missing secret stops start-up here, not at the first request
    try:
        async with (
            open_replica(settings, state.clock, state.jwt_secret, api=True) as replica,
            httpx.AsyncClient(timeout=settings.http_timeout_seconds) as http,
        ):
            state.strategies = replica.strategies
            state.pool = replica.pool
            if replica.engine_pool is not None:
                state.engine_pool = replica.engine_pool
            state.accounts_provider = replica.accounts  # GET /accounts and the engine share it
            state.event_hub = replica.events  # GET /tasks/{id}/events reads it
            state.http = http
            state.identity = IdentityResolver(settings, state.jwt_secret, http)
            async with _running(state, background_services(state, replica)), _frozen_heap():
                yield
    finally:
        await state.jwt_secret.aclose()


# Collect the young generation after this many new container objects instead of Python's 700.
YOUNG_GENERATION = 10_000


@asynccontextmanager
async def _frozen_heap() -> AsyncIterator[None]:
    """What start-up built (modules, routes, the engine's loops) lives as long as the process: out of
    the collector's sight, a full collection walks only what came later. Each full pass used to
    stop the event loop for ~100 ms, the worst of the API's latency under the engine's load.

    What a request or an action allocates dies with it and makes no cycles, but a burst of them
    passed Python's young-generation threshold ~15 times a second under the engine's load, each
    collection stopping the loop ~1 ms and finding nothing; with YOUNG_GENERATION they are mostly
    freed before a collection starts (2 in 30 s instead of 471 in bench/api.py)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@asynccontextmanager
async def _running(state: State, services: list[BackgroundService]) -> AsyncIterator[None]:
    """Start the services in order; on the way out (or at SIGTERM, see invite.kernel.shutdown) the one
    drain stops them in reverse order, within SHUTDOWN_TIMEOUT_SECONDS."""
    started: list[BackgroundService] = []
    state.drain = Drain(state.settings.shutdown_timeout_seconds, on_begin=state.event_hub.close_streams)
    state.drain.serve(started)
    try:
        for service in services:
            await service.start()
            started.append(service)
        yield
    finally:
        await state.drain.finish()


# --- dependencies ---------------------------------------------------------------------------


def _settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def _clock(state: State) -> Clock:
    clock: Clock = state.clock
    return clock


def _db_pool(state: State) -> asyncpg.Pool:
    pool: asyncpg.Pool = state.pool
    return pool


def _tenant(request: Request[Tenant, Any, Any]) -> Tenant:
    return request.user


def _jwt_secret(state: State) -> JwtSecret:
    secret: JwtSecret = state.jwt_secret
    return secret


# --- errors as RFC 9457 problem details ------------------------------------------------------

_MSGSPEC_ERROR = re.compile(r"^(?P<reason>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(r"(?:missing required|unknown) field `(?P<name>[^`]+)`")


def problem_response(
    request: Request[Any, Any, Any], details: ProblemDetails, headers: dict[str, str] | None = None
) -> Response[bytes]:
    details.instance = request.url.path
    body = msgspec.to_builtins(details)
    # extension members sit at the top level, never over a standard member (RFC 9457 §3.1)
    body = {**(body.pop("extra", None) or {}), **body}
    return Response(
        msgspec.json.encode(body),
        status_code=details.status,
        media_type="application/problem+json",
        headers=headers,
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _problem_response(request: Request[Any, Any, Any], exc: Problem) -> Response[bytes]:
    return problem_response(request, exc.details())


def invalid_param(message: str, key: str = "") -> InvalidParam:
    """A msgspec error ("<reason> - at `$.a.b`", or a reason plus the key Litestar saw) as a field."""
    match = _MSGSPEC_ERROR.match(message)
    assert match is not None  # the pattern matches any text
    reason = match["reason"]
    path = match["path"] or key
    path = "" if path in ("data", "body") else path.removeprefix("data.")
    named = _NAMED_FIELD.search(reason)
    if named:
        path = f"{path}.{named['name']}" if path else named["name"]
    return InvalidParam(path or "body", reason)


def _too_deep_response(request: Request[Any, Any, Any], exc: RecursionError) -> Response[bytes]:
    """A body nested deeper than the decoder recurses (JSON 100,000 levels deep): the client's error."""
    details = ProblemDetails(
        title="Bad Request", status=400, detail="the request body is nested too deeply to read"
    )
    return problem_response(request, details)


def _validation_response(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    items = exc.extra if isinstance(exc.extra, list) else []
    params = [
        invalid_param(str(item["message"]), str(item.get("key") or ""))
        for item in items
        if isinstance(item, dict) and "message" in item
    ] or [invalid_param(exc.detail)]
    details = ProblemDetails(
        title="Invalid request", status=422, detail="the request is not valid", invalid_params=params
    )
    return problem_response(request, details)


def _unauthorized_response(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[bytes]:
    return problem_response(
        request,
        ProblemDetails(
            title="Unauthorized", status=401, detail=exc.detail or "a valid bearer token is required"
        ),
        headers={"WWW-Authenticate": 'Bearer realm="invite"'},
    )


def _http_response(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if exc.status_code == 400 and " - at `$" in exc.detail:  # a body msgspec could not decode
        param = invalid_param(exc.detail)
        details = ProblemDetails(
            title="Invalid request", status=422, detail=param.reason, invalid_params=[param]
        )
        return problem_response(request, details)
    if exc.status_code >= 500:
        log.error("server error", path=request.url.path, exc_info=exc)
    headers = dict(exc.headers or {})
    return problem_response(
        request,
        ProblemDetails(title=_title(exc.status_code), status=exc.status_code, detail=exc.detail),
        headers,
    )


def _upstream_response(request: Request[Any, Any, Any], exc: UpstreamError) -> Response[bytes]:
    details = ProblemDetails(
        title="Service unavailable", status=503, detail=f"{exc.service} is not answering"
    )
    return problem_response(request, details, headers={"Retry-After": "5"})


def _database_unavailable_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.warning("database unavailable", error=type(exc).__name__)
    details = ProblemDetails(title="Service unavailable", status=503, detail="the database is not available")
    return problem_response(request, details, headers={"Retry-After": "5"})


def _unstorable_text_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.warning("unstorable text in a request", error=type(exc).__name__)
    reason = "text must not contain NUL (\\u0000) characters"
    details = ProblemDetails(
        title="Invalid request",
        status=422,
        detail=reason,
        invalid_params=[InvalidParam("body", reason)],
    )
    return problem_response(request, details)


def _internal_error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error", path=request.url.path, exc_info=exc)
    details = ProblemDetails(
        title="Internal Server Error", status=500, detail="something went wrong on our side"
    )
    return problem_response(request, details)
