"""The engine as a process (``python -m invite.engine``, sandbox driver, JSONL record), killed
with SIGKILL mid-campaign and started again: no target is lost, and the simulator's own
record shows that nobody got the message twice. Real clock, tiny pauses."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec

from invite.kernel.settings import ROOT
from invite.platforms.sandbox import ActionKind, read_record, sends_per_target
from tests.integration.engine.harness import Scenario

TARGETS = 150


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "invite.engine"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


async def _counts(url: str) -> dict[str, int]:
    """Targets by status, and the task's status under the key 'task'."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM invite_targets GROUP BY 1")
        task = await conn.fetchval("SELECT status FROM invite_tasks")
    finally:
        await conn.close()
    return {**{r["status"]: r["n"] for r in rows}, f"task:{task}": 1}


async def _wait(url: str, done: object, timeout: float = 60.0) -> dict[str, int]:
    async def poll() -> dict[str, int]:
        while True:
            counts = await _counts(url)
            if done(counts):  # type: ignore[operator]
                return counts
            await asyncio.sleep(0.1)  # the real clock: this test runs a real process

    return await asyncio.wait_for(poll(), timeout)


async def test_sigkill_mid_campaign_loses_nothing_and_sends_nothing_twice(
    engine_scenario: Scenario, tmp_path: Path
) -> None:
    url = engine_scenario.url
    record = tmp_path / "sandbox.jsonl"
    log = tmp_path / "engine.log"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REPLICA_ID": "worker-1",  # the same id after the restart, as a pod keeps its name
        "SANDBOX_RECORD_PATH": str(record),
        "SANDBOX_PROFILE": msgspec.json.encode({"latency_seconds": [0.005, 0.03]}).decode(),
        "SANDBOX_ACCOUNTS_PER_TENANT": "5",
        "DAILY_QUOTA": "10000000",
        "DAILY_QUOTA_WITH_LINK": "10000000",
        "WARMUP_DAYS": "0",  # new accounts at the full quota at once
        "MIN_PAUSE_SECONDS": "0.05",
        "POLL_INTERVAL_SECONDS": "0.5",
        "ACCOUNT_LEASE_SECONDS": "3",
        "TARGET_LEASE_SECONDS": "3",
        "DB_POOL_MAX": "6",
        "LOG_LEVEL": "WARNING",
        "INTEGRATION_SERVICE_URL": "",
        "TELEGRAM_DRIVER": "sandbox",
    }
    task_id = await engine_scenario.add_task(
        targets=TARGETS, task_type="send_messages", template="Hello {first_name}!"
    )

    first = _start(env, log)
    try:
        await _wait(url, lambda c: c.get("succeeded", 0) >= 40)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    at_kill = await _counts(url)
    assert at_kill.get("pending", 0) > 0  # it really died mid-campaign
    conn = await asyncpg.connect(url)
    try:
        in_doubt = {
            r["identifier_key"]
            for r in await conn.fetch(
                "SELECT identifier_key FROM invite_targets WHERE status IN ('in_flight', 'uncertain')"
            )
        }
    finally:
        await conn.close()

    second = _start(env, log)
    try:
        final = await _wait(url, lambda c: "task:completed" in c)
        conn = await asyncpg.connect(url)
        try:
            uncertain = {
                r["identifier_key"]
                for r in await conn.fetch(
                    "SELECT identifier_key FROM invite_targets WHERE task_id = $1 AND status = 'uncertain'",
                    task_id,
                )
            }
        finally:
            await conn.close()
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, log.read_text()[-3000:]

    assert set(final) <= {"succeeded", "uncertain", "task:completed"}
    assert final["succeeded"] + final.get("uncertain", 0) == TARGETS  # no target lost
    assert uncertain <= in_doubt  # only messages whose fate was unknown when it died
    actions = read_record(record)
    sent = sends_per_target(actions, ActionKind.MESSAGE)
    assert max(sent.values()) == 1  # nobody got the message twice
    delivered = {key for (_, _, key) in sent}
    assert len(delivered) >= final["succeeded"]
    # the pause held between the sends themselves, as the simulator saw them, across the kill
    by_account: dict[str, list[datetime]] = {}
    for action in actions:
        by_account.setdefault(action.account_id, []).append(action.at)
    for stamps in by_account.values():
        stamps.sort()
        assert min(b - a for a, b in itertools.pairwise(stamps)) >= timedelta(seconds=0.05)
