"""What every bench creates on a shared server, dropped again — also when the run is interrupted.

``scratch_database`` makes a database (migrated from sql/ unless asked not to) and drops it on
the way out; ``run_cleanly`` is ``asyncio.run`` that turns SIGTERM and SIGHUP into the cancellation
that Ctrl-C already is, so a bench stopped by ``kill``, ``timeout`` or a closed terminal still
runs its ``finally`` blocks and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from invite.kernel.db import migrate, schema_url

SQL_DIR = str(Path(__file__).resolve().parent.parent / "sql")
T = TypeVar("T")


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _admin(admin_url: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(admin_url: str, prefix: str, migrated: bool = True) -> AsyncIterator[str]:
    """The URL of a new database named ``prefix_<random>`` on ``admin_url``'s server, dropped on exit;
    once migrated, its connections search our tables' schema."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    url = with_database(admin_url, name)
    if migrated:
        url = schema_url(url)
    try:
        if migrated:
            conn = await asyncpg.connect(url)
            try:
                await migrate(conn, SQL_DIR)
            finally:
                await conn.close()
        yield url
    finally:
        # shielded: a second Ctrl-C while dropping must not leave the database half-way
        await asyncio.shield(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run_cleanly(
    main: Coroutine[Any, Any, T], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
) -> T:
    """``asyncio.run(main)``, SIGTERM and SIGHUP cancelling ``main`` as SIGINT does.

    Stopped by one of them, the process exits with 128 + the signal's number once ``main``
    has unwound, as a shell reports a process that signal ended.
    """
    received: list[int] = []

    async def cancellable() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(signum: int) -> None:
            received.append(signum)
            task.cancel()

        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stop, signum)
        return await main

    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(cancellable())
    except asyncio.CancelledError:
        if received:
            raise SystemExit(128 + received[0]) from None
        raise
