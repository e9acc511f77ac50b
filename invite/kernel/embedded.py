"""An embedded PostgreSQL (the ``pgserver`` package) for ``make run`` without DATABASE_URL.

Data lives in ``DATA_DIR/pg`` and survives restarts; the server listens on a Unix socket
only and stops when the last process using it exits.

``scratch_server`` is the test suite's: a throwaway server from the same binaries on a TCP
port, for a machine with no PostgreSQL of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from invite.kernel.settings import Settings

PIDS_FILE = ".handle_pids.json"  # pgserver's list of the processes using the server


def _pgserver() -> ModuleType:
    with warnings.catch_warnings():  # pgserver falls back to /tmp without XDG_RUNTIME_DIR: fine here
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver  # imported lazily: only the embedded modes need it
    return pgserver


def _start(data_dir: str) -> Any:
    get_server = _pgserver().get_server
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
    print(
        f"invite: no DATABASE_URL nor POSTGRES_*: an embedded PostgreSQL in {settings.data_dir}",
        file=sys.stderr,
    )
    server = await asyncio.to_thread(_start, settings.data_dir)
    try:
        yield str(server.get_uri())
    finally:
        await asyncio.to_thread(server.cleanup)


@contextmanager
def scratch_server() -> Iterator[str]:
    """A fresh PostgreSQL on a free 127.0.0.1 port, its data deleted when the block ends.

    TCP, not pgserver's Unix socket: tests put relays between the service and the database.
    Started with pgserver's own initdb and pg_ctl; as root, it runs as pgserver's system user
    (PostgreSQL refuses to run as root), made the same way pgserver makes it.
    """
    pg = _pgserver()
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import find_suitable_port

    pgdata = Path(tempfile.mkdtemp(prefix="invite-test-pg-"))
    try:
        user = _server_user(pgdata, POSTGRES_BIN_PATH)
        port = find_suitable_port("127.0.0.1")
        pg.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=pgdata, user=user)
        # fsync off: the data is thrown away; the socket in pgdata keeps /tmp's shared one free
        options = f"-h 127.0.0.1 -p {port} -k {pgdata} -c fsync=off"
        pg.pg_ctl(["-w", "-o", options, "-l", str(pgdata / "log"), "start"], pgdata=pgdata, user=user)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            pg.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user)
    finally:
        shutil.rmtree(pgdata, ignore_errors=True)


def _server_user(pgdata: Path, bin_path: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    import stat

    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists("pgserver")
    assert entry is not None
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(bin_path)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(bin_path, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(bin_path.parent / "lib", readable)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    return "pgserver"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
