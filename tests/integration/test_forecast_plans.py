"""The forecast's mean FloodWait (forecast.tenant_history over the tenant's 10 other tasks,
reports.flood_seconds over the task's own), which every /status plan reads, reads the tasks'
FloodWaits only, through invite_logs_flood_waits, under a custom and a generic plan: never the
rest of a task's log, here 20k rows a task with none, a few or a thousand FloodWaits among
them (a walk of idx_invite_logs_task_created filtering on the status read all of it for a task
with fewer than 200). At most 200 a task as the index is walked in order, or all of a task's
when the planner takes them by bitmap and sorts them, as it does at a few a task."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg

from invite.kernel.db import queries
from invite.reports.service import PRIOR_TASKS
from tests.conftest import SQL_DIR

SQL = queries(SQL_DIR)
LOG_ROWS = 20_000
LAST = 200  # FloodWaits the mean is taken over, per task (the statements' LIMIT)
FLOODS = [0, 0, 0, 0, 3, 3, 3, 5, 5, 1_000]  # per past task: mostly few or none, one with many


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _log_reads(conn: asyncpg.Connection, name: str, *args: object) -> tuple[set[str], int]:
    """The indexes the statement reads the execution log through (a bitmap scan's is its
    child's), and the log rows it read: those it kept and those it filtered out, every loop."""
    plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + SQL[name], *args)
    scans = [n for n in _nodes(plan[0]["Plan"]) if n.get("Relation Name") == "invite_execution_logs"]
    indexes = {
        node.get("Index Name", node["Node Type"])
        for scan in scans
        for node in (scan["Plans"] if scan["Node Type"] == "Bitmap Heap Scan" else [scan])
    }
    read = sum(
        (n["Actual Rows"] + n.get("Rows Removed by Filter", 0) + n.get("Rows Removed by Index Recheck", 0))
        * n["Actual Loops"]
        for n in scans
    )
    return indexes, read


async def _task(conn: asyncpg.Connection, title: str, floods: int, age: int) -> object:
    """A finished task ``age`` hours old of LOG_ROWS log rows, its ``floods`` FloodWaits among
    them spread over its log."""
    task_id = await conn.fetchval(
        """INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, status, created_at)
           VALUES ('t', 'telegram', 'invite_to_group', $1, 'g', 'completed', now() - make_interval(hours => $2))
           RETURNING id""",
        title,
        age,
    )
    await conn.execute(
        """INSERT INTO invite_execution_logs (task_id, account_id, action, status, details, created_at)
           SELECT $1, 'acc', 'invite_to_group',
                  CASE WHEN g % ($2 / GREATEST($3, 1)) = 1 AND g <= $3 * ($2 / GREATEST($3, 1))
                       THEN 'flood_wait' ELSE 'success' END,
                  '{"seconds": 60}', now() - make_interval(hours => $4, secs => $2 - g)
           FROM generate_series(1, $2) g""",
        task_id,
        LOG_ROWS,
        floods,
        age,
    )
    return task_id


async def test_the_mean_floodwait_reads_the_floodwaits_only(fresh_database_url: str) -> None:
    conn = await asyncpg.connect(fresh_database_url)
    await conn.set_type_codec("json", encoder=str, decoder=json.loads, schema="pg_catalog")
    try:
        past = [await _task(conn, f"past {n}", floods, age=n + 1) for n, floods in enumerate(FLOODS)]
        current = await _task(conn, "current", 3, age=0)
        assert (
            await conn.fetchval("SELECT count(*) FROM invite_execution_logs WHERE status = 'flood_wait'")
            == sum(FLOODS) + 3
        )
        await conn.execute("ANALYZE")
        history = (
            "t",
            "telegram",
            "invite_to_group",
            current,
            PRIOR_TASKS,
            "invite_to_group",
            ["privacy_restricted", "link_offered"],
        )
        for plan_cache_mode in ("auto", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
            indexes, read = await _log_reads(conn, "forecast.tenant_history", *history)
            assert indexes == {"invite_logs_flood_waits"}
            # (an inner scan's rows are reported as a mean a loop, rounded: up to 1 a loop more)
            assert sum(min(f, LAST) for f in FLOODS) <= read <= sum(FLOODS) + len(FLOODS)
            for task_id, floods in [(current, 3), (past[0], 0), (past[-1], 1_000)]:
                indexes, read = await _log_reads(conn, "reports.flood_seconds", task_id)
                assert indexes == {"invite_logs_flood_waits"}
                assert min(floods, LAST) <= read <= floods
    finally:
        await conn.close()
