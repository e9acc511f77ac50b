"""/status's plan (rate, accounts by state, ETA) through real HTTP (uvicorn on loopback): made
once per task per STATUS_PLAN_SECONDS and shared by the requests of that interval, also while
it is being made; the counts always afresh; a new plan after the interval or a status change,
but none while the last is still being made. The app's clock is the real one, moved ahead by
the test when it says so."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
import uvicorn

from invite.app import create_app
from invite.kernel.auth import issue_token
from invite.kernel.clock import RealClock
from invite.kernel.settings import Settings
from invite.reports.service import STATUS_PLAN_SECONDS
from tests.integration.api import PREFIX, invite_task, new_tenant

REQUESTS = 8


class AheadClock(RealClock):
    """The real clock, ``ahead`` of real time by what the test moves it on."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def now(self) -> datetime:
        return super().now() + self.ahead


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No engine: the test writes the accounts' rows itself."""
    return msgspec.structs.replace(settings, engine_enabled=False)


@contextlib.asynccontextmanager
async def serve(settings: Settings, clock: AheadClock) -> AsyncIterator[httpx.AsyncClient]:
    """The app on loopback, and a client of one fresh tenant's."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, clock=clock), host="127.0.0.1", port=0, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        token = issue_token(settings.jwt_secret or "", new_tenant(), timedelta(minutes=5))
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}{PREFIX}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as http:
            yield http
    finally:
        server.should_exit = True
        await task


async def running_task(http: httpx.AsyncClient, pool: asyncpg.Pool, accounts: int) -> uuid.UUID:
    """A running task of 100 people with ``accounts`` fresh accounts of its tenant."""
    created = await http.post("/tasks", json=invite_task())
    assert created.status_code == 201, created.text
    task_id = uuid.UUID(created.json()["id"])
    tenant = await pool.fetchval("SELECT user_id FROM invite_tasks WHERE id = $1", task_id)
    await pool.execute(
        "UPDATE invite_tasks SET status = 'running', started_at = now() WHERE id = $1", task_id
    )
    await pool.execute(
        """INSERT INTO invite_targets (task_id, user_identifier, identifier_key)
           SELECT $1, 'user' || n, 'u:user' || n FROM generate_series(1, 100) AS n""",
        task_id,
    )
    ids = [f"{task_id}-{n}" for n in range(accounts)]
    await pool.executemany(
        "INSERT INTO invite_accounts (id, user_id, status) VALUES ($1, $2, 'active')",
        [(a, tenant) for a in ids],
    )
    await pool.executemany(
        "INSERT INTO invite_task_accounts (task_id, account_id, platform, status) VALUES ($1, $2, 'telegram', 'active')",
        [(task_id, a) for a in ids],
    )
    return task_id


async def status(http: httpx.AsyncClient, task_id: uuid.UUID) -> dict[str, Any]:
    response = await http.get(f"/tasks/{task_id}/status")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def plans_waiting(pool: asyncpg.Pool) -> int:
    """Statements waiting to read the task's accounts: a plan's (reports.progress reads them
    through invite_task_accounts; nothing else does with the engine off)."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE relation = 'invite_task_accounts'::regclass AND NOT granted"
    )
    return count


async def test_concurrent_requests_share_one_plan_while_it_is_made(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with serve(settings, AheadClock()) as http:
        task_id = await running_task(http, pool, 3)
        async with pool.acquire() as locker, locker.transaction():
            # the plan's read of the accounts waits here: the requests meanwhile pile up
            await locker.execute("LOCK TABLE invite_task_accounts IN ACCESS EXCLUSIVE MODE")
            asked = [asyncio.create_task(status(http, task_id)) for _ in range(REQUESTS)]
            async with asyncio.timeout(10):
                while await plans_waiting(pool) == 0:  # noqa: ASYNC110 - PostgreSQL has no event for "a lock is waited on"
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)  # every request has had the time to start a plan of its own
            assert await plans_waiting(pool) == 1
            assert not any(one.done() for one in asked)
        answers = await asyncio.gather(*asked)
    assert all((a["eta"], a["accounts"]) == (answers[0]["eta"], {"active": 3}) for a in answers)


