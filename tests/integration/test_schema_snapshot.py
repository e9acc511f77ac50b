"""The committed sql/schema.sql is the schema a database migrated from sql/migrations has.

Two sources: the file is written by ``make schema``, the database here by the session's
migrations; a migration added or edited without ``make schema`` shows as a diff. No pg_dump
on the machine fails the test (CI's postgresql package carries one), it does not skip it.
"""

from __future__ import annotations

import difflib

import pytest

from invite.kernel.schema_dump import dump, schema_file
from tests.conftest import SQL_DIR


async def test_the_committed_schema_is_what_the_migrations_produce(fresh_database_url: str) -> None:
    path = schema_file(SQL_DIR)
    committed = path.read_text(encoding="utf-8")
    migrated = await dump(fresh_database_url)
    if migrated != committed:
        diff = difflib.unified_diff(
            committed.splitlines(keepends=True),
            migrated.splitlines(keepends=True),
            fromfile=f"{path} (committed)",
            tofile="a database migrated from sql/migrations",
        )
        pytest.fail(
            "sql/schema.sql differs from the migrated schema: run make schema and commit it\n"
            + "".join(diff),
            pytrace=False,
        )
