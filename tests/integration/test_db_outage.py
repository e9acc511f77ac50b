"""PostgreSQL goes away and comes back: the service says so, holds still, and picks up by itself.

The database is reached through a TCP relay (tests/relay.py) that is cut and restored; the
machine's PostgreSQL itself is never touched. Observations go through a pool of their own,
straight to the server.

- The API: while the database is gone every route that needs it answers a 503 problem with
  Retry-After (every route of the route table, so a new one is covered), liveness stays up,
  readiness says not ready; once it is back the same app serves again, without a restart.
- The engine (sandbox driver, real clock): while the database is gone it sends nothing it had
  not claimed before the cut, and then nothing at all; once it is back it finishes the campaign
  by itself, nobody contacted twice, every target in a final state.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from invite.app import create_app
from invite.kernel.clock import RealClock
from invite.kernel.db import create_pool
from invite.kernel.settings import Settings
from invite.platforms.base import OutcomeKind, RateLimits
from invite.platforms.sandbox import (
    ActionKind,
    MemoryRecord,
    SandboxAccounts,
    SandboxFactory,
    SandboxProfile,
    sends_per_target,
)
from invite.wiring import build_engine
from tests.conftest import ADMIN_URL
from tests.fakeserver import FakeServer, Reply
from tests.integration.api import PREFIX, Client, auth_headers, message_task, new_tenant
from tests.integration.engine.harness import make_task
from tests.relay import Relay
from tests.security.test_tenant_isolation import ROUTE_SETTINGS, api_routes

PLENTY = 10_000_000
FINAL = ("succeeded", "skipped", "failed", "uncertain", "cancelled")


@pytest.fixture
def relay() -> Iterator[Relay]:
    admin = urlsplit(ADMIN_URL)
    relay = Relay((admin.hostname or "127.0.0.1", admin.port or 5432))
    yield relay
    relay.close()


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        await asyncio.sleep(0.1)


# --- the API --------------------------------------------------------------------------------------

CSV = b"username\nalice_outage\n"
BODIES = {
    ("POST", "/tasks"): message_task(),
    ("PUT", "/tasks/{task_id}"): {"title": "renamed"},
    ("POST", "/suppressions"): {"identifiers": ["alice_outage"]},
    ("POST", "/import/parsing"): {"task_id": "{task_id}", "parsing_task_id": str(uuid.uuid4())},
}
UPLOADS = {"/import/file", "/import/validate", "/suppressions/import"}
QUERIES = {("GET", "/import/validate"): f"?parsing_task_id={uuid.uuid4()}&task_id={{task_id}}"}
NOT_THE_DATABASE = {("GET", "/health"): 200}  # liveness: the process is up


@pytest.fixture
def parsing() -> Iterator[FakeServer]:
    with FakeServer() as server:
        server.route(
            "GET", "/results/{task_id}", Reply(json={"results": [], "pagination": {"has_more": False}})
        )
        yield server


@pytest.fixture
async def relayed_client(
    settings: Settings, fresh_database_url: str, relay: Relay, parsing: FakeServer
) -> AsyncIterator[Client]:
    configured = msgspec.structs.replace(
        settings,
        database_url=relay.url(fresh_database_url),
        engine_enabled=False,
        parsing_service_url=parsing.url,
    )
    async with AsyncTestClient(app=create_app(configured)) as client:
        yield client


async def call(
    client: Client, method: str, path: str, task_id: str, headers: dict[str, str]
) -> httpx.Response:
    url = PREFIX + path.format(task_id=task_id, import_id=uuid.uuid4(), identifier="alice_outage")
    url += QUERIES.get((method, path), "").format(task_id=task_id)
    if path in UPLOADS:
        form = {"task_id": task_id} if path.startswith("/import") else {}
        return await client.post(url, files={"file": ("p.csv", CSV, "text/csv")}, data=form, headers=headers)
    body = BODIES.get((method, path))
    if isinstance(body, dict):
        body = {k: task_id if v == "{task_id}" else v for k, v in body.items()}
    return await client.request(method, url, json=body, headers=headers)


async def test_the_api_answers_503_while_the_database_is_gone_and_recovers(
    relayed_client: Client, relay: Relay
) -> None:
    client = relayed_client
    headers = auth_headers(client, new_tenant())
    created = await client.post(f"{PREFIX}/tasks", json=message_task(), headers=headers)
    assert created.status_code == 201
    task_id = created.json()["id"]

    relay.cut()
    for method, path in sorted(api_routes(ROUTE_SETTINGS)):
        response = await call(client, method, path, task_id, headers)
        expected = NOT_THE_DATABASE.get((method, path), 503)
        assert response.status_code == expected, (
            f"{method} {path}: {response.status_code} {response.text[:200]}"
        )
        if expected == 503:
            assert response.headers["content-type"].startswith("application/problem+json")
            if path != "/health/ready":
                assert response.headers["retry-after"] == "5"
    ready = await client.get(f"{PREFIX}/health/ready")
    assert (ready.status_code, ready.json()["detail"]) == (503, "the database does not answer")

    relay.restore()

    async def serving() -> bool:
        return (await client.get(f"{PREFIX}/health/ready")).status_code == 200

    await eventually(serving, 15, "readiness after the database came back")
    assert (await client.get(f"{PREFIX}/tasks/{task_id}", headers=headers)).status_code == 200
    again = await client.post(f"{PREFIX}/tasks", json=message_task(), headers=headers)
    assert again.status_code == 201
    assert re.fullmatch(r"[0-9a-f-]{36}", again.json()["id"])


# --- the engine -----------------------------------------------------------------------------------


def completed(pool: asyncpg.Pool | asyncpg.Connection, task_id: uuid.UUID) -> Callable[[], Awaitable[bool]]:
    """Whether the task has completed, asked anew on each call (for ``eventually``)."""

    async def check() -> bool:
        status = await pool.fetchval("SELECT status FROM invite_tasks WHERE id = $1", task_id)
        return bool(status == "completed")

    return check


async def _counts(pool: asyncpg.Pool | asyncpg.Connection, task_id: uuid.UUID) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) FROM invite_targets WHERE task_id = $1 GROUP BY 1", task_id
    )
    return {row[0]: row[1] for row in rows}


async def test_the_engine_holds_still_while_the_database_is_gone_and_resumes(
    settings: Settings, fresh_database_url: str, relay: Relay
) -> None:
    tenant, targets = new_tenant(), 400
    run = _through_relay(settings, relay.url(fresh_database_url), lease_seconds=3.0)
    observer = await create_pool(fresh_database_url, settings)  # straight to the server, never cut
    record = MemoryRecord()
    factory = _sandbox(run, record, SandboxProfile.zero())
    try:
        task_id = await make_task(
            observer,
            targets=targets,
            user_id=tenant,
            task_type="send_messages",
            template="Hello {first_name}",
            prefix="outage",
        )
        pool = await create_pool(run.database_url or "", run)
        engine = build_engine(pool, run, RealClock(), strategies=factory, accounts=SandboxAccounts(3))
        await engine.start()
        try:

            async def under_way() -> bool:
                return (await _counts(observer, task_id)).get("succeeded", 0) >= 40

            await eventually(under_way, 30, "the campaign under way")
            relay.cut()
            await asyncio.sleep(0.3)  # a commit already on the wire lands or not: the server knows
            claimed = {
                row[0]
                for row in await observer.fetch(
                    "SELECT identifier_key FROM invite_targets WHERE task_id = $1 AND status = 'in_flight'",
                    task_id,
                )
            }
            seen = len(record.actions)
            await asyncio.sleep(1.5)
            during = record.actions[seen:]
            assert {a.target_key for a in during} <= claimed, "sent to someone not claimed before the cut"
            quiet = len(record.actions)
            await asyncio.sleep(1.5)
            assert len(record.actions) == quiet, "the engine kept acting without its database"

            relay.restore()

            await eventually(
                completed(observer, task_id), 60, "the campaign finished after the database came back"
            )
        finally:
            await engine.stop()
            await pool.close()
        counts = await _counts(observer, task_id)
        sent = sends_per_target(record.actions)
        assert max(sent.values()) == 1, "someone got the message twice"
        assert counts.get("uncertain", 0) <= len(claimed), counts
        assert counts.get("succeeded", 0) == len(sent)
        assert (
            await observer.fetchval("SELECT status FROM invite_tasks WHERE id = $1", task_id) == "completed"
        )
    finally:
        await observer.close()


async def test_outcomes_held_through_a_long_outage_land_when_the_database_returns(
    settings: Settings, fresh_database_url: str, relay: Relay
) -> None:
    """The recorder keeps what was done while the database is away, however long (here longer
    than its retries once lasted), and writes it when the database is back: no target that was
    acted on is left in doubt."""
    tenant, targets = new_tenant(), 200
    # nothing expires during the outage: every outcome is still ours
    run = _through_relay(settings, relay.url(fresh_database_url), lease_seconds=60.0)
    observer = await create_pool(fresh_database_url, settings)  # straight to the server, never cut
    record = MemoryRecord()
    # an action in hand when the cut comes
    factory = _sandbox(run, record, SandboxProfile(latency_seconds=(0.05, 0.2)))
    try:
        task_id = await make_task(
            observer,
            targets=targets,
            user_id=tenant,
            task_type="send_messages",
            template="Hello {first_name}",
            prefix="long",
        )
        pool = await create_pool(run.database_url or "", run)
        engine = build_engine(pool, run, RealClock(), strategies=factory, accounts=SandboxAccounts(3))
        await engine.start()
        try:

            async def under_way() -> bool:
                return (await _counts(observer, task_id)).get("succeeded", 0) >= 40

            await eventually(under_way, 30, "the campaign under way")
            relay.cut()

            async def failing() -> bool:
                return engine.ctx.recorder.failing

            await eventually(failing, 10, "an outcome the recorder could not write")
            await asyncio.sleep(0.5)  # the other actions in hand are answered
            seen = len(record.actions)
            await asyncio.sleep(6.0)  # longer than the old recorder's retries lasted
            assert len(record.actions) == seen, "the engine acted while it could not record"
            held = {a.target_key for a in record.actions} - {
                row[0]
                for row in await observer.fetch(
                    "SELECT identifier_key FROM invite_targets WHERE task_id = $1 AND status = 'succeeded'",
                    task_id,
                )
            }
            assert held

            relay.restore()

            await eventually(
                completed(observer, task_id), 60, "the campaign finished after the database came back"
            )
        finally:
            await engine.stop()
            await pool.close()
        counts = await _counts(observer, task_id)
        sent = sends_per_target(record.actions)
        logged = await observer.fetchval(
            "SELECT count(*) FROM invite_execution_logs WHERE task_id = $1 AND action = 'send_message'",
            task_id,
        )
        assert counts == {"succeeded": targets}
        assert max(sent.values()) == 1
        assert len(sent) == targets
        assert logged == len(record.actions)  # the log rows of the held outcomes landed too
    finally:
        await observer.close()


async def test_a_claim_whose_answer_is_lost_is_put_back_at_once_and_sent_once(
    settings: Settings, fresh_database_url: str, relay: Relay
) -> None:
    """The connection breaks after a claim committed, before its answer arrived: what it put in
    flight was handed to no account, so the claimer puts it back as soon as the database answers
    again -- not when its lease runs out (far beyond this test), which would leave a message in
    doubt -- its attempt given back; everyone gets one message."""
    tenant, targets = new_tenant(), 30
    run = _through_relay(settings, relay.url(fresh_database_url), lease_seconds=600.0)
    observer = await create_pool(fresh_database_url, settings)
    record = MemoryRecord()
    factory = _sandbox(run, record, SandboxProfile(latency_seconds=(0.02, 0.05)))
    put_back = REGISTRY.get_sample_value("invite_engine_lost_claim_targets_total") or 0.0
    try:
        task_id = await make_task(
            observer, targets=targets, user_id=tenant, task_type="send_messages", template="Hi", prefix="lost"
        )
        pool = await create_pool(run.database_url or "", run)
        engine = build_engine(pool, run, RealClock(), strategies=factory, accounts=SandboxAccounts(3))
        await engine.start()
        try:

            async def under_way() -> bool:
                return (await _counts(observer, task_id)).get("succeeded", 0) >= 5

            await eventually(under_way, 30, "the campaign under way")
            relay.lose_answer_to(b'"pause":')  # in the claim's accounts document only
            assert await asyncio.to_thread(relay.answer_lost.wait, 10), "no claim answer was lost"
            relay.restore()

            await eventually(
                completed(observer, task_id),
                30,
                "the campaign finished well before the lost claim's lease ran out",
            )
        finally:
            await engine.stop()
            await pool.close()
        sent = sends_per_target(record.actions)
        assert await _counts(observer, task_id) == {"succeeded": targets}
        assert len(sent) == targets
        assert max(sent.values()) == 1
        # the lost claim's attempt not counted (its reservation's refund: test_claim_plan.py)
        attempts = await observer.fetchval(
            "SELECT max(attempts) FROM invite_targets WHERE task_id = $1", task_id
        )
        assert attempts == 1
        assert (REGISTRY.get_sample_value("invite_engine_lost_claim_targets_total") or 0.0) > put_back
    finally:
        await observer.close()


def _through_relay(settings: Settings, url: str, *, lease_seconds: float) -> Settings:
    """An engine reaching the database through the relay, fast and with no quota in the way."""
    return msgspec.structs.replace(
        settings,
        database_url=url,
        daily_quota=PLENTY,
        daily_quota_with_link=PLENTY,
        warmup_days=0,  # new accounts at the full quota at once
        min_pause_seconds=0.02,
        poll_interval_seconds=0.5,
        account_lease_seconds=lease_seconds,
        target_lease_seconds=lease_seconds,
        db_pool_max=8,
        http_timeout_seconds=2.0,
    )


def _sandbox(run: Settings, record: MemoryRecord, profile: SandboxProfile) -> SandboxFactory:
    return SandboxFactory(
        RealClock(), limits=RateLimits(PLENTY, PLENTY, run.min_pause_seconds), profile=profile, record=record
    )


async def test_a_link_whose_save_lost_its_answer_is_sent_once_and_saved_first(
    settings: Settings, fresh_database_url: str, relay: Relay
) -> None:
    """An invite task offering one-use links (everyone's privacy refuses the add): the
    connection breaks as the first link is saved, before the answer came back. No message goes
    out with a link that was not saved first; everyone ends with one message and the link it
    carries is the one saved for them."""
    tenant, targets = new_tenant(), 12
    run = _through_relay(settings, relay.url(fresh_database_url), lease_seconds=600.0)
    # the link step the lost answer broke is retried after the backoff: a short one here
    run = msgspec.structs.replace(run, retry_backoff_seconds=0.5)
    observer = await create_pool(fresh_database_url, settings)
    record = MemoryRecord()
    factory = _sandbox(run, record, SandboxProfile(invite_privacy_rate=1.0, latency_seconds=(0.02, 0.05)))
    try:
        task_id = await make_task(
            observer,
            targets=targets,
            user_id=tenant,
            template="Hi, here: {invite_link}",
            settings={"privacy_fallback": "invite_link"},
            prefix="linked",
        )
        relay.lose_answer_to(b"INSERT INTO invite_links")
        pool = await create_pool(run.database_url or "", run)
        engine = build_engine(pool, run, RealClock(), strategies=factory, accounts=SandboxAccounts(2))
        await engine.start()
        try:
            assert await asyncio.to_thread(relay.answer_lost.wait, 30), "no save's answer was lost"
            relay.restore()

            await eventually(completed(observer, task_id), 60, "the campaign finished")
        finally:
            await engine.stop()
            await pool.close()
        messages = [
            a for a in record.actions if a.action is ActionKind.MESSAGE and a.outcome is OutcomeKind.SUCCESS
        ]
        saved = {
            r["identifier_key"]: r["url"]
            for r in await observer.fetch(
                """SELECT g.identifier_key, l.url FROM invite_links l JOIN invite_targets g ON g.id = l.target_id
                   WHERE l.task_id = $1""",
                task_id,
            )
        }
        assert (
            sorted(m.target_key for m in messages)
            == sorted(saved)
            == sorted(f"u:linked{n}" for n in range(1, 13))
        )
        assert {m.target_key: m.link_url for m in messages} == saved
        rows = await observer.fetch("SELECT status, outcome FROM invite_targets WHERE task_id = $1", task_id)
        assert {(r["status"], r["outcome"]) for r in rows} == {("skipped", "link_sent")}
    finally:
        await observer.close()
