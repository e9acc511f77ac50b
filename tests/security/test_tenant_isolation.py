"""No tenant reaches another's data, on every route of the app's route table.

Tenant A owns the data; tenant B (another valid token) tries each route on it.

- A route whose path names a resource (``{task_id}``, ``{import_id}``) is covered by its path
  alone: B calling it with A's id gets the same 404 problem as for an id that does not exist
  (never 403, never A's data), for A's task in every state, and A's rows are unchanged after.
  A new route under ``/tasks/{task_id}`` is covered without touching this file (give it a body
  in ``BODIES`` if it needs one: a 422 is not a proof of isolation).
- A route without such a parameter needs a probe in ``PROBES`` (ids in the body or form,
  lists, lookups) or a reason in ``TENANT_FREE``; a route with neither fails
  ``test_every_route_is_covered``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.routes import HTTPRoute

from invite.app import create_app
from invite.kernel.settings import Settings
from tests.integration.api import PREFIX, Client, insert_targets, message_task
from tests.integration.audience import upload
from tests.security.conftest import PARSING_TASK

TASK_STATES = ("draft", "scheduled", "running", "paused", "completed", "cancelled")
ID_PARAMS = ("task_id", "import_id")

# Bodies that are valid for the owner, so that only the ownership check can refuse B.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/tasks/{task_id}"): {"title": "taken over"},
}
# Extra query strings a route is tried with (each is a separate call).
QUERIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "/tasks/{task_id}/report"): ("", "?format=csv", "?format=xlsx"),
    ("GET", "/tasks/{task_id}/logs"): ("", "?status=succeeded&limit=1"),
}

TENANT_FREE: dict[tuple[str, str], str] = {
    ("GET", "/health"): "liveness: answers the same constant to anyone, reads nothing",
    ("GET", "/health/ready"): "readiness: pings the database, returns no rows",
}


def api_routes(settings: Settings) -> set[tuple[str, str]]:
    """(method, path under the prefix) of every API route; path parameters without their types."""
    app = create_app(settings)
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith(PREFIX):
            continue
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path.removeprefix(PREFIX))
        found |= {(str(method), path) for method in route.methods if method not in ("OPTIONS", "HEAD")}
    return found


def names_a_resource(path: str) -> bool:
    return any(f"{{{name}}}" in path for name in ID_PARAMS)


# --- tenant A's data ------------------------------------------------------------------------------


@dataclass
class World:
    client: Client
    pool: asyncpg.Pool
    owner: dict[str, str]
    stranger: dict[str, str]
    secret_title: str = field(default_factory=lambda: f"A's secret campaign {uuid.uuid4().hex[:8]}")

    async def call(self, method: str, path: str, headers: dict[str, str], json: Any = None) -> httpx.Response:
        return await self.client.request(method, f"{PREFIX}{path}", headers=headers, json=json)

    async def task(self, state: str) -> str:
        """A's send_messages task with three people, brought to ``state`` the way A would."""
        scheduled = (datetime.now(UTC) + timedelta(days=1)).isoformat() if state == "scheduled" else None
        created = await self.call(
            "POST", "/tasks", self.owner, message_task(title=self.secret_title, scheduled_at=scheduled)
        )
        assert created.status_code == 201, created.text
        task_id: str = created.json()["id"]
        await insert_targets(self.pool, task_id, 3)
        steps = {
            "scheduled": ["start"],
            "running": ["start"],
            "paused": ["start", "pause"],
            "cancelled": ["cancel"],
            "completed": ["start"],
        }.get(state, [])
        for step in steps:
            answer = await self.call("POST", f"/tasks/{task_id}/{step}", self.owner)
            assert answer.status_code == 200, answer.text
        if state == "completed":  # the engine's job: one person reached, one failed, one uncertain
            await self.pool.execute(
                """UPDATE invite_targets SET status = (ARRAY['succeeded','failed','uncertain'])[seq % 3 + 1]
                   WHERE task_id = $1""",
                uuid.UUID(task_id),
            )
            await self.pool.execute(
                "UPDATE invite_tasks SET status = 'completed', completed_at = now() WHERE id = $1",
                uuid.UUID(task_id),
            )
        read = await self.call("GET", f"/tasks/{task_id}", self.owner)
        assert read.json()["status"] == state
        return task_id

    async def import_id(self) -> str:
        task_id = await self.task("draft")
        response = await upload(self.client, self.owner, b"username\nalice_owner\n", "a.csv", task_id=task_id)
        assert response.status_code == 201, response.text
        import_id: str = response.json()["import_id"]
        return import_id

    async def snapshot(self, task_id: str) -> tuple[Any, ...]:
        """Everything of A's task that B could change: the row, its targets, imports, audit."""
        task = uuid.UUID(task_id)
        return (
            await self.pool.fetchval("SELECT row_to_json(t)::text FROM invite_tasks t WHERE id = $1", task),
            await self.pool.fetch(
                "SELECT identifier_key, status, outcome FROM invite_targets WHERE task_id = $1 ORDER BY seq",
                task,
            ),
            await self.pool.fetchval("SELECT count(*) FROM invite_imports WHERE task_id = $1", task),
            await self.pool.fetchval("SELECT count(*) FROM invite_audit_log WHERE resource_id = $1", task_id),
        )

    async def assert_not_found(self, response: httpx.Response, missing: httpx.Response) -> None:
        """B's answer for A's resource: a 404 problem, the same as for a resource that does not exist."""
        assert response.status_code == 404, f"{response.request.url}: {response.status_code} {response.text}"
        assert response.headers["content-type"].startswith("application/problem+json")
        assert self.secret_title not in response.text
        assert without_instance(response) == without_instance(missing), "a foreign id is told apart"


