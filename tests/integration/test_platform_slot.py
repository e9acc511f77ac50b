"""The service in the platform's compose slot: the platform's environment, and a database that
already holds the old invite service's tables (PLATFORM-AS-RUN.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from invite.kernel.db import MigrationFailed, migrate
from invite.kernel.settings import ROOT, SettingsError, load_settings
from tests.conftest import ADMIN_URL, SQL_DIR, _admin, with_database

# The old service's tables, as its Alembic migrations left them in invite_db: integer ids,
# enum types, and the names ours have too.
OLD_SERVICE = """
CREATE TYPE taskstatus AS ENUM ('PENDING', 'IN_PROGRESS', 'COMPLETED', 'FAILED', 'CANCELLED', 'PAUSED');
CREATE TYPE targetstatus AS ENUM ('PENDING', 'INVITED', 'FAILED', 'SKIPPED');
CREATE TABLE invite_tasks (id serial PRIMARY KEY, user_id integer NOT NULL, name varchar(255),
                           status taskstatus NOT NULL DEFAULT 'PENDING');
CREATE TABLE invite_targets (id serial PRIMARY KEY, task_id integer REFERENCES invite_tasks (id),
                             username varchar(255), status targetstatus NOT NULL DEFAULT 'PENDING');
CREATE TABLE invite_task_accounts (id serial PRIMARY KEY, task_id integer REFERENCES invite_tasks (id),
                                   account_id varchar(255));
CREATE TABLE invite_execution_logs (id serial PRIMARY KEY, task_id integer, message text);
INSERT INTO invite_tasks (user_id, name, status) VALUES (42, 'old campaign', 'COMPLETED');
INSERT INTO invite_targets (task_id, username, status) VALUES (1, 'old_person', 'INVITED');
"""
PLATFORM_ENV = {  # what the platform's compose gives its invite service (no DATABASE_URL)
    "POSTGRES_SERVER": "postgres",
    "POSTGRES_PORT": "5432",
    "POSTGRES_USER": "invite_user",
    "POSTGRES_PASSWORD": "p@ss/word",
    "POSTGRES_DB": "invite_db",
    "REDIS_URL": "redis://redis:6379/5",
    "VAULT_ADDR": "http://vault:8201",
    "VAULT_TOKEN": "root",
    "PLATFORM": "content-factory",
}


@asynccontextmanager
async def old_service_database() -> AsyncIterator[str]:
    """A database holding the old service's tables in public, and nothing of ours: its name."""
    name = f"invite_old_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(
            with_database(ADMIN_URL, name), server_settings={"search_path": "public"}
        )
        try:
            await conn.execute(OLD_SERVICE)
        finally:
            await conn.close()
        yield name
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def old_database_url() -> AsyncIterator[str]:
    async with old_service_database() as name:
        yield with_database(ADMIN_URL, name)


def test_the_platforms_environment_names_the_database_and_the_neighbours() -> None:
    settings = load_settings(PLATFORM_ENV)

    assert settings.database_url == "postgresql://invite_user:p%40ss%2Fword@postgres:5432/invite_db"
    assert not settings.embedded_database
    assert (
        settings.api_gateway_url,
        settings.parsing_service_url,
        settings.integration_service_url,
        settings.user_service_url,
    ) == (
        "http://api-gateway:8000",
        "http://parsing-service:8000",
        "http://integration-service:8000",
        "http://user-service:8000",
    )
    assert settings.db_schema == "invite"
    assert settings.telegram_driver == "telegram"  # the platform's accounts, for real
    assert settings.daily_quota == 30  # the platform's allocation limit, before any allocation


def test_set_values_win_over_the_platforms_defaults() -> None:
    settings = load_settings(
        {**PLATFORM_ENV, "DATABASE_URL": "postgresql://db/x", "PARSING_SERVICE_URL": "http://p:9000"}
    )

    assert (settings.database_url, settings.parsing_service_url) == ("postgresql://db/x", "http://p:9000")
    assert load_settings({**PLATFORM_ENV, "DAILY_QUOTA": "20"}).daily_quota == 20


def test_only_without_any_database_setting_is_the_database_embedded() -> None:
    assert load_settings({}).embedded_database
    assert (
        load_settings({"POSTGRES_DB": "invite_db"}).database_url
        == "postgresql://postgres@localhost:5432/invite_db"
    )
    with pytest.raises(SettingsError, match=r"^POSTGRES_PORT: "):
        load_settings({"POSTGRES_SERVER": "postgres", "POSTGRES_PORT": "five"})


async def test_our_tables_go_into_a_schema_of_their_own_beside_the_old_services(
    old_database_url: str,
) -> None:
    conn = await asyncpg.connect(old_database_url)
    try:
        applied = await migrate(conn, SQL_DIR)
        schemas = await conn.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'invite_tasks' ORDER BY 1"
        )
        old_rows = await conn.fetch("SELECT name, status::text FROM public.invite_tasks")
        old_types = await conn.fetchval(
            "SELECT count(*) FROM pg_type WHERE typname IN ('taskstatus', 'targetstatus')"
        )
        # a task of ours is ours: the old table is not read
        await conn.execute(
            "INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id)"
            " VALUES ('42', 'telegram', 'invite_to_group', 't', '@g')"
        )
        old_count = await conn.fetchval("SELECT count(*) FROM public.invite_tasks")
    finally:
        await conn.close()

    assert applied
    assert [r["table_schema"] for r in schemas] == ["invite", "public"]
    assert [tuple(r) for r in old_rows] == [("old campaign", "COMPLETED")]  # untouched
    assert (old_types, old_count) == (2, 1)


def _broken_sql_dir(tmp: Path) -> Path:
    (tmp / "queries").symlink_to(Path(SQL_DIR) / "queries")
    (tmp / "migrations").mkdir()
    (tmp / "migrations" / "0001_schema.sql").write_text("CREATE TABLE invite_tasks (id integer);")
    (tmp / "migrations" / "0002_broken.sql").write_text("CREATE TABLE invite_tasks (id integer);\n")
    return tmp


async def test_a_failing_migration_is_one_line_naming_it(old_database_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(old_database_url)
    try:
        with pytest.raises(MigrationFailed) as caught:
            await migrate(conn, str(_broken_sql_dir(tmp_path)))
        kept = await conn.fetch("SELECT name FROM schema_migrations")
    finally:
        await conn.close()

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("migration 0002_broken failed in schema invite: DuplicateTableError: ")
    assert [r["name"] for r in kept] == ["0001_schema"]  # the failed one left nothing behind


def test_the_command_line_says_it_in_one_line_and_exits_2(old_database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": old_database_url, "SQL_DIR": str(_broken_sql_dir(tmp_path))}

    done = subprocess.run(
        [sys.executable, "-m", "invite", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert done.stderr.startswith(
        "invite: migration 0002_broken failed in schema invite: DuplicateTableError"
    )
    assert done.stderr.count("\n") == 1
