"""The claim reads the head of one task's queue through invite_targets_pending — with 100k
pending targets, under a custom and a generic plan, and again after half the queue was claimed.
Its screening of the people it found (suppressions, the recontact cap) probes indexes only:
the suppression list's primary key and the other tasks' (task_id, identifier_key) index."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from invite.engine.decisions import BARRED_JSON
from invite.kernel.db import queries
from tests.conftest import SQL_DIR

CLAIM = queries(SQL_DIR)["claims.claim"]
RELEASE = queries(SQL_DIR)["claims.release_lost_claim"]
LEASE = timedelta(seconds=300)
ACCOUNTS = [f"acc-{n:03}" for n in range(100)]


def _asking(pause: float) -> str:
    """The claim's accounts document: every account with a cap that never binds."""
    return json.dumps([{"account_id": a, "cap": 10**6, "pause": pause} for a in ACCOUNTS])


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _claim_plan(
    conn: asyncpg.Connection, task_id: uuid.UUID, now: datetime, recontact_days: int = 30
) -> list[dict[str, Any]]:
    args = (
        task_id,
        now,
        100,
        "replica",
        _asking(0.001),
        now + LEASE,
        recontact_days,
        15,
        uuid.uuid4(),
        BARRED_JSON,
    )
    plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + CLAIM, *args)
    return list(_nodes(plan[0]["Plan"]))


def _reads_of(nodes: list[dict[str, Any]], relation: str) -> set[tuple[str, str]]:
    return {
        (node["Node Type"], node.get("Index Name", ""))
        for node in nodes
        if node.get("Relation Name") == relation and "Scan" in node["Node Type"]
    }


def _reads_of_targets(nodes: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return _reads_of(nodes, "invite_targets")


async def test_claim_uses_the_pending_index_at_100k(fresh_database_url: str) -> None:
    conn = await asyncpg.connect(fresh_database_url)
    await conn.set_type_codec("json", encoder=str, decoder=json.loads, schema="pg_catalog")
    try:
        task_id = await conn.fetchval(
            """INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, status)
               VALUES ('t', 'telegram', 'invite_to_group', 'plan', 'g', 'running') RETURNING id"""
        )
        other = await conn.fetchval(
            """INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, status)
               VALUES ('t', 'telegram', 'invite_to_group', 'other', 'g', 'running') RETURNING id"""
        )
        for task in (task_id, other):
            await conn.execute(
                """INSERT INTO invite_targets (task_id, user_identifier, identifier_key)
                   SELECT $1, '@p' || g, 'u:p' || g FROM generate_series(1, 100000) g""",
                task,
            )
        await conn.execute(
            """INSERT INTO invite_accounts (id, user_id, lease_owner, lease_expires_at)
               SELECT id, 't', 'replica', now() + interval '1 day' FROM unnest($1::text[]) id""",
            ACCOUNTS,
        )
        await conn.execute(
            """INSERT INTO invite_task_accounts (task_id, account_id, platform)
               SELECT $1, id, 'telegram' FROM unnest($2::text[]) id""",
            task_id,
            ACCOUNTS,
        )
        await conn.execute("ANALYZE")
        now = datetime.now(UTC)
        # the other task is done: the recontact cap has 100k people to look among, by key
        await conn.execute(
            "UPDATE invite_targets SET status = 'succeeded', processed_at = now() WHERE task_id = $1", other
        )
        await conn.execute(  # a list of some size (a tiny table is rightly read whole), p7 on it
            """INSERT INTO invite_suppressions (user_id, identifier_key, user_identifier)
               SELECT 't', 'u:s' || g, '@s' || g FROM generate_series(1, 20000) g
               UNION ALL SELECT 't', 'u:p7', '@p7'"""
        )
        await conn.execute("ANALYZE")
        expected = {
            ("Index Scan", "invite_targets_pending"),
            ("Index Scan", "invite_targets_pending_plain"),  # for accounts out of contact room
            ("Index Scan", "invite_targets_pkey"),
            ("Index Only Scan", "invite_targets_task_id_identifier_key_key"),
            ("Index Scan", "invite_targets_task_id_identifier_key_key"),
        }
        screening = await _claim_plan(conn, task_id, now)
        assert _reads_of(screening, "invite_suppressions") <= {
            ("Index Only Scan", "invite_suppressions_pkey"),
            ("Index Scan", "invite_suppressions_pkey"),
        }
        assert _reads_of(screening, "invite_suppressions")

        assert _reads_of_targets(await _claim_plan(conn, task_id, now)) <= expected
        assert ("Index Scan", "invite_targets_pending") in _reads_of_targets(
            await _claim_plan(conn, task_id, now)
        )

        await conn.execute("SET plan_cache_mode = force_generic_plan")
        assert ("Index Scan", "invite_targets_pending") in _reads_of_targets(
            await _claim_plan(conn, task_id, now)
        )
        await conn.execute("RESET plan_cache_mode")

        # mid-run: half the queue claimed 100 at a time, dead entries at the head of the index
        for step in range(500):
            at = now + timedelta(seconds=step)
            claim_id = uuid.uuid4()
            rows = await conn.fetch(
                CLAIM, task_id, at, 100, "replica", _asking(0.0), at + LEASE, 0, 15, claim_id, BARRED_JSON
            )
            assert len(rows) == 100 - (step == 0)  # u:p7 is suppressed: skipped, not claimed
        assert _reads_of_targets(await _claim_plan(conn, task_id, now + timedelta(hours=1))) <= expected
        pending = await conn.fetchval(
            "SELECT count(*) FROM invite_targets WHERE task_id = $1 AND status = 'pending'", task_id
        )
        assert pending == 50_000  # 49,999 claimed, u:p7 skipped

        # the last claim's answer lost: its 100 targets are found among the 49,999 in flight
        # through the in-flight index by the claim's lease expiry, and nothing else is read
        lost = (claim_id, at, at + LEASE, at, "pending", True, True, True)
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + RELEASE, *lost)
        assert _reads_of_targets(list(_nodes(plan[0]["Plan"]))) <= {
            ("Index Scan", "invite_targets_in_flight"),
            ("Bitmap Index Scan", "invite_targets_in_flight"),
            ("Bitmap Heap Scan", ""),
            ("Index Scan", "invite_targets_pkey"),
        }
        reserved = await conn.fetchval("SELECT sum(daily_count) FROM invite_accounts")
        released = await conn.fetch(RELEASE, *lost)
        assert len(released) == 100
        assert {row["refunded"] for row in released} == {100}
        assert await conn.fetchval("SELECT sum(daily_count) FROM invite_accounts") == reserved - 100
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM invite_targets WHERE claim_id = $1 AND status = 'pending' AND attempts = 0",
                claim_id,
            )
            == 100
        )
    finally:
        await conn.close()
