"""The app as a whole: errors as problem details, request ids, health, metrics, docs, start-up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec
import pytest
from litestar import get
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from invite.app import create_app
from invite.kernel.settings import ROOT, Settings
from tests.conftest import ADMIN_URL, _admin, with_database
from tests.integration.api import PREFIX, Client, insert_targets, invite_task
from tests.ports import free_port
from tests.relay import Relay

TASKS = f"{PREFIX}/tasks"


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


# --- problem details and request ids --------------------------------------------------------------


async def test_unknown_routes_and_methods_are_problems_with_a_request_id(client: Client) -> None:
    missing = await client.get(f"{PREFIX}/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json() == {
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
        "instance": f"{PREFIX}/nothing-here",
    }
    assert len(missing.headers["x-request-id"]) == 32
    wrong_method = await client.patch(TASKS, headers={"X-Request-ID": "abc-123"})
    assert wrong_method.status_code == 405
    assert wrong_method.json()["title"] == "Method Not Allowed"
    assert wrong_method.headers["x-request-id"] == "abc-123"


async def test_malformed_json_is_a_400_problem(client: Client, headers: dict[str, str]) -> None:
    response = await client.post(
        TASKS, content=b"{not json", headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


@get("/boom", opt={"exclude_from_auth": True})
async def boom() -> None:
    raise RuntimeError("internal detail: password=hunter2")


async def test_an_unexpected_error_is_a_500_problem_without_internals(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)
    app.register(boom)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/boom", headers={"X-Request-ID": "req-boom"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "something went wrong on our side"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    logged = [r for r in caplog.records if r.name == "invite.app" and r.levelname == "ERROR"]
    assert logged, "the error is logged"
    assert "req-boom" in caplog.text


# --- health and an unavailable database ---------------------------------------------------------


@pytest.fixture
def relay() -> Iterator[Relay]:
    admin = urlsplit(ADMIN_URL)
    relay = Relay((admin.hostname or "127.0.0.1", admin.port or 5432))
    yield relay
    relay.cut()


async def test_health_and_readiness(client: Client) -> None:
    assert (await client.get(f"{PREFIX}/health")).json() == {"status": "ok"}
    assert (await client.get(f"{PREFIX}/health/ready")).json() == {"status": "ready"}


async def test_a_lost_database_is_a_503_and_liveness_stays_up(
    settings: Settings, fresh_database_url: str, relay: Relay, headers: dict[str, str]
) -> None:
    app = create_app(msgspec.structs.replace(settings, database_url=relay.url(fresh_database_url)))
    async with AsyncTestClient(app=app) as client:
        assert (await client.get(TASKS, headers=headers)).status_code == 200
        relay.cut()
        ready = await client.get(f"{PREFIX}/health/ready")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        tasks = await client.get(TASKS, headers=headers)
        assert tasks.status_code == 503, tasks.text
        assert tasks.json()["detail"] == "the database is not available"
        assert tasks.headers["retry-after"] == "5"
        assert (await client.get(f"{PREFIX}/health")).status_code == 200


@pytest.fixture
async def empty_database_url() -> AsyncIterator[str]:
    name = f"invite_app_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    yield with_database(ADMIN_URL, name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_start_up_migrates_an_empty_database(settings: Settings, empty_database_url: str) -> None:
    app = create_app(msgspec.structs.replace(settings, database_url=empty_database_url))
    async with AsyncTestClient(app=app) as client:
        assert (await client.get(f"{PREFIX}/health/ready")).status_code == 200
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") >= 1
        assert await conn.fetchval("SELECT to_regclass('invite_tasks') IS NOT NULL")
    finally:
        await conn.close()


# --- metrics and docs -----------------------------------------------------------------------------


async def test_metrics_count_requests_by_route_template_and_gauge_running_tasks(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    before = (await client.get("/metrics")).text
    route = f"{TASKS}/{{task_id}}"
    missing = {"method": "GET", "route": route, "status": "404"}
    await client.get(f"{TASKS}/{uuid.uuid4()}", headers=headers)
    task_id = (await client.post(TASKS, json=invite_task(), headers=headers)).json()["id"]
    await insert_targets(pool, task_id, 1)
    assert (await client.post(f"{TASKS}/{task_id}/start", headers=headers)).status_code == 200
    after_response = await client.get("/metrics")
    assert after_response.headers["content-type"].startswith("text/plain")
    after = after_response.text
    assert (
        metric(after, "invite_http_requests_total", **missing)
        == metric(before, "invite_http_requests_total", **missing) + 1
    )
    assert metric(after, "invite_http_request_duration_seconds_count", **missing) >= 1
    assert f'route="{TASKS}/{task_id}"' not in after  # paths are never labels
    running = await pool.fetchval(
        "SELECT count(*) FROM invite_tasks WHERE status = 'running' AND platform = 'telegram'"
    )
    assert metric(after, "invite_active_tasks", platform="telegram") == running
    assert metric(after, "invite_active_tasks", platform="telegram") >= 1


async def test_openapi_documents_the_schemas_and_bearer_auth(client: Client) -> None:
    doc = (await client.get("/docs/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for name in (
        "InviteTaskCreate",
        "InviteTaskUpdate",
        "InviteTaskResponse",
        "TaskListResponse",
        "TaskProgress",
        "TaskForecast",
    ):
        assert name in schemas
    assert doc["components"]["securitySchemes"]["BearerToken"]["scheme"] == "Bearer"
    assert f"{TASKS}/{{task_id}}/start" in doc["paths"]


# --- two-command start ------------------------------------------------------------------------------


@pytest.mark.slow
def test_serve_without_database_url_runs_an_embedded_postgres(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JWT_SECRET", "VAULT_ADDR", "PORT")
    }
    env.update(DATA_DIR=str(tmp_path), PORT=str(port), LOG_JSON="true")
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "invite", "serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a cold initdb on a loaded machine can be slow
        healthy = False
        while time.monotonic() < deadline and server.poll() is None and not healthy:
            with contextlib.suppress(httpx.HTTPError):
                healthy = httpx.get(f"{base}{PREFIX}/health", timeout=2).status_code == 200
            if not healthy:
                time.sleep(0.25)
        log.seek(0)
        output = log.read()
        assert healthy, output
        token = next(word for word in output.split() if word.startswith("eyJ"))
        listed = httpx.get(f"{base}{TASKS}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert listed.status_code == 200, listed.text
        assert "curl -s -H" in output
        assert (tmp_path / "pg" / "PG_VERSION").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    assert not _postgres_running_in(tmp_path / "pg"), "the embedded server stops with the service"


def _postgres_running_in(pgdata: Path) -> bool:
    for _ in range(200):  # pg_ctl stop waits for a checkpoint: give a loaded machine time
        if not (pgdata / "postmaster.pid").exists():
            return False
        time.sleep(0.1)
    return True
