"""The engine alone, without the HTTP API: ``python -m invite.engine``.

A worker replica (settings from the environment, as for ``invite serve``): it migrates the
database, runs the engine with the adapters ``invite.wiring`` chooses from the settings (the
sandbox, or Telegram and the Integration Service), and on SIGTERM or SIGINT stops
gracefully — in-flight actions finish and are recorded, leases are released.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog

from invite.kernel.auth import JwtSecret
from invite.kernel.clock import RealClock
from invite.kernel.db import create_pool, migrate
from invite.kernel.embedded import database
from invite.kernel.settings import Settings, SettingsError, load_settings
from invite.observability.logging import configure_logging
from invite.wiring import build_engine, open_accounts, strategies_from_settings

log = structlog.get_logger("invite.engine")


async def run(settings: Settings) -> None:
    clock = RealClock()
    secret = JwtSecret(settings)  # the service token the Integration Service client signs with
    strategies = await strategies_from_settings(settings, clock)
    async with database(settings) as url, open_accounts(settings, secret) as accounts:
        pool = await create_pool(url, settings, engine=True)
        try:
            async with pool.acquire() as conn:
                await migrate(conn, settings.sql_dir)
            engine = build_engine(pool, settings, clock, strategies=strategies, accounts=accounts)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await engine.start()
            await stop.wait()
            log.info("stopping on signal")
            await engine.stop()
        finally:
            await pool.close()
            await secret.aclose()


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"invite.engine: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
