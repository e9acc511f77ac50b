"""Live progress over Server-Sent Events through real HTTP (uvicorn on loopback), on two
replicas sharing one database; and the fleet gauges as Prometheus scrapes them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from invite.app import create_app
from invite.kernel.auth import issue_token
from invite.kernel.clock import RealClock
from invite.kernel.db import create_pool
from invite.kernel.events import TaskEventHub
from invite.kernel.settings import Settings
from invite.reports.gauges import refresh_fleet_gauges
from tests.integration.api import PREFIX, invite_task, new_tenant

HEARTBEAT = 0.3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The app without its engine: these tests write the engine's rows themselves."""
    return msgspec.structs.replace(settings, engine_enabled=False)


class Replica(msgspec.Struct):
    url: str
    app: Litestar

    @property
    def hub(self) -> TaskEventHub:
        hub: TaskEventHub = self.app.state.event_hub
        return hub


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Replica]:
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        replica = Replica(f"http://127.0.0.1:{port}", app)
        await asyncio.wait_for(replica.hub.listening.wait(), 10)
        yield replica
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def replicas(settings: Settings) -> AsyncIterator[tuple[Replica, Replica]]:
    fast = msgspec.structs.replace(settings, sse_heartbeat_seconds=HEARTBEAT)
    async with serve(fast) as one, serve(fast) as two:
        yield one, two


class SSE:
    """A Server-Sent Events reader over an httpx streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next event or comment: {"event": ..., "data": ...} or {"comment": ...}."""
        message: dict[str, Any] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if not line:
                    if message:
                        return message
                    continue
                field, _, value = line.partition(": ")
                if field == "":
                    message["comment"] = value
                elif field == "data":
                    message["data"] = json.loads(value)
                else:
                    message[field] = value
        raise AssertionError("the stream ended")

    async def next_event(self, timeout: float = 10.0) -> dict[str, Any]:
        while "comment" in (message := await self.next(timeout)):
            pass
        return message


async def notify(pool: asyncpg.Pool, payload: dict[str, Any]) -> None:
    await pool.execute("SELECT pg_notify('invite_task_events', $1)", json.dumps(payload))


async def test_every_replica_streams_what_any_replica_publishes(
    replicas: tuple[Replica, Replica], pool: asyncpg.Pool, settings: Settings
) -> None:
    one, two = replicas
    tenant = new_tenant()
    headers = {
        "Authorization": f"Bearer {issue_token(settings.jwt_secret or '', tenant, timedelta(minutes=5))}"
    }
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        created = await http.post(f"{one.url}{PREFIX}/tasks", json=invite_task())
        task_id = created.json()["id"]
        # a completed task with one target that failed for a transient reason
        await pool.execute(
            "INSERT INTO invite_targets (task_id, user_identifier, identifier_key, status, outcome)"
            " SELECT $1, 'user' || n, 'u:user' || n, CASE n WHEN 1 THEN 'failed' ELSE 'succeeded' END,"
            " CASE n WHEN 1 THEN 'transient' ELSE 'success' END FROM generate_series(1, 3) AS n",
            uuid.UUID(task_id),
        )
        await pool.execute(
            "UPDATE invite_tasks SET status = 'completed', started_at = now(), completed_at = now() WHERE id = $1",
            uuid.UUID(task_id),
        )
        async with http.stream("GET", f"{two.url}{PREFIX}/tasks/{task_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = SSE(response)
            snapshot = await stream.next_event()
            assert snapshot["event"] == "snapshot"
            assert (snapshot["data"]["status"], snapshot["data"]["total"]) == ("completed", 3)

            # reopened through replica one, seen on replica two
            assert (await http.post(f"{one.url}{PREFIX}/tasks/{task_id}/retry-failed")).status_code == 200
            status = await stream.next_event()
            assert status["event"] == "status"
            assert status["data"] == {
                "task_id": task_id,
                "type": "status",
                "status": "running",
                "reason": "retry_failed",
            }

            # another task's events are not this stream's; a burst of progress from the engine
            # becomes the task's counts, at most once a second
            await notify(pool, {"task_id": str(uuid.uuid4()), "type": "status", "status": "paused"})
            for _ in range(50):
                await notify(pool, {"task_id": task_id, "type": "progress"})
            progress = await stream.next_event()
            assert progress["event"] == "progress"
            assert progress["data"]["task_id"] == task_id
            assert progress["data"]["counts"]["pending"] == 1  # the re-queued target
            sent = 1
            while "comment" not in (message := await stream.next()):
                assert message["event"] == "progress"
                sent += 1
            assert sent <= 2

            # silence is filled with heartbeats
            assert (await stream.next(timeout=HEARTBEAT * 10)) == {"comment": "heartbeat"}
            assert two.hub.subscriber_count() == 1

        # the client went away: the stream left the hub
        for _ in range(250):
            if not two.hub.subscriber_count():
                break
            await asyncio.sleep(0.02)
        assert two.hub.subscriber_count() == 0


async def test_a_lost_listening_connection_is_replaced_and_streams_resynced(
    replicas: tuple[Replica, Replica], pool: asyncpg.Pool, settings: Settings
) -> None:
    one, _ = replicas
    tenant = new_tenant()
    headers = {
        "Authorization": f"Bearer {issue_token(settings.jwt_secret or '', tenant, timedelta(minutes=5))}"
    }
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        task_id = (await http.post(f"{one.url}{PREFIX}/tasks", json=invite_task())).json()["id"]
        async with http.stream("GET", f"{one.url}{PREFIX}/tasks/{task_id}/events") as response:
            stream = SSE(response)
            assert (await stream.next_event())["event"] == "snapshot"
            # kill every LISTEN connection of the test database (both replicas')
            killed = await pool.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
            )
            assert killed >= 1
            resync = await stream.next_event()
            assert resync["event"] == "snapshot"  # events may have been missed: the state again
            await asyncio.wait_for(one.hub.listening.wait(), 10)
            await notify(pool, {"task_id": task_id, "type": "status", "status": "paused"})
            assert (await stream.next_event())["data"]["status"] == "paused"


