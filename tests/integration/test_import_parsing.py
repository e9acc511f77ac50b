"""POST /import/parsing and GET /import/validate against a local Parsing Service.

The service answers as PLATFORM-CONTRACTS.md says: pages of ``results`` with
``pagination.has_more``, an empty list for unknown or foreign tasks, its JWT with ``user_id``.
Failures (500, timeouts, a failing later page) are a 502 naming it, and nothing is imported.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from invite.app import create_app
from invite.kernel.settings import Settings
from tests.fakeserver import FakeServer, Reply, Request
from tests.integration.api import PREFIX, Client, auth_headers, new_tenant
from tests.integration.audience import new_task, problem, targets, written
from tests.integration.parsing import ParsingService

PARSING_TASK = "0b6f7f2e-9a41-4d55-8d0e-1c2b3a4d5e6f"
RESULTS = f"/results/{PARSING_TASK}"


def result(n: int) -> dict[str, Any]:
    """One result as the Parsing Service formats it; every 100th person is a bot."""
    bot = n % 100 == 99
    return {
        "id": str(n),
        "task_id": PARSING_TASK,
        "platform": "telegram",
        "platform_id": str(100_000 + n),
        "username": f"person_{n:05d}" if n % 3 else None,
        "display_name": f"Person {n}",
        "author_phone": None,
        "created_at": "2026-01-05T09:00:00",
        "platform_specific_data": {
            "user_id": 100_000 + n,
            "username": f"person_{n:05d}" if n % 3 else None,
            "first_name": f"First{n}",
            "last_name": "Last",
            "is_bot": bot,
            "user_type": "bot" if bot else "member",
            "chat_id": -1001234567890,
        },
    }


@pytest.fixture
def parsing() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
async def client(settings: Settings, parsing: FakeServer) -> AsyncIterator[Client]:
    tuned = msgspec.structs.replace(
        settings, parsing_service_url=parsing.url, http_timeout_seconds=0.5, http_retries=1
    )
    async with AsyncTestClient(app=create_app(tuned)) as test_client:
        yield test_client


def serve(parsing: FakeServer, settings: Settings, people: list[dict[str, Any]]) -> ParsingService:
    assert settings.jwt_secret is not None
    service = ParsingService(settings.jwt_secret, people)
    parsing.route("GET", "/results/{task_id}", service)
    return service


async def import_parsing(
    client: Client, headers: dict[str, str], task_id: str, parsing_task: str = PARSING_TASK
) -> Any:
    return await client.post(
        f"{PREFIX}/import/parsing",
        json={"task_id": task_id, "parsing_task_id": parsing_task},
        headers=headers,
    )


async def test_every_page_is_imported_up_to_the_task_limit(
    client: Client,
    tenant: str,
    headers: dict[str, str],
    parsing: FakeServer,
    settings: Settings,
    pool: asyncpg.Pool,
) -> None:
    service = serve(parsing, settings, [result(n) for n in range(1200)])
    task_id = await new_task(client, headers)
    response = await import_parsing(client, headers, task_id)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["source"] == {"kind": "parsing", "name": PARSING_TASK, "format": "parsing"}
    assert body["columns"]["user_id"] == "platform_id"
    assert body["counts"]["rows"] == 1200
    assert body["counts"]["bots"] == 12
    assert (body["counts"]["imported"], body["counts"]["over_limit"]) == (1000, 188)
    offsets = [r.arg("offset") for r in parsing.requests_to("GET", RESULTS)]
    assert offsets == ["0", "1000"]
    assert service.tenants == [int(tenant), int(tenant)]
    rows = await targets(pool, task_id)
    assert len(rows) == 1000
    assert (rows[0]["identifier_key"], rows[1]["identifier_key"]) == ("id:100000", "u:person_00001")
    assert rows[1]["user_data"] == {
        "username": "person_00001",
        "user_id": "100001",
        "first_name": "First1",
        "last_name": "Last",
    }


async def test_an_empty_result_is_422_and_nothing_is_written(
    client: Client, headers: dict[str, str], parsing: FakeServer, settings: Settings, pool: asyncpg.Pool
) -> None:
    serve(parsing, settings, [])
    task_id = await new_task(client, headers)
    body = problem(await import_parsing(client, headers, task_id), 422)
    assert body["invalid-params"][0]["name"] == "parsing_task_id"
    assert await written(pool, task_id) == (0, 0, 0)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(Reply(500, json={"detail": "boom"}), id="500"),
        pytest.param(Reply(json={"results": []}, delay=2.0), id="timeout"),
        pytest.param(Reply(drop=True), id="connection-dropped"),
        pytest.param(Reply(200, body=b"<html>gateway</html>"), id="not-json"),
    ],
)
async def test_a_failing_service_is_502_naming_it_and_nothing_is_written(
    client: Client, headers: dict[str, str], parsing: FakeServer, pool: asyncpg.Pool, failure: Reply
) -> None:
    parsing.route("GET", "/results/{task_id}", failure)
    task_id = await new_task(client, headers)
    body = problem(await import_parsing(client, headers, task_id), 502)
    assert body["service"] == "parsing-service"
    assert "parsing-service" in body["detail"]
    assert await written(pool, task_id) == (0, 0, 0)


async def test_a_later_page_failing_never_leaves_a_partial_import(
    client: Client, headers: dict[str, str], parsing: FakeServer, settings: Settings, pool: asyncpg.Pool
) -> None:
    service = ParsingService(settings.jwt_secret or "", [result(n) for n in range(1500)])

    def second_page_fails(request: Request) -> Reply:
        return Reply(500) if request.arg("offset") != "0" else service(request)

    parsing.route("GET", "/results/{task_id}", second_page_fails)
    task_id = await new_task(client, headers)
    problem(await import_parsing(client, headers, task_id), 502)
    assert await written(pool, task_id) == (0, 0, 0)


async def test_a_bad_parsing_task_id_is_422_without_a_call(
    client: Client, headers: dict[str, str], parsing: FakeServer
) -> None:
    task_id = await new_task(client, headers)
    body = problem(await import_parsing(client, headers, task_id, parsing_task="17"), 422)
    assert body["invalid-params"][0]["name"] == "parsing_task_id"
    assert parsing.requests == []


async def test_a_foreign_or_finished_task_is_refused_before_calling_the_service(
    client: Client, headers: dict[str, str], parsing: FakeServer, pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    stranger = auth_headers(client, new_tenant())
    problem(await import_parsing(client, stranger, task_id), 404)
    await pool.execute("UPDATE invite_tasks SET status = 'completed' WHERE id = $1", uuid.UUID(task_id))
    problem(await import_parsing(client, headers, task_id), 409)
    assert parsing.requests == []


async def test_validate_a_parsing_result_without_writing(
    client: Client, headers: dict[str, str], parsing: FakeServer, settings: Settings, pool: asyncpg.Pool
) -> None:
    serve(parsing, settings, [result(n) for n in range(5)])
    task_id = await new_task(client, headers)
    response = await client.get(
        f"{PREFIX}/import/validate",
        params={"parsing_task_id": PARSING_TASK, "task_id": task_id},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["dry_run"], body["import_id"], body["counts"]["imported"]) == (True, None, 5)
    assert [p["key"] for p in body["preview"]] == [
        "id:100000",
        "u:person_00001",
        "u:person_00002",
        "id:100003",
        "u:person_00004",
    ]
    assert body["preview"][1]["data"] == {
        "username": "person_00001",
        "user_id": "100001",
        "first_name": "First1",
        "last_name": "Last",
    }
    assert await written(pool, task_id) == (0, 0, 0)
    alone = await client.get(
        f"{PREFIX}/import/validate", params={"parsing_task_id": PARSING_TASK}, headers=headers
    )
    assert (alone.status_code, alone.json()["task_id"]) == (200, None)
    missing = await client.get(f"{PREFIX}/import/validate", params={"task_id": task_id}, headers=headers)
    assert "parsing_task_id" in problem(missing, 422)["invalid-params"][0]["reason"]


async def test_without_a_parsing_service_configured(settings: Settings) -> None:
    async with AsyncTestClient(app=create_app(settings)) as bare:
        headers = auth_headers(bare, new_tenant())
        task_id = await new_task(bare, headers)
        problem(await import_parsing(bare, headers, task_id), 503)
