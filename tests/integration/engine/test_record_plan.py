"""The group commit reads its batch from jsonb documents and still touches rows by primary key only:
at 100k targets and 10k accounts, a batch of 100 outcomes updates its targets and accounts through
their primary keys (never a scan of either table), under a custom and a generic plan."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg

from invite.engine.decisions import KEPT_TASK_ACCOUNT_STATUSES
from invite.kernel.db import queries
from tests.conftest import SQL_DIR

RECORD = queries(SQL_DIR)["recorder.record"]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _reads_of(nodes: list[dict[str, Any]], relation: str) -> set[tuple[str, str]]:
    return {
        (node["Node Type"], node.get("Index Name", ""))
        for node in nodes
        if node.get("Relation Name") == relation and "Scan" in node["Node Type"]
    }


async def test_record_touches_targets_and_accounts_by_primary_key(fresh_database_url: str) -> None:
    conn = await asyncpg.connect(fresh_database_url)
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        task = await conn.fetchval(
            """INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, status)
               VALUES ('t', 'telegram', 'invite_to_group', 'plan', 'g', 'running') RETURNING id"""
        )
        await conn.execute(
            """INSERT INTO invite_targets (task_id, user_identifier, identifier_key)
               SELECT $1, '@p' || g, 'u:p' || g FROM generate_series(1, 100000) g""",
            task,
        )
        await conn.execute(
            """INSERT INTO invite_accounts (id, user_id, lease_owner, lease_expires_at)
               SELECT 'acc-' || g, 't', 'r', now() + interval '1 day' FROM generate_series(1, 10000) g"""
        )
        targets = await conn.fetch(
            """UPDATE invite_targets SET status = 'in_flight', lease_owner = 'r', attempts = 1,
                      lease_expires_at = now() + interval '1 hour', account_id = 'acc-1'
               WHERE id IN (SELECT id FROM invite_targets ORDER BY seq LIMIT 100) RETURNING id"""
        )
        await conn.execute("ANALYZE")
        now = datetime.now(UTC).isoformat()
        accounts = [f"acc-{n}" for n in range(1, 101)]
        outcomes: list[dict[str, Any]] = [
            {
                "id": str(row["id"]),
                "claimed": 1,
                "status": "succeeded",
                "outcome": "success",
                "processed_at": now,
                "error_message": None,
                "result": {},
                "attempts": 1,
                "next_attempt_at": now,
            }
            for row in targets
        ]
        logs = [
            [
                str(task),
                {
                    "id": str(uuid.uuid4()),
                    "target_id": str(row["id"]),
                    "account_id": "acc-1",
                    "action": "invite_to_group",
                    "status": "success",
                    "details": {},
                    "at": now,
                },
            ]
            for row in targets
        ]
        changes = [
            {
                "id": a,
                "status": "active",
                "reason": None,
                "cooldown_until": None,
                "multiplier": 1.0,
                "flood_waits": 0,
                "peer_floods": 0,
            }
            for a in accounts
        ]
        args: tuple[Any, ...] = (
            "r",
            json.dumps(outcomes),
            json.dumps(logs),
            json.dumps(changes),
            "[]",
            [],
            datetime.now(UTC),
            list(KEPT_TASK_ACCOUNT_STATUSES),
        )
        for mode in ("auto", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            transaction = conn.transaction()
            await transaction.start()
            try:
                plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + RECORD, *args)
            finally:
                await transaction.rollback()
            nodes = list(_nodes(plan[0]["Plan"]))
            assert _reads_of(nodes, "invite_targets") <= {
                ("Index Scan", "invite_targets_pkey"),
                ("Index Only Scan", "invite_targets_pkey"),
            }, mode
            assert _reads_of(nodes, "invite_accounts") == {("Index Scan", "invite_accounts_pkey")}, mode
        recorded = await conn.fetchrow(RECORD, *args)
        assert recorded is not None
        assert (len(recorded["applied"]), recorded["logged"], recorded["accounts"]) == (100, 100, 100)
    finally:
        await conn.close()