async def test_a_plan_serves_its_interval_and_a_new_one_follows_the_task(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    clock = AheadClock()
    async with serve(settings, clock) as http:
        task_id = await running_task(http, pool, 2)
        first = await status(http, task_id)
        assert (first["accounts"], first["counts"]["pending"]) == ({"active": 2}, 100)
        # an account starts cooling and one more person is added
        await pool.execute(
            """UPDATE invite_accounts SET status = 'cooldown', status_reason = 'FloodWait 3600 s',
                      cooldown_until = now() + interval '1 hour'
               WHERE id = (SELECT account_id FROM invite_task_accounts WHERE task_id = $1 LIMIT 1)""",
            task_id,
        )
        await pool.execute(
            "INSERT INTO invite_targets (task_id, user_identifier, identifier_key) VALUES ($1, 'late', 'u:late')",
            task_id,
        )
        async with pool.acquire() as locker, locker.transaction():
            await locker.execute("LOCK TABLE invite_task_accounts IN ACCESS EXCLUSIVE MODE")
            within = await asyncio.wait_for(status(http, task_id), 5)  # the accounts not read ...
            assert within["counts"]["pending"] == 101  # ... the counts afresh
            assert (within["accounts"], within["eta"]) == (first["accounts"], first["eta"])
            await asyncio.sleep(0.3)
            assert await plans_waiting(pool) == 0  # no plan made meanwhile either
            clock.ahead = timedelta(seconds=STATUS_PLAN_SECONDS)
            # past the interval: a new plan is made, the requests answered from the last meanwhile
            stale = await asyncio.wait_for(status(http, task_id), 5)
            assert (stale["accounts"], stale["eta"]) == (first["accounts"], first["eta"])
            async with asyncio.timeout(5):
                while await plans_waiting(pool) == 0:  # noqa: ASYNC110 - PostgreSQL has no event for "a lock is waited on"
                    await asyncio.sleep(0.02)
        async with asyncio.timeout(10):
            while (after := await status(http, task_id))["accounts"] == first["accounts"]:  # noqa: ASYNC110 - polled as a page does
                await asyncio.sleep(0.05)
        assert after["accounts"] == {"active": 1, "cooling_down": 1}
        # one account fewer for an hour: later
        assert datetime.fromisoformat(after["eta"]) > datetime.fromisoformat(first["eta"])
        # a pause: the plan of the running task is not served for the paused one
        await pool.execute("UPDATE invite_tasks SET status = 'paused' WHERE id = $1", task_id)
        await pool.execute(
            "UPDATE invite_accounts SET cooldown_until = NULL, status = 'active' WHERE id LIKE $1",
            f"{task_id}-%",
        )
        paused = await status(http, task_id)
        assert (paused["status"], paused["accounts"]) == ("paused", {"active": 2})


async def test_a_plan_still_made_past_its_interval_is_not_joined_by_another(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    clock = AheadClock()
    async with serve(settings, clock) as http:
        task_id = await running_task(http, pool, 2)
        first = await status(http, task_id)
        await pool.execute(  # an account starts cooling: what the next plan reads
            """UPDATE invite_accounts SET status = 'cooldown', status_reason = 'FloodWait 3600 s',
                      cooldown_until = now() + interval '1 hour'
               WHERE id = (SELECT account_id FROM invite_task_accounts WHERE task_id = $1 LIMIT 1)""",
            task_id,
        )
        async with pool.acquire() as locker, locker.transaction():
            await locker.execute("LOCK TABLE invite_task_accounts IN ACCESS EXCLUSIVE MODE")
            clock.ahead = timedelta(seconds=STATUS_PLAN_SECONDS)
            await asyncio.wait_for(status(http, task_id), 5)  # the next plan begins ...
            async with asyncio.timeout(5):
                while await plans_waiting(pool) == 0:  # noqa: ASYNC110 - PostgreSQL has no event for "a lock is waited on"
                    await asyncio.sleep(0.02)
            # ... and is still being made intervals later: the requests have the first meanwhile
            for intervals in range(2, 5):
                clock.ahead = timedelta(seconds=STATUS_PLAN_SECONDS * intervals)
                later = await asyncio.wait_for(status(http, task_id), 5)
                assert (later["accounts"], later["eta"]) == (first["accounts"], first["eta"])
            await asyncio.sleep(0.3)  # a plan begun by them has had the time to reach the lock
            assert await plans_waiting(pool) == 1
        async with asyncio.timeout(10):  # the one plan made is served
            while (after := await status(http, task_id))["accounts"] == first["accounts"]:  # noqa: ASYNC110 - polled as a page does
                await asyncio.sleep(0.05)
        assert after["accounts"] == {"active": 1, "cooling_down": 1}
