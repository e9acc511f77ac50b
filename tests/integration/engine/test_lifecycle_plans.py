"""The lifecycle's passes and the reads behind /status and /stats stay off the targets table at
100k targets: close_queues starts from the counters and reaches a failed task's queue through
invite_targets_pending only, and reads no target at all when nothing needs closing (the plain
join it replaced seq-scanned every pending target on every pass); the other per-pass statements
and the report reads never touch invite_targets or the execution log."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from invite.engine.decisions import CLOSED_JSON
from invite.engine.lifecycle import CLOSE_BATCH
from invite.kernel.db import queries
from invite.tasks.states import Action, TaskStatus, allowed_from
from tests.conftest import SQL_DIR

SQL = queries(SQL_DIR)
TENANT = "plans"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
FAILED_PENDING = 2 * CLOSE_BATCH + CLOSE_BATCH // 2


@dataclass
class Campaign:
    conn: asyncpg.Connection
    running: uuid.UUID
    failed: uuid.UUID


@pytest.fixture
async def campaign(fresh_database_url: str) -> AsyncIterator[Campaign]:
    """A running task of 100k targets, 30k of them done, and a failed task with targets still pending."""
    conn = await asyncpg.connect(fresh_database_url)
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        tasks = {}
        for status in ("running", "failed"):
            tasks[status] = await conn.fetchval(
                """INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, status,
                                             status_reason)
                   VALUES ($1, 'telegram', 'invite_to_group', 'plan', 'g', $2, $3) RETURNING id""",
                TENANT,
                status,
                "no account can serve this task" if status == "failed" else None,
            )
        await conn.execute(
            """INSERT INTO invite_targets (task_id, user_identifier, identifier_key, status)
               SELECT $1, '@p' || g, 'u:p' || g, CASE WHEN g <= 30000 THEN 'succeeded' ELSE 'pending' END
               FROM generate_series(1, 100000) g""",
            tasks["running"],
        )
        await conn.execute(
            """INSERT INTO invite_targets (task_id, user_identifier, identifier_key)
               SELECT $1, '@f' || g, 'u:f' || g FROM generate_series(1, $2::int) g""",
            tasks["failed"],
            FAILED_PENDING,
        )
        await conn.execute("ANALYZE")
        yield Campaign(conn, tasks["running"], tasks["failed"])
    finally:
        await conn.close()


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan(
    conn: asyncpg.Connection, sql: str, *args: Any, analyze: bool = False
) -> list[dict[str, Any]]:
    """The plan's nodes; with ``analyze`` the statement runs (in a transaction rolled back)."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
        plan = await conn.fetchval(f"EXPLAIN ({options}) {sql}", *args)
    finally:
        await transaction.rollback()
    return list(_nodes(plan[0]["Plan"]))


def _target_indexes(nodes: list[dict[str, Any]]) -> set[str]:
    """The indexes of invite_targets the plan reads (an index scan's or a bitmap's)."""
    return {node["Index Name"] for node in nodes if "invite_targets" in node.get("Index Name", "")}


def _seq_scans_of_targets(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        node
        for node in nodes
        if node["Node Type"] == "Seq Scan" and node["Relation Name"] == "invite_targets"
    ]


async def test_close_queues_reaches_a_failed_tasks_queue_through_the_pending_index(
    campaign: Campaign,
) -> None:
    conn = campaign.conn
    for mode in ("auto", "force_generic_plan"):
        await conn.execute(f"SET plan_cache_mode = {mode}")
        nodes = await _plan(conn, SQL["lifecycle.close_queues"], NOW, CLOSE_BATCH, CLOSED_JSON)
        assert not _seq_scans_of_targets(nodes), mode
        # the queue from its partial index; the rows to update by primary key
        assert _target_indexes(nodes) == {"invite_targets_pending", "invite_targets_pkey"}, mode
    await conn.execute("RESET plan_cache_mode")


async def test_close_queues_closes_in_batches_and_then_reads_no_target(campaign: Campaign) -> None:
    conn = campaign.conn
    closed = [
        await conn.fetchval(SQL["lifecycle.close_queues"], NOW, CLOSE_BATCH, CLOSED_JSON) for _ in range(4)
    ]
    assert closed == [CLOSE_BATCH, CLOSE_BATCH, CLOSE_BATCH // 2, 0]
    failed = await conn.fetch(
        """SELECT status, outcome, error_message, count(*) AS n FROM invite_targets WHERE task_id = $1
           GROUP BY 1, 2, 3""",
        campaign.failed,
    )
    assert [tuple(row) for row in failed] == [
        ("cancelled", "task_failed", "no account can serve this task", FAILED_PENDING)
    ]
    running = await conn.fetchval(
        "SELECT count(*) FROM invite_targets WHERE task_id = $1 AND status = 'pending'", campaign.running
    )
    assert running == 70_000

    # nothing left to close: the statement runs without visiting one target
    nodes = await _plan(conn, SQL["lifecycle.close_queues"], NOW, CLOSE_BATCH, CLOSED_JSON, analyze=True)
    reads = [
        node
        for node in nodes
        if node.get("Relation Name") == "invite_targets" and "Scan" in node["Node Type"]
    ]
    assert reads, "the plan reads targets somewhere"
    assert all(node["Actual Loops"] == 0 for node in reads)


def _per_pass(campaign: Campaign) -> dict[str, tuple[Any, ...]]:
    """The lifecycle's other statements (each pass) and the reads behind /status and /stats."""
    accounts = [f"acc-{n}" for n in range(10)]
    return {
        "lifecycle.start_due": (NOW, list(allowed_from(Action.DUE)), TaskStatus.RUNNING),
        "lifecycle.tasks_without_accounts": ("sandbox",),
        "lifecycle.fail_unserved": (NOW, [TaskStatus.RUNNING], TaskStatus.FAILED),
        "lifecycle.complete_tasks": (NOW, list(allowed_from(Action.COMPLETE)), TaskStatus.COMPLETED),
        "lifecycle.next_scheduled": (),
        "leases.running_tasks": ("sandbox",),
        "leases.servable": (accounts, "sandbox"),
        "tasks.get": (campaign.running, TENANT),
        "tasks.status_report": (campaign.running, TENANT),
        "reports.stats": (campaign.running, TENANT, NOW - timedelta(days=1), NOW),
        "reports.progress": (
            campaign.running,
            TENANT,
            NOW - timedelta(hours=1),
            ["acc-1"],
            ["invite_link"],
            "send_invite_link",
            "invite_to_group",
            "link_offered",
            ["privacy_restricted", "link_offered"],
        ),
    }


# what a per-pass statement may read of the targets: the few waiting for a one-use link's
# message (reports.progress), through their own partial index and nothing else
SMALL_TARGET_INDEXES = {"invite_targets_link_due"}


async def test_per_pass_statements_and_report_reads_never_touch_targets_or_logs(campaign: Campaign) -> None:
    for name, args in _per_pass(campaign).items():
        nodes = await _plan(campaign.conn, SQL[name], *args)
        touched = {
            node.get("Relation Name") for node in nodes if node.get("Index Name") not in SMALL_TARGET_INDEXES
        } & {"invite_targets", "invite_execution_logs"}
        assert not touched, f"{name} reads {touched}"
        linked = [n for n in nodes if n.get("Index Name") in SMALL_TARGET_INDEXES]
        assert all(n["Node Type"] in ("Index Only Scan", "Index Scan", "Bitmap Index Scan") for n in linked)
