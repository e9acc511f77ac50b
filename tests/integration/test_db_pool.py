"""The pools' connections are ready for our statements as soon as they open: asyncpg looks an
array type up in the catalog the first time a connection meets it, and that query must not
land on a request."""

from __future__ import annotations

import asyncio

import asyncpg

from invite.kernel.db import queries
from tests.conftest import SQL_DIR


async def test_a_new_connection_prepares_every_statement_without_a_catalog_lookup(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ran: list[str] = []
        conn.add_query_logger(lambda record: ran.append(record.query))
        looked_up = {}
        for name, sql in queries(SQL_DIR).items():
            await conn.prepare(sql)  # preparing runs nothing itself: only a type lookup is logged
            await asyncio.sleep(0)  # the logger is called soon, not at once
            if ran:
                looked_up[name] = list(ran)
                ran.clear()
    assert not looked_up, (
        f"add the array types these statements use to invite.kernel.db.ARRAY_TYPES: {sorted(looked_up)}"
    )
