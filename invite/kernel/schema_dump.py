"""The schema snapshot: ``sql/schema.sql``, what the migrations produce, as pg_dump prints it.

``snapshot`` migrates a scratch database on a server (created and dropped here) and dumps our
schema; ``dump`` is that dump of any migrated database, so a test compares a database migrated
from ``sql/migrations`` with the committed file: two sources, not the migrations against
themselves. The dump is ``pg_dump --schema-only`` of our schema alone, less the lines that vary
between runs or pg_dump versions (its banner, version comments, SET lines and the random
``\\restrict`` token), so that the file changes only when the schema does.

pg_dump must be of the server's major version, or newer: several installed (Debian's
``/usr/lib/postgresql/N``, the one on PATH, pgserver's), the server's own is taken.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from invite.kernel.db import migrate
from invite.kernel.embedded import _pgserver
from invite.kernel.settings import DEFAULT_SCHEMA, SettingsError

SCHEMA_FILE = "schema.sql"  # in SQL_DIR
HEADER = "-- The schema sql/migrations produce, written by `make schema`: do not edit by hand.\n"
_VARYING = re.compile(
    r"^(?:--\n-- PostgreSQL database dump(?: complete)?\n--\n"
    r"|-- Dumped (?:from database|by pg_dump) version .*\n"
    r"|SET [a-z_]+ = .*;\n"
    r"|SELECT pg_catalog\.set_config\('search_path', '', false\);\n"
    r"|\\(?:un)?restrict \S+\n)",
    re.MULTILINE,
)
_BLANK_RUNS = re.compile(r"\n{3,}")
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")


class SchemaDumpFailed(SettingsError):
    """No usable pg_dump on this machine, or it failed (a SettingsError: the command line prints
    it as one line)."""


def schema_file(sql_dir: str) -> Path:
    return Path(sql_dir) / SCHEMA_FILE


def normalise(raw: str) -> str:
    """pg_dump's output less what varies between runs and versions, after our header."""
    body = _BLANK_RUNS.sub("\n\n", _VARYING.sub("", raw)).strip("\n")
    return f"{HEADER}\n{body}\n"


async def snapshot(server_url: str, sql_dir: str, schema: str = DEFAULT_SCHEMA) -> str:
    """The schema ``sql_dir``'s migrations produce, from a scratch database on ``server_url``'s
    server (dropped again, also when something fails)."""
    name = f"invite_schema_{uuid.uuid4().hex[:12]}"
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn, sql_dir, schema)
        finally:
            await conn.close()
        return await dump(url, schema)
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def dump(url: str, schema: str = DEFAULT_SCHEMA) -> str:
    """``schema`` of the database at ``url`` as ``sql/schema.sql`` holds it."""
    conn = await asyncpg.connect(url)
    try:
        server_major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    pg_dump = await pg_dump_for(server_major)
    process = await asyncio.create_subprocess_exec(
        pg_dump,
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        f"--schema={schema}",
        _libpq_url(url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise SchemaDumpFailed(f"{pg_dump} failed: " + " ".join(err.decode().split()))
    return normalise(out.decode())


async def pg_dump_for(server_major: int) -> str:
    """The path of a pg_dump of ``server_major``, else of the oldest newer one installed."""
    found: dict[int, str] = {}
    for path in _candidates():
        process = await asyncio.create_subprocess_exec(
            path, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await process.communicate()
        version = _VERSION.search(out.decode())
        if process.returncode == 0 and version:
            found.setdefault(int(version[1]), path)
    usable = sorted(major for major in found if major >= server_major)
    if not usable:
        seen = ", ".join(f"{found[major]} ({major})" for major in sorted(found)) or "none"
        raise SchemaDumpFailed(
            f"no pg_dump of PostgreSQL {server_major} or newer (the server's version) found: "
            f"install postgresql-client-{server_major}; pg_dump found: {seen}"
        )
    return found[usable[0]]


def _candidates() -> list[str]:
    _pgserver()  # imported here without its warning, then its binaries' folder
    from pgserver._commands import POSTGRES_BIN_PATH

    debian = [str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))]
    paths = [*debian, shutil.which("pg_dump"), str(POSTGRES_BIN_PATH / "pg_dump")]
    return [p for p in paths if p is not None and Path(p).is_file()]


def _libpq_url(url: str) -> str:
    """``url`` for libpq, which refuses the ``search_path`` parameter asyncpg takes (schema_url)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
