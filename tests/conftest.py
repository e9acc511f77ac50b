"""Shared fixtures: a real PostgreSQL, migrated from sql/, fresh for each test session.

A template database is migrated once per session; the session database, and any test that
needs a database of its own (``fresh_database_url``), is a copy of it (CREATE DATABASE ...
TEMPLATE), which takes milliseconds instead of re-running the migrations.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from invite.db import create_pool, migrate
from invite.settings import ROOT, Settings

ADMIN_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SQL_DIR = str(ROOT / "sql")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


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
