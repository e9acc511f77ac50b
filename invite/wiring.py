"""The composition root: which adapters the engine gets.

By default the sandbox Telegram driver and the built-in sandbox accounts provider (SPEC §3:
``make run`` needs neither Telegram nor the platform). Production is chosen by the settings:
``TELEGRAM_DRIVER=telegram`` makes the Telegram adapter (API credentials from Vault, or the
environment), ``INTEGRATION_SERVICE_URL`` the Integration Service client; the process builds
one of each at start-up (``strategies_from_settings``, ``open_accounts``) and hands them to
``build_engine``. The engine never falls back to the sandbox silently: ``build_engine``
without the adapter its settings call for refuses to start.

Routes get the adapters only through their ports (``invite.platforms``), from what the
lifespan puts in ``app.state`` (``accounts_provider``, ``strategies``) and from the providers
here, which ``invite.app`` registers: ``provide_strategies`` and ``provide_parsing``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import asyncpg
import structlog
from litestar.datastructures import State

from invite.engine.service import Engine
from invite.integrations.cache import cache_from_settings
from invite.integrations.integration import integration_from_settings
from invite.integrations.parsing import ParsingClient
from invite.kernel.auth import JwtSecret
from invite.kernel.clock import Clock, RealClock
from invite.kernel.db import create_pool, migrate
from invite.kernel.embedded import database
from invite.kernel.events import TaskEventHub
from invite.kernel.http import UpstreamError
from invite.kernel.problems import Problem
from invite.kernel.secrets import SecretMissing, TelegramCredentials, secrets_from_settings
from invite.kernel.settings import Settings, SettingsError
from invite.platforms.base import AccountsProvider, StrategyFactory
from invite.platforms.parsing import ParsingSource
from invite.platforms.sandbox import SandboxAccounts, SandboxFactory

log = structlog.get_logger(__name__)

SecretProvider = Callable[[], Awaitable[str]]


def build_engine(
    pool: asyncpg.Pool,
    settings: Settings,
    clock: Clock | None = None,
    *,
    strategies: StrategyFactory | None = None,
    accounts: AccountsProvider | None = None,
    events: TaskEventHub | None = None,
) -> Engine:
    clock = clock or RealClock()
    if strategies is None:
        if settings.telegram_driver != "sandbox":
            raise RuntimeError("TELEGRAM_DRIVER=telegram but no Telegram adapter was wired into the engine")
        strategies = SandboxFactory.from_settings(settings, clock)
    if accounts is None:
        if settings.integration_service_url is not None:
            raise RuntimeError(
                "INTEGRATION_SERVICE_URL is set but no Integration Service client was wired in"
            )
        accounts = SandboxAccounts.from_settings(settings)
    return Engine(pool, settings, clock, strategies, accounts, events)


@asynccontextmanager
async def open_accounts(settings: Settings, jwt_secret: SecretProvider) -> AsyncIterator[AccountsProvider]:
    """The process's one accounts provider (GET /accounts and the engine share it), closed on exit:
    the Integration Service client when INTEGRATION_SERVICE_URL is set, else the sandbox's."""
    if not settings.integration_service_url:
        yield SandboxAccounts.from_settings(settings)
        return
    cache = cache_from_settings(settings)
    client = integration_from_settings(settings, jwt_secret, cache)
    assert client is not None  # the URL is set
    try:
        yield client
    finally:
        await client.aclose()
        await cache.aclose()


async def strategies_from_settings(settings: Settings, clock: Clock) -> StrategyFactory:
    """The Telegram adapter for TELEGRAM_DRIVER=telegram, else the sandbox driver."""
    if settings.telegram_driver == "sandbox":
        return SandboxFactory.from_settings(settings, clock)
    from invite.platforms.telegram import TelegramFactory  # pyrogram takes seconds to import: only here

    credentials = await telegram_credentials(settings)
    return TelegramFactory.from_settings(settings, api_id=credentials.api_id, api_hash=credentials.api_hash)


async def provide_strategies(state: State) -> StrategyFactory:
    """The engine's adapters, for a route that drives an account itself (check-admin-rights); on a
    replica without an engine, made here once, the same way (503 when its settings fall short)."""
    strategies: StrategyFactory | None = getattr(state, "strategies", None)
    if strategies is None:
        try:
            strategies = state.strategies = await strategies_from_settings(state.settings, state.clock)
        except SettingsError as exc:
            raise Problem(503, "Service unavailable", f"no Telegram client on this replica: {exc}") from None
    return strategies


