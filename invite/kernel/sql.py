"""The API's way to its named statements: arguments by name, rows as msgspec Structs.

The same style as the engine's repository (invite.engine.repository), on the same Statements
(invite.kernel.db): ``sql.fetch(conn, "tasks.list", TaskRow, user_id=..., limit=...)`` passes
the statement's parameters by the names of its ``-- args:`` line (a name missing, extra or out
of date is a TypeError at once) and builds each row as ``row``, whose fields must be the
statement's columns in order (checked on every call that returns rows).

Every call names where it runs: the pool (a connection per call) or a connection the caller
holds, inside its transaction. Nothing is tried again: an API statement's error is the
request's (the engine's repository is the one with a retry loop).
"""

from __future__ import annotations

from typing import Any, TypeVar

import asyncpg
import msgspec

from invite.kernel.db import DbConnection, check_columns, queries

R = TypeVar("R", bound=msgspec.Struct)

# the pool or a connection: asyncpg runs a statement the same on either
Db = asyncpg.Pool | DbConnection


class Sql:
    """The statements of ``sql_dir``/queries, run by name."""

    def __init__(self, sql_dir: str) -> None:
        self._queries = queries(sql_dir)

    def _bound(self, key: str, args: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        statement = self._queries.statement(key)
        return statement.sql, statement.bind(args)

    async def fetch(self, db: Db, key: str, row: type[R], /, **args: Any) -> list[R]:
        sql, values = self._bound(key, args)
        records = await db.fetch(sql, *values)
        if records:
            check_columns(key, records[0], row)
        return [row(*record) for record in records]

    async def fetchrow(self, db: Db, key: str, row: type[R], /, **args: Any) -> R | None:
        sql, values = self._bound(key, args)
        record = await db.fetchrow(sql, *values)
        if record is None:
            return None
        check_columns(key, record, row)
        return row(*record)

    async def fetchval(self, db: Db, key: str, /, **args: Any) -> Any:
        """The first column of the first row (None when there is no row)."""
        sql, values = self._bound(key, args)
        return await db.fetchval(sql, *values)

    async def execute(self, db: Db, key: str, /, **args: Any) -> str:
        """The statement's status, e.g. ``"DELETE 5000"``."""
        sql, values = self._bound(key, args)
        return await db.execute(sql, *values)