def without_instance(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    body.pop("instance", None)
    return body


@pytest.fixture
def world(client: Client, pool: asyncpg.Pool, owner: dict[str, str], stranger: dict[str, str]) -> World:
    return World(client, pool, owner, stranger)


# --- routes naming a resource in their path: covered by the path alone --------------------------


def resource_routes(settings: Settings) -> list[tuple[str, str]]:
    return sorted(route for route in api_routes(settings) if names_a_resource(route[1]))


ROUTE_SETTINGS = Settings(database_url="postgresql://unused/unused", jwt_secret="x" * 40, log_json=False)


@pytest.mark.parametrize(("method", "path"), resource_routes(ROUTE_SETTINGS))
async def test_another_tenants_resource_is_not_found(world: World, method: str, path: str) -> None:
    body = BODIES.get((method, path))
    queries = QUERIES.get((method, path), ("",))
    if "{task_id}" in path:
        for state in TASK_STATES:
            task_id = await world.task(state)
            before = await world.snapshot(task_id)
            for query in queries:
                missing = await world.call(
                    method, path.format(task_id=uuid.uuid4()) + query, world.stranger, body
                )
                foreign = await world.call(method, path.format(task_id=task_id) + query, world.stranger, body)
                await world.assert_not_found(foreign, missing)
            assert await world.snapshot(task_id) == before, f"B changed A's {state} task through {path}"
    else:
        assert "{import_id}" in path, f"{path}: teach this test how A gets the resource it names"
        import_id = await world.import_id()
        missing = await world.call(method, path.format(import_id=uuid.uuid4()), world.stranger, body)
        foreign = await world.call(method, path.format(import_id=import_id), world.stranger, body)
        await world.assert_not_found(foreign, missing)
        assert (await world.call(method, path.format(import_id=import_id), world.owner)).status_code == 200


# --- routes without a resource in their path: a probe each ----------------------------------------

Probe = Callable[[World], Awaitable[None]]


async def probe_list_tasks(world: World) -> None:
    mine = await world.task("running")
    page = await world.call("GET", "/tasks?limit=1", world.owner)
    cursor = page.json()["next_cursor"]
    theirs = await world.call("GET", "/tasks", world.stranger)
    assert theirs.status_code == 200
    assert theirs.json()["items"] == []
    for query in ("?status=running", "?task_type=send_messages", "?priority=NORMAL", "?limit=200"):
        assert (await world.call("GET", f"/tasks{query}", world.stranger)).json()["items"] == []
    if cursor is not None:  # A's cursor does not open A's list to B
        assert (await world.call("GET", f"/tasks?cursor={cursor}", world.stranger)).json()["items"] == []
    assert mine not in (await world.call("GET", "/tasks", world.stranger)).text


async def probe_create_task(world: World) -> None:
    a_accounts = [a["id"] for a in (await world.call("GET", "/accounts", world.owner)).json()["accounts"]]
    created = await world.call(
        "POST", "/tasks", world.stranger, message_task(settings={"account_ids": a_accounts})
    )
    # naming A's accounts is allowed to be written (the engine uses only the tenant's own accounts;
    # see tests/security/test_engine_isolation.py) but B's task is B's alone
    assert created.status_code == 201, created.text
    b_task = created.json()["id"]
    assert (await world.call("GET", f"/tasks/{b_task}", world.owner)).status_code == 404
    assert b_task not in (await world.call("GET", "/tasks", world.owner)).text


async def probe_accounts(world: World) -> None:
    a_accounts = (await world.call("GET", "/accounts", world.owner)).json()["accounts"]
    b_accounts = (await world.call("GET", "/accounts", world.stranger)).json()["accounts"]
    assert a_accounts
    assert b_accounts
    assert not {a["id"] for a in a_accounts} & {b["id"] for b in b_accounts}


async def _a_suppresses(world: World, who: str) -> None:
    added = await world.call("POST", "/suppressions", world.owner, {"identifiers": [who]})
    assert added.status_code == 201, added.text


async def probe_list_suppressions(world: World) -> None:
    await _a_suppresses(world, "@secret_person")
    for query in ("", "?identifier=secret_person", "?identifier=u:secret_person", "?limit=500"):
        theirs = await world.call("GET", f"/suppressions{query}", world.stranger)
        assert theirs.status_code == 200
        assert theirs.json()["items"] == [], query
    cursor = (await world.call("GET", "/suppressions?limit=1", world.owner)).json()["next_cursor"]
    if cursor is not None:
        assert (await world.call("GET", f"/suppressions?cursor={cursor}", world.stranger)).json()[
            "items"
        ] == []


async def probe_remove_suppression(world: World) -> None:
    await _a_suppresses(world, "@secret_person")
    for form in ("secret_person", "@secret_person", "u:secret_person"):
        removed = await world.call("DELETE", f"/suppressions/{form}", world.stranger)
        assert removed.status_code == 404, removed.text
    still = await world.call("GET", "/suppressions?identifier=secret_person", world.owner)
    assert [item["key"] for item in still.json()["items"]] == ["u:secret_person"]


async def _pending_people(world: World, task_id: str) -> list[str]:
    rows = await world.pool.fetch(
        "SELECT identifier_key FROM invite_targets WHERE task_id = $1 AND status = 'pending' ORDER BY seq",
        uuid.UUID(task_id),
    )
    return [row[0] for row in rows]


async def probe_suppress(world: World) -> None:
    task_id = await world.task("running")
    before = await _pending_people(world, task_id)
    identifiers = [key.removeprefix("u:") for key in before]
    added = await world.call("POST", "/suppressions", world.stranger, {"identifiers": identifiers})
    assert added.status_code == 201
    assert added.json()["targets_skipped"] == 0
    assert await _pending_people(world, task_id) == before


async def probe_suppress_file(world: World) -> None:
    task_id = await world.task("paused")
    before = await _pending_people(world, task_id)
    data = ("username\n" + "\n".join(key.removeprefix("u:") for key in before)).encode()
    added = await upload(world.client, world.stranger, data, "s.csv", path="/suppressions/import")
    assert added.status_code == 201, added.text
    assert added.json()["targets_skipped"] == 0
    assert await _pending_people(world, task_id) == before


async def _into_foreign_task(world: World, send: Callable[[str], Awaitable[httpx.Response]]) -> None:
    task_id = await world.task("draft")
    before = await world.snapshot(task_id)
    missing = await send(str(uuid.uuid4()))
    await world.assert_not_found(await send(task_id), missing)
    assert await world.snapshot(task_id) == before


async def probe_import_file(world: World) -> None:
    await _into_foreign_task(
        world,
        lambda task_id: upload(
            world.client, world.stranger, b"username\nmallory_m\n", "x.csv", task_id=task_id
        ),
    )


async def probe_validate_file(world: World) -> None:
    await _into_foreign_task(
        world,
        lambda task_id: upload(
            world.client,
            world.stranger,
            b"username\nmallory_m\n",
            "x.csv",
            task_id=task_id,
            path="/import/validate",
        ),
    )


async def probe_import_parsing(world: World) -> None:
    await _into_foreign_task(
        world,
        lambda task_id: world.call(
            "POST", "/import/parsing", world.stranger, {"task_id": task_id, "parsing_task_id": PARSING_TASK}
        ),
    )


async def probe_validate_parsing(world: World) -> None:
    await _into_foreign_task(
        world,
        lambda task_id: world.call(
            "GET", f"/import/validate?parsing_task_id={PARSING_TASK}&task_id={task_id}", world.stranger
        ),
    )


PROBES: dict[tuple[str, str], Probe] = {
    ("GET", "/tasks"): probe_list_tasks,
    ("POST", "/tasks"): probe_create_task,
    ("GET", "/accounts"): probe_accounts,
    ("GET", "/suppressions"): probe_list_suppressions,
    ("POST", "/suppressions"): probe_suppress,
    ("POST", "/suppressions/import"): probe_suppress_file,
    ("DELETE", "/suppressions/{identifier}"): probe_remove_suppression,
    ("POST", "/import/file"): probe_import_file,
    ("POST", "/import/validate"): probe_validate_file,
    ("POST", "/import/parsing"): probe_import_parsing,
    ("GET", "/import/validate"): probe_validate_parsing,
}


def test_every_route_is_covered() -> None:
    routes = api_routes(ROUTE_SETTINGS)
    uncovered = {r for r in routes if not names_a_resource(r[1])} - PROBES.keys() - TENANT_FREE.keys()
    assert not uncovered, (
        f"routes with no tenant-isolation probe and no reason to be tenant-free: {uncovered}"
    )
    stale = (PROBES.keys() | TENANT_FREE.keys()) - routes
    assert not stale, f"probes for routes that no longer exist: {stale}"
    assert any(names_a_resource(path) for _, path in routes)


@pytest.mark.parametrize("route", sorted(PROBES), ids=lambda r: f"{r[0]} {r[1]}")
async def test_another_tenants_data_is_out_of_reach(world: World, route: tuple[str, str]) -> None:
    await PROBES[route](world)