def provide_parsing(state: State) -> ParsingSource:
    """The Parsing Service client for a request, on the app's HTTP client (its timeout is
    HTTP_TIMEOUT_SECONDS); 503 when PARSING_SERVICE_URL is not set."""
    settings: Settings = state.settings
    if settings.parsing_service_url is None:
        raise Problem(
            503, "Service unavailable", "the Parsing Service is not configured (PARSING_SERVICE_URL)"
        )
    return ParsingClient(
        settings.parsing_service_url,
        state.jwt_secret,  # the app's JwtSecret: looked up per call, so a rotation lands
        retries=settings.http_retries,
        max_results=settings.parsing_max_results,
        clock=state.clock,
        client=state.http,
    )


async def telegram_credentials(settings: Settings) -> TelegramCredentials:
    """api_id/api_hash from Vault (kv/integration-service) or the environment; SettingsError naming
    what is missing."""
    secrets = secrets_from_settings(settings)
    try:
        return await secrets.telegram_credentials()
    except SecretMissing as exc:
        raise SettingsError(f"TELEGRAM_DRIVER=telegram: {exc}") from None
    except UpstreamError as exc:
        raise SettingsError(f"TELEGRAM_DRIVER=telegram: no Telegram API credentials, {exc}") from None
    finally:
        await secrets.aclose()


async def check_credentials(settings: Settings, *, engine: bool) -> None:
    """Read what start-up needs before the server starts (the JWT secret; Telegram's API
    credentials when ``engine`` runs on the real driver), so that a missing one stops the
    process with one line (SettingsError) rather than a traceback from the ASGI lifespan."""
    jwt_secret = JwtSecret(settings)
    try:
        await jwt_secret()
    except UpstreamError as exc:
        raise SettingsError(f"JWT_SECRET: {exc}") from None
    finally:
        await jwt_secret.aclose()
    if engine and settings.telegram_driver == "telegram":
        await telegram_credentials(settings)


@dataclass(frozen=True)
class Replica:
    """What one process runs on, opened by ``open_replica``."""

    pool: asyncpg.Pool | None  # the API's (None on the engine-only worker)
    engine_pool: asyncpg.Pool | None  # the engine's own (None without an engine)
    accounts: AccountsProvider  # the process's one: GET /accounts and the engine share it
    strategies: StrategyFactory | None  # the engine's adapters (None without an engine)
    events: TaskEventHub  # the process's one LISTEN connection; not started yet
    engine: Engine | None  # built, not started


@asynccontextmanager
async def open_replica(
    settings: Settings, clock: Clock, jwt_secret: SecretProvider, *, api: bool
) -> AsyncIterator[Replica]:
    """The one start-up sequence of the app (``api``) and of the engine-only worker, undone in
    reverse on exit: the Telegram adapter first (missing credentials stop start-up before any
    database work), the database (DATABASE_URL, or the embedded server) migrated into
    DB_SCHEMA, the pools, the accounts provider, the LISTEN hub, and the engine — on the worker
    always, in the app when ENGINE_ENABLED. The caller starts the hub, then the engine, and
    stops them in reverse order."""
    with_engine = settings.engine_enabled or not api
    strategies = await strategies_from_settings(settings, clock) if with_engine else None
    async with database(settings) as url, AsyncExitStack() as opened:
        first = await create_pool(url, settings, engine=not api)
        opened.push_async_callback(first.close)
        async with first.acquire() as conn:
            applied = await migrate(conn, settings.sql_dir, settings.db_schema)
        log.info("database ready", embedded=settings.embedded_database, migrations_applied=applied)
        engine_pool = first if not api else None
        if api and with_engine:
            engine_pool = await create_pool(url, settings, engine=True)
            opened.push_async_callback(engine_pool.close)
        accounts = await opened.enter_async_context(open_accounts(settings, jwt_secret))
        events = TaskEventHub(settings, clock, connect=functools.partial(asyncpg.connect, url))
        engine = None
        if engine_pool is not None:
            engine = build_engine(
                engine_pool, settings, clock, strategies=strategies, accounts=accounts, events=events
            )
        yield Replica(
            pool=first if api else None,
            engine_pool=engine_pool,
            accounts=accounts,
            strategies=strategies,
            events=events,
            engine=engine,
        )
