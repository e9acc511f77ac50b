"""The engine alone, without the HTTP API: ``python -m invite.engine``.

A worker replica (settings from the environment, as for ``invite serve``): it starts as the app
does (``invite.wiring.open_replica``: the adapters the settings choose — the sandbox, or Telegram
and the Integration Service —, the database migrated, the LISTEN hub), runs the engine, and on
SIGTERM or SIGINT stops gracefully — in-flight actions finish and are recorded, leases are
released.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog

from invite.kernel.auth import JwtSecret
from invite.kernel.clock import RealClock
from invite.kernel.settings import Settings, SettingsError, load_settings
from invite.observability.logging import configure_logging
from invite.wiring import open_replica

log = structlog.get_logger("invite.engine")


async def run(settings: Settings) -> None:
    clock = RealClock()
    secret = JwtSecret(settings)  # the service token the Integration Service client signs with
    try:
        async with open_replica(settings, clock, secret, api=False) as replica:
            assert replica.engine is not None  # a worker always runs its engine
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await replica.events.start()
            try:
                await replica.engine.start()
                await stop.wait()
                log.info("stopping on signal")
                await replica.engine.stop()
            finally:
                await replica.events.stop()
    finally:
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
