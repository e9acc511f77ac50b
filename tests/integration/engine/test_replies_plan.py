"""A poll's replies are matched to their targets by index probes: with 100k targets in the
account's message task, mark_replied and mark_opted_out (through invite_reply_targets, inlined)
read invite_targets only by its unique (task_id, identifier_key) index, never the table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from invite.kernel.db import queries
from tests.conftest import SQL_DIR

SQL = queries(SQL_DIR)
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _rolled_back(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...], rows: bool = False) -> Any:
    """The statement's answer (its rows, or its first value), its writes undone."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        return await conn.fetch(sql, *args) if rows else await conn.fetchval(sql, *args)
    finally:
        await transaction.rollback()


@pytest.mark.parametrize("statement", ["replies.mark_replied", "replies.mark_opted_out"])
async def test_replies_are_matched_through_the_unique_index_at_100k(
    fresh_database_url: str, statement: str
) -> None:
    conn = await asyncpg.connect(fresh_database_url)
    try:
        task = await conn.fetchval(
            """INSERT INTO invite_tasks (user_id, platform, task_type, title, message_template, status)
               VALUES ('t', 'telegram', 'send_messages', 'plan', 'Hi', 'running') RETURNING id"""
        )
        await conn.execute("INSERT INTO invite_accounts (id, user_id) VALUES ('acc', 't')")
        await conn.execute(
            "INSERT INTO invite_task_accounts (task_id, account_id, platform) VALUES ($1, 'acc', 'telegram')",
            task,
        )
        await conn.execute(
            """INSERT INTO invite_targets (task_id, user_identifier, identifier_key, status, account_id, processed_at)
               SELECT $1, '@p' || g, 'u:p' || g, 'succeeded', 'acc', $2 FROM generate_series(1, 100000) g""",
            task,
            NOW - timedelta(hours=1),
        )
        await conn.execute("ANALYZE")
        replies = json.dumps([{"keys": ["u:p7", "id:7"], "at": NOW.isoformat()}])
        args = ("acc", replies, ["succeeded", "uncertain"])
        plan = json.loads(await _rolled_back(conn, f"EXPLAIN (ANALYZE, FORMAT JSON) {SQL[statement]}", args))
        marked = await _rolled_back(conn, SQL[statement], args, rows=True)
    finally:
        await conn.close()
    reads = {
        (node["Node Type"], node.get("Index Name", ""))
        for node in _nodes(plan[0]["Plan"])
        if node.get("Relation Name") == "invite_targets" and "Scan" in node["Node Type"]
    }
    assert reads <= {
        ("Index Scan", "invite_targets_task_id_identifier_key_key"),
        ("Bitmap Heap Scan", ""),
        ("Index Scan", "invite_targets_pkey"),
    }
    indexes = {node.get("Index Name") for node in _nodes(plan[0]["Plan"])}
    assert "invite_targets_task_id_identifier_key_key" in indexes
    assert len(marked) == 1  # u:p7, once
