"""The engine's way to the database: named statements from sql/queries/engine.sql (and the
suppression list's, sql/queries/suppressions.sql, by their full names).

Every call runs inside ``clock.busy()``, so a virtual clock never jumps while the engine
waits on PostgreSQL. A single statement that loses a deadlock or serialization race is
retried; a transaction is the caller's to retry (the recorder keeps its batch).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from invite.kernel.clock import Clock
from invite.kernel.db import queries

RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_ATTEMPTS = 3


class Tx:
    """Named statements on one connection inside one transaction."""

    def __init__(
        self, conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, sql: dict[str, str]
    ) -> None:
        self._conn = conn
        self._sql = sql

    async def fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        return await self._conn.fetch(self._sql[name], *args)

    async def fetchrow(self, name: str, *args: Any) -> asyncpg.Record | None:
        return await self._conn.fetchrow(self._sql[name], *args)

    async def execute(self, name: str, *args: Any) -> str:
        return await self._conn.execute(self._sql[name], *args)


class Store:
    def __init__(self, pool: asyncpg.Pool, clock: Clock, sql_dir: str) -> None:
        self.pool = pool
        self._clock = clock
        every = queries(sql_dir)
        # the engine's own statements by their bare names; the suppression list's by their full
        # names (an opt-out is added exactly as the suppression API adds one)
        self._sql = {key.removeprefix("engine."): every[key] for key in every if key.startswith("engine.")}
        self._sql.update({key: every[key] for key in every if key.startswith("suppressions.")})

    async def fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        for attempt in range(_ATTEMPTS):
            try:
                with self._clock.busy():
                    async with self.pool.acquire() as conn:
                        return await conn.fetch(self._sql[name], *args)
            except RETRYABLE:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def fetchrow(self, name: str, *args: Any) -> asyncpg.Record | None:
        rows = await self.fetch(name, *args)
        return rows[0] if rows else None

    async def fetchval(self, name: str, *args: Any) -> Any:
        row = await self.fetchrow(name, *args)
        return None if row is None else row[0]

    def lane(self) -> Lane:
        return Lane(self.pool, self._clock, self._sql)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        with self._clock.busy():
            async with self.pool.acquire() as conn, conn.transaction():
                yield Tx(conn, self._sql)


class Lane:
    """A connection of its own for one loop's hot statements: no trip through the pool (and its
    reset query) per call. Dropped on a connection error and taken again on the next call."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, sql: dict[str, str]) -> None:
        self._pool = pool
        self._clock = clock
        self._sql = sql
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None

    async def fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        for attempt in range(_ATTEMPTS):
            with self._clock.busy():
                if self._conn is None:
                    self._conn = await self._pool.acquire()
                try:
                    return await self._conn.fetch(self._sql[name], *args)
                except RETRYABLE:
                    if attempt == _ATTEMPTS - 1:
                        raise
                except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
                    await self.close()
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with self._clock.busy():
                try:
                    await self._pool.release(conn)
                except (OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
                    conn.terminate()
