"""The composition root: which adapters the engine gets.

By default the sandbox Telegram driver and the built-in sandbox accounts provider (SPEC §3:
``make run`` needs neither Telegram nor the platform). Production is chosen by the settings:
``TELEGRAM_DRIVER=telegram`` makes the Telegram adapter (API credentials from Vault, or the
environment), ``INTEGRATION_SERVICE_URL`` the Integration Service client; the process builds
one of each at start-up (``strategies_from_settings``, ``open_accounts``) and hands them to
``build_engine``. The engine never falls back to the sandbox silently: ``build_engine``
without the adapter its settings call for refuses to start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg

from invite.engine.service import Engine
from invite.integrations.cache import cache_from_settings
from invite.integrations.integration import integration_from_settings
from invite.kernel.auth import JwtSecret
from invite.kernel.clock import Clock, RealClock
from invite.kernel.http import UpstreamError
from invite.kernel.secrets import SecretMissing, TelegramCredentials, secrets_from_settings
from invite.kernel.settings import Settings, SettingsError
from invite.platforms.base import AccountsProvider, StrategyFactory
from invite.platforms.sandbox import SandboxAccounts, SandboxFactory

SecretProvider = Callable[[], Awaitable[str]]


def build_engine(
    pool: asyncpg.Pool,
    settings: Settings,
    clock: Clock | None = None,
    *,
    strategies: StrategyFactory | None = None,
    accounts: AccountsProvider | None = None,
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
    return Engine(pool, settings, clock, strategies, accounts)


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