async def test_events_of_another_tenants_task_are_not_found(
    replicas: tuple[Replica, Replica], settings: Settings
) -> None:
    one, _ = replicas
    owner = {
        "Authorization": f"Bearer {issue_token(settings.jwt_secret or '', new_tenant(), timedelta(minutes=5))}"
    }
    stranger = {
        "Authorization": f"Bearer {issue_token(settings.jwt_secret or '', new_tenant(), timedelta(minutes=5))}"
    }
    async with httpx.AsyncClient(timeout=10) as http:
        task_id = (await http.post(f"{one.url}{PREFIX}/tasks", json=invite_task(), headers=owner)).json()[
            "id"
        ]
        response = await http.get(f"{one.url}{PREFIX}/tasks/{task_id}/events", headers=stranger)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert one.hub.subscriber_count() == 0


# --- fleet gauges, scraped ---------------------------------------------------------------------


async def test_fleet_gauges_scraped_and_parsed(fresh_database_url: str, settings: Settings) -> None:
    own = msgspec.structs.replace(settings, database_url=fresh_database_url)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(fresh_database_url)
    try:
        await conn.execute(
            "INSERT INTO invite_accounts (id, user_id, status)"
            " SELECT 'acc-' || n, 't1', CASE WHEN n <= 3 THEN 'blocked' ELSE 'active' END"
            " FROM generate_series(1, 10) AS n"
        )
        task_id = await conn.fetchval(
            "INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id, status,"
            " started_at, updated_at) VALUES ('t1', 'telegram', 'invite_to_group', 't', '@g', 'running', $1, $1)"
            " RETURNING id",
            now - timedelta(hours=3),
        )
        await conn.execute(
            "INSERT INTO invite_targets (task_id, user_identifier, identifier_key)"
            " SELECT $1, 'u' || n, 'u:u' || n FROM generate_series(1, 5) AS n",
            task_id,
        )
        await conn.execute(
            "INSERT INTO invite_execution_logs (task_id, account_id, action, status, created_at)"
            " VALUES ($1, 'acc-4', 'invite_to_group', 'succeeded', $2)",
            task_id,
            now - timedelta(hours=2),
        )
    finally:
        await conn.close()

    pool = await create_pool(fresh_database_url, own)
    try:
        await refresh_fleet_gauges(pool, own, RealClock())
    finally:
        await pool.close()
    async with AsyncTestClient(app=create_app(own)) as client:
        scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    accounts = {
        (s.labels["platform"], s.labels["status"]): s.value
        for s in families["invite_accounts_by_status"].samples
    }
    assert accounts[("telegram", "blocked")] == 3
    assert accounts[("telegram", "active")] == 7
    assert accounts[("telegram", "cooldown")] == 0
    pending = {s.labels["platform"]: s.value for s in families["invite_targets_pending"].samples}
    assert pending["telegram"] == 5
    idle = families["invite_running_task_idle_seconds_max"].samples[0].value
    assert 2 * 3600 <= idle < 2 * 3600 + 600
