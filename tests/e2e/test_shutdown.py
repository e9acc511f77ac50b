"""SIGTERM ends the process within SHUTDOWN_TIMEOUT_SECONDS, whatever the clients attached do.

A real ``python -m invite serve`` runs a sandbox campaign against the test database, with an
``/events`` stream whose client never reads and slow uploads that send a byte now and then
(slowloris). After SIGTERM: the process is gone within the bound (by the signal, not the last resort's exit), the engine
claimed nothing more (the sandbox's record holds at most the actions that were in flight),
and it left no account leased and no target in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from invite.kernel.auth import issue_token
from invite.platforms.sandbox import read_record
from tests import campaigns
from tests.campaigns import PREFIX
from tests.ports import free_port
from tests.slowclients import SlowClients

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET = "shutdown-secret-" + "s" * 32
BOUND = 6.0
ACCOUNTS = 3

pytestmark = pytest.mark.slow


@pytest.fixture
def service(fresh_database_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    record = tmp_path / "sandbox.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "VAULT_", "INTEGRATION_"))}
    env.update(
        DATABASE_URL=fresh_database_url,
        PORT=str(port),
        REPLICA_ID="replica-shutdown",
        DATA_DIR=str(tmp_path / "data"),
        JWT_SECRET=SECRET,
        LOG_LEVEL="WARNING",
        TELEGRAM_DRIVER="sandbox",
        SANDBOX_RECORD_PATH=str(record),
        SANDBOX_PROFILE='{"latency_seconds": [0.3, 0.8]}',
        SANDBOX_ACCOUNTS_PER_TENANT=str(ACCOUNTS),
        MIN_PAUSE_SECONDS="0.2",
        POLL_INTERVAL_SECONDS="0.5",
        DB_POOL_MIN="2",
        SHUTDOWN_TIMEOUT_SECONDS=str(BOUND),
    )
    with (tmp_path / "service.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "invite", "serve"], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    try:
        yield process, f"http://127.0.0.1:{port}", record
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _ready(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            assert process.poll() is None, "the service exited at start-up"
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}{PREFIX}/health/ready", timeout=1)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError("the service did not become ready")


async def test_sigterm_ends_the_process_within_the_bound(
    service: tuple[subprocess.Popen[bytes], str, Path], fresh_database_url: str
) -> None:
    process, url, record = service
    await _ready(url, process)
    token = issue_token(SECRET, "7", timedelta(hours=1))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        people = [f"shutdown_{n:05d}" for n in range(1000)]  # MAX_TARGETS_PER_TASK by default
        task_id = await campaigns.message_task(http, url, headers, title="shutdown", usernames=people)
        await campaigns.start(http, url, headers, task_id)
    async with SlowClients(int(url.rsplit(":", 1)[1]), token, task_id):
        await asyncio.sleep(3.0)  # the campaign under way, the slow clients attached
        assert process.poll() is None
        sent_at = datetime.now(UTC)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, BOUND + 5)
        took = time.monotonic() - began
    assert process.poll() is not None, f"still up {took:.1f} s after SIGTERM"
    assert took <= BOUND + 1.0, took
    # uvicorn re-raises the signal once its graceful shutdown is done; the last resort exits 70
    assert process.returncode == -signal.SIGTERM

    actions = read_record(record)
    assert actions, "the campaign was running"
    later = [a for a in actions if a.at > sent_at + timedelta(seconds=0.1)]
    assert len(later) <= ACCOUNTS, later  # at most the actions in flight: nothing new was claimed
    conn = await asyncpg.connect(fresh_database_url)
    try:
        leased = await conn.fetchval(
            "SELECT count(*) FROM invite_accounts WHERE lease_owner = 'replica-shutdown' AND lease_expires_at > now()"
        )
        in_flight = await conn.fetchval("SELECT count(*) FROM invite_targets WHERE status = 'in_flight'")
    finally:
        await conn.close()
    assert (leased, in_flight) == (0, 0)
