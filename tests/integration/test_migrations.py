"""Migrations: applied once, safe under concurrent start-ups, and the schema equals them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from invite.kernel.db import MigrationChanged, load_migrations, migrate
from tests.conftest import ADMIN_URL, SQL_DIR, _admin, with_database

SCHEMA_SNAPSHOT = """
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = current_schema()
ORDER BY table_name, column_name
"""
INDEX_SNAPSHOT = (
    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname"
)
CONSTRAINT_SNAPSHOT = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2
"""


async def _snapshot(url: str) -> tuple[list[tuple[object, ...]], ...]:
    conn = await asyncpg.connect(url)
    try:
        snapshots = []
        for query in (SCHEMA_SNAPSHOT, INDEX_SNAPSHOT, CONSTRAINT_SNAPSHOT):
            snapshots.append([tuple(r) for r in await conn.fetch(query)])
        return tuple(snapshots)
    finally:
        await conn.close()


@pytest.fixture
async def empty_database_url() -> AsyncIterator[str]:
    name = f"invite_empty_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    yield with_database(ADMIN_URL, name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_migrations_apply_once(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        first = await migrate(conn, SQL_DIR)
        second = await migrate(conn, SQL_DIR)
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    expected = [m.name for m in load_migrations(SQL_DIR)]
    assert first == expected
    assert second == []
    assert [r["name"] for r in rows] == expected


async def test_concurrent_start_ups_migrate_once(empty_database_url: str) -> None:
    conns = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c, SQL_DIR) for c in conns))
    finally:
        for c in conns:
            await c.close()
    applied = [names for names in results if names]
    assert len(applied) == 1, "exactly one start-up applies the migrations"
    assert applied[0] == [m.name for m in load_migrations(SQL_DIR)]


async def test_schema_equals_the_migrations(empty_database_url: str, database_url: str) -> None:
    """The test database (built from the template) has exactly the schema the files give."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, SQL_DIR)
    finally:
        await conn.close()
    assert await _snapshot(empty_database_url) == await _snapshot(database_url)


async def test_an_edited_migration_is_refused(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, SQL_DIR)
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(MigrationChanged):
            await migrate(conn, SQL_DIR)
    finally:
        await conn.close()
