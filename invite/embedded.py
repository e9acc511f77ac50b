"""An embedded PostgreSQL (the ``pgserver`` package) for ``make run`` without DATABASE_URL.

Data lives in ``DATA_DIR/pg`` and survives restarts; the server listens on a Unix socket
only and stops when the last process using it exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from invite.settings import Settings

PIDS_FILE = ".handle_pids.json"  # pgserver's list of the processes using the server


def _start(data_dir: str) -> Any:
    with warnings.catch_warnings():  # pgserver falls back to /tmp without XDG_RUNTIME_DIR: fine here
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from pgserver.postgres_server import get_server  # imported lazily: only this mode needs it

    pgdata = Path(data_dir).resolve() / "pg"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_users(pgdata)
    return get_server(pgdata, cleanup_mode="stop")


def _forget_dead_users(pgdata: Path) -> None:
    # pgserver stops the server when the last process using it exits, counting users in this
    # file; a process killed before its exit hooks ran stays listed and the server never stops.
    users = pgdata / PIDS_FILE
    if users.exists():
        alive = [pid for pid in json.loads(users.read_text()) if _alive(pid)]
        users.write_text(json.dumps(alive))


async def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded server's URL (starting it if needed; it is not stopped here)."""
    if settings.database_url is not None:
        return settings.database_url
    server = await asyncio.to_thread(_start, settings.data_dir)
    return str(server.get_uri())


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """DATABASE_URL, or the URL of the embedded server while it is needed.

    The embedded server is stopped on exit unless another process still uses it (pgserver's
    own exit hook does not run when uvicorn ends the process by re-raising SIGTERM).
    """
    if settings.database_url is not None:
        yield settings.database_url
        return
    server = await asyncio.to_thread(_start, settings.data_dir)
    try:
        yield str(server.get_uri())
    finally:
        await asyncio.to_thread(server.cleanup)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
