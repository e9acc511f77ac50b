"""The API's accessor (invite.kernel.sql) on a real database: arguments by the names of a
statement's `-- args:` line, rows as the Structs whose fields are its columns."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
import pytest

from invite.kernel.sql import Sql
from invite.tasks.rows import StoredTask
from tests.conftest import SQL_DIR


class _Wrong(msgspec.Struct, frozen=True):
    status: str
    n: int


async def _task(pool: asyncpg.Pool, sql: Sql) -> StoredTask:
    created = await sql.fetchrow(
        pool,
        "tasks.create",
        StoredTask,
        user_id="tenant-sql",
        platform="telegram",
        task_type="send_messages",
        title="Named arguments",
        description=None,
        target_group_id=None,
        message_template="Hello {first_name}",
        priority=2,
        settings={},
        scheduled_at=None,
        driver="sandbox",
        now=await pool.fetchval("SELECT now()"),
    )
    assert created is not None
    return created


async def test_a_statement_runs_with_its_arguments_by_name_and_returns_structs(pool: asyncpg.Pool) -> None:
    sql = Sql(SQL_DIR)
    created = await _task(pool, sql)
    found = await sql.fetchrow(pool, "tasks.get", StoredTask, task_id=created.id, user_id="tenant-sql")
    assert found is not None
    assert found == created
    assert found.title == "Named arguments"
    assert found.status == "draft"
    assert await sql.fetchrow(pool, "tasks.get", StoredTask, task_id=created.id, user_id="another") is None


@pytest.mark.parametrize(
    "args",
    [
        {"task_id": uuid.uuid4()},  # one missing
        {"task_id": uuid.uuid4(), "tenant": "tenant-sql"},  # a stale name
        {"task_id": uuid.uuid4(), "user_id": "tenant-sql", "limit": 1},  # one too many
    ],
)
async def test_a_call_with_a_wrong_name_is_a_type_error_naming_the_statement(
    pool: asyncpg.Pool, args: dict[str, object]
) -> None:
    with pytest.raises(TypeError, match=r"statement tasks\.get takes task_id, user_id; given"):
        await Sql(SQL_DIR).fetchrow(pool, "tasks.get", StoredTask, **args)


async def test_a_row_read_as_a_struct_of_other_columns_is_a_type_error(pool: asyncpg.Pool) -> None:
    sql = Sql(SQL_DIR)
    created = await _task(pool, sql)
    with pytest.raises(TypeError, match=r"statement tasks\.get returns \('id', 'platform'"):
        await sql.fetchrow(pool, "tasks.get", _Wrong, task_id=created.id, user_id="tenant-sql")
