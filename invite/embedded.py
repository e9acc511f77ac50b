"""An embedded PostgreSQL (the ``pgserver`` package) for ``make run`` without DATABASE_URL.

Data lives in ``DATA_DIR/pg`` and survives restarts; the server listens on a Unix socket
only and stops when the last process using it exits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from invite.settings import Settings


def _start(data_dir: str) -> str:
    from pgserver.postgres_server import get_server  # imported lazily: only this mode needs it

    pgdata = Path(data_dir).resolve() / "pg"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return str(get_server(pgdata, cleanup_mode="stop").get_uri())


async def embedded_database_url(settings: Settings) -> str:
    """Start (or join) the embedded server and return its connection URL."""
    return await asyncio.to_thread(_start, settings.data_dir)


async def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded server's URL when it is unset."""
    if settings.database_url is not None:
        return settings.database_url
    return await embedded_database_url(settings)
