"""The composition root: which adapters the engine gets.

By default the sandbox Telegram driver and the built-in sandbox accounts provider (SPEC §3:
``make run`` needs neither Telegram nor the platform). The real Telegram adapter and the
Integration Service client are passed in by whoever wires production; the engine never
falls back to the sandbox silently: a replica configured for Telegram without its adapter
refuses to start.
"""

from __future__ import annotations

import asyncpg

from invite.engine.clock import Clock, RealClock
from invite.engine.service import Engine
from invite.platforms.base import AccountsProvider, StrategyFactory
from invite.platforms.sandbox import SandboxAccounts, SandboxFactory
from invite.settings import Settings


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
