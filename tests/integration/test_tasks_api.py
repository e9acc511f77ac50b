"""The task API over HTTP against a real PostgreSQL: CRUD, validation, transitions, isolation, limits."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from invite.app import create_app
from invite.kernel.auth import Tenant
from invite.kernel.clock import RealClock
from invite.kernel.problems import Problem
from invite.kernel.settings import Settings
from invite.tasks.service import TaskService
from invite.tasks.states import Action, TaskStatus
from tests.integration.api import (
    PREFIX,
    Client,
    auth_headers,
    insert_targets,
    invite_task,
    message_task,
    new_tenant,
)

TASKS = f"{PREFIX}/tasks"
PROBLEM = "application/problem+json"
API_ACTIONS = [Action.START, Action.PAUSE, Action.RESUME, Action.CANCEL]
# What the API's actions do, status by status; every other pair is a 409.
LEGAL = {
    (TaskStatus.DRAFT, Action.START): TaskStatus.RUNNING,
    (TaskStatus.DRAFT, Action.CANCEL): TaskStatus.CANCELLED,
    (TaskStatus.SCHEDULED, Action.PAUSE): TaskStatus.PAUSED,
    (TaskStatus.SCHEDULED, Action.CANCEL): TaskStatus.CANCELLED,
    (TaskStatus.RUNNING, Action.PAUSE): TaskStatus.PAUSED,
    (TaskStatus.RUNNING, Action.CANCEL): TaskStatus.CANCELLED,
    (TaskStatus.PAUSED, Action.RESUME): TaskStatus.RUNNING,
    (TaskStatus.PAUSED, Action.CANCEL): TaskStatus.CANCELLED,
}


def later(hours: float = 1) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def create(
    client: Client, headers: dict[str, str], body: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post(TASKS, json=body or invite_task(), headers=headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def act(client: Client, headers: dict[str, str], task_id: str, action: Action) -> dict[str, Any]:
    response = await client.post(f"{TASKS}/{task_id}/{action.value}", headers=headers)
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


async def task_in(client: Client, pool: asyncpg.Pool, headers: dict[str, str], status: TaskStatus) -> str:
    """A task of this tenant in ``status``, got there the way it happens in real use."""
    body = invite_task(scheduled_at=later()) if status is TaskStatus.SCHEDULED else invite_task()
    task_id = str((await create(client, headers, body))["id"])
    await insert_targets(pool, task_id, 3)
    if status is TaskStatus.DRAFT:
        return task_id
    if status is TaskStatus.CANCELLED:
        await act(client, headers, task_id, Action.CANCEL)
        return task_id
    await act(client, headers, task_id, Action.START)
    if status is TaskStatus.PAUSED:
        await act(client, headers, task_id, Action.PAUSE)
    elif status in (TaskStatus.COMPLETED, TaskStatus.FAILED):  # the engine's transitions
        await pool.execute(
            "UPDATE invite_tasks SET status = $1 WHERE id = $2", status.value, uuid.UUID(task_id)
        )
    return task_id


def invalid_fields(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    return {p["name"]: p["reason"] for p in response.json()["invalid-params"]}


# --- create and read ---------------------------------------------------------------------------


async def test_create_returns_a_draft_with_the_driver(client: Client, headers: dict[str, str]) -> None:
    body = message_task(priority="HIGH", description="spring promo", settings={"daily_limit_per_account": 20})
    task = await create(client, headers, body)
    assert task["status"] == "draft"
    assert task["priority"] == 1
    assert task["driver"] == "sandbox"
    assert task["message_template"] == "Hello {first_name}!"
    assert task["settings"] == {"daily_limit_per_account": 20}
    assert task["started_at"] is None
    fetched = await client.get(f"{TASKS}/{task['id']}", headers=headers)
    assert fetched.status_code == 200
    assert fetched.json() == task


@pytest.mark.parametrize(("given", "stored"), [("HIGH", 1), ("NORMAL", 2), ("LOW", 3), (1, 1), (3, 3)])
async def test_priority_by_name_or_number(
    client: Client, headers: dict[str, str], given: int | str, stored: int
) -> None:
    assert (await create(client, headers, invite_task(priority=given)))["priority"] == stored


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"platform": "instagram"}, "platform", "not supported yet"),
        ({"platform": "whatsapp"}, "platform", "not supported yet"),
        ({"platform": "myspace"}, "platform", "Invalid enum value"),
        ({"target_group_id": None}, "target_group_id", "required for invite_to_group"),
        ({"target_group_id": "   "}, "target_group_id", "required for invite_to_group"),
        ({"task_type": "send_messages"}, "message_template", "required for send_messages"),
        ({"message_template": "Hi {nickname}"}, "message_template", "unknown variable {nickname}"),
        ({"message_template": "Hi {0.__class__}"}, "message_template", "unknown variable"),
        ({"message_template": "Hi {first_name"}, "message_template", "unmatched"),
        ({"message_template": "x" * 4097}, "message_template", "length <= 4096"),
        ({"scheduled_at": "2020-01-01T00:00:00Z"}, "scheduled_at", "in the future"),
        ({"scheduled_at": "2099-01-01T00:00:00"}, "scheduled_at", "timezone"),
        ({"scheduled_at": "tomorrow"}, "scheduled_at", "datetime"),
        ({"settings": {"colour": "red"}}, "settings.colour", "unknown field"),
        ({"settings": {"daily_limit_per_account": 41}}, "settings.daily_limit_per_account", "at most 40"),
        ({"settings": {"min_pause_seconds": 1}}, "settings.min_pause_seconds", "at least 15"),
        ({"settings": {"max_attempts": 0}}, "settings.max_attempts", ">= 1"),
        (
            {"settings": {"send_window": {"start": "25:00", "end": "10:00"}}},
            "settings.send_window.start",
            "HH:MM",
        ),
        (
            {"settings": {"send_window": {"start": "09:00"}}},
            "settings.send_window.end",
            "missing required field",
        ),
        ({"settings": {"account_ids": []}}, "settings.account_ids", "at least one account"),
        ({"title": ""}, "title", "length >= 1"),
        ({"title": "   "}, "title", "blank"),
        ({"title": "t" * 256}, "title", "length <= 255"),
        ({"description": "d" * 10_001}, "description", "length <= 10000"),
        ({"priority": 5}, "priority", "Invalid enum value"),
        ({"priority": "URGENT"}, "priority", "Invalid enum value"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"task_type": None}, "task_type", "Expected `str`"),
    ],
)
async def test_validation_problems_name_the_field(
    client: Client, headers: dict[str, str], overrides: dict[str, Any], field: str, reason: str
) -> None:
    body = {**invite_task(), **overrides}
    fields = invalid_fields(await client.post(TASKS, json=body, headers=headers))
    assert field in fields, fields
    assert reason in fields[field]


async def test_a_missing_field_is_named(client: Client, headers: dict[str, str]) -> None:
    body = invite_task()
    del body["title"]
    assert "title" in invalid_fields(await client.post(TASKS, json=body, headers=headers))


async def test_every_problem_of_a_task_is_reported_at_once(client: Client, headers: dict[str, str]) -> None:
    body = invite_task(
        platform="instagram",
        target_group_id=None,
        scheduled_at="2020-01-01T00:00:00+00:00",
        settings={"daily_limit_per_account": 500},
    )
    fields = invalid_fields(await client.post(TASKS, json=body, headers=headers))
    assert set(fields) == {"platform", "target_group_id", "scheduled_at", "settings.daily_limit_per_account"}


async def test_an_unknown_task_is_a_404_problem(client: Client, headers: dict[str, str]) -> None:
    response = await client.get(f"{TASKS}/{uuid.uuid4()}", headers=headers)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["detail"] == "task not found"


# --- list ----------------------------------------------------------------------------------------


async def test_list_pages_newest_first_without_gaps_or_repeats(
    client: Client, headers: dict[str, str]
) -> None:
    created = [(await create(client, headers, invite_task(title=f"task {n}")))["id"] for n in range(7)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(TASKS, params=params, headers=headers)).json()
        pages += 1
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(created))


async def test_list_filters(client: Client, headers: dict[str, str]) -> None:
    invite_low = (await create(client, headers, invite_task(priority="LOW")))["id"]
    message_high = (await create(client, headers, message_task(priority=1)))["id"]
    cancelled = (await create(client, headers, invite_task()))["id"]
    await act(client, headers, cancelled, Action.CANCEL)

    async def ids(**params: Any) -> set[str]:
        response = await client.get(TASKS, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert await ids() == {invite_low, message_high, cancelled}
    assert await ids(task_type="send_messages") == {message_high}
    assert await ids(status="cancelled") == {cancelled}
    assert await ids(status="draft", task_type="invite_to_group") == {invite_low}
    assert await ids(priority="HIGH") == {message_high}
    assert await ids(priority="3") == {invite_low}
    assert await ids(platform="telegram") == {invite_low, message_high, cancelled}
    assert await ids(platform="whatsapp") == set()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"priority": "urgent"}, "priority"),
        ({"limit": 0}, "limit"),
        ({"limit": 500}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WyJ4Il0"}, "cursor"),  # base64 of ["x"]
    ],
)
async def test_bad_list_parameters_are_named(
    client: Client, headers: dict[str, str], params: dict[str, Any], field: str
) -> None:
    assert field in invalid_fields(await client.get(TASKS, params=params, headers=headers))


# --- transitions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(TaskStatus))
@pytest.mark.parametrize("action", API_ACTIONS)
async def test_every_transition_over_http(
    client: Client, headers: dict[str, str], status: TaskStatus, action: Action, pool: asyncpg.Pool
) -> None:
    task_id = await task_in(client, pool, headers, status)
    response = await client.post(f"{TASKS}/{task_id}/{action.value}", headers=headers)
    expected = LEGAL.get((status, action))
    if expected is None:
        assert response.status_code == 409, response.text
        problem = response.json()
        assert response.headers["content-type"].startswith(PROBLEM)
        assert (problem["status"], problem["task_status"]) == (409, status.value)
        assert problem["action"] == action.value
        assert problem["detail"] == f"cannot {action.value} a task that is {status.value}"
        unchanged = (await client.get(f"{TASKS}/{task_id}", headers=headers)).json()
        assert unchanged["status"] == status.value
    else:
        assert response.status_code == 200, response.text
        task = response.json()
        assert task["status"] == expected.value
        assert (await client.get(f"{TASKS}/{task_id}", headers=headers)).json()["status"] == expected.value
        if expected is TaskStatus.RUNNING:
            assert task["started_at"] is not None
        if expected is TaskStatus.CANCELLED:
            assert task["completed_at"] is not None


async def test_start_before_scheduled_at_waits_as_scheduled(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = (await create(client, headers, invite_task(scheduled_at=later(2))))["id"]
    await insert_targets(pool, task_id, 1)
    task = await act(client, headers, task_id, Action.START)
    assert task["status"] == "scheduled"
    assert task["started_at"] is None


async def test_resume_before_a_moved_scheduled_at_waits_as_scheduled(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await task_in(client, pool, headers, TaskStatus.PAUSED)
    moved = await client.put(f"{TASKS}/{task_id}", json={"scheduled_at": later(3)}, headers=headers)
    assert moved.status_code == 200, moved.text
    assert (await act(client, headers, task_id, Action.RESUME))["status"] == "scheduled"


async def test_a_task_without_targets_cannot_start(client: Client, headers: dict[str, str]) -> None:
    task_id = (await create(client, headers))["id"]
    response = await client.post(f"{TASKS}/{task_id}/start", headers=headers)
    assert response.status_code == 409
    assert "import an audience first" in response.json()["detail"]


async def test_pause_records_a_reason_and_resume_clears_it(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await task_in(client, pool, headers, TaskStatus.RUNNING)
    assert (await act(client, headers, task_id, Action.PAUSE))["status_reason"] == "paused by the customer"
    assert (await act(client, headers, task_id, Action.RESUME))["status_reason"] is None


@pytest.mark.parametrize(
    ("status", "action"), [(TaskStatus.RUNNING, Action.PAUSE), (TaskStatus.PAUSED, Action.RESUME)]
)
async def test_concurrent_transitions_cannot_both_win(
    client: Client,
    headers: dict[str, str],
    tenant: str,
    settings: Settings,
    pool: asyncpg.Pool,
    status: TaskStatus,
    action: Action,
) -> None:
    task_id = await task_in(client, pool, headers, status)
    service = TaskService(pool, settings, RealClock(), Tenant(tenant))
    # four transactions on four connections, interleaved on one loop (the test client would
    # answer HTTP requests one after the other)
    results = await asyncio.gather(
        *(service.apply(uuid.UUID(task_id), action) for _ in range(4)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, Problem)]
    assert len(refused) == 3
    assert all(p.status == 409 for p in refused)
    audited = await pool.fetchval(
        "SELECT count(*) FROM invite_audit_log WHERE resource_id = $1 AND action = $2",
        task_id,
        f"task.{action.value}",
    )
    assert audited == 1


async def test_cancel_closes_the_queue(client: Client, headers: dict[str, str], pool: asyncpg.Pool) -> None:
    task_id = await task_in(client, pool, headers, TaskStatus.RUNNING)
    await pool.execute(
        "UPDATE invite_targets SET status = 'succeeded' WHERE task_id = $1 AND user_identifier = 'user1'",
        uuid.UUID(task_id),
    )
    await act(client, headers, task_id, Action.CANCEL)
    counts = (await client.get(f"{TASKS}/{task_id}/status", headers=headers)).json()["counts"]
    assert (counts["succeeded"], counts["cancelled"], counts["pending"]) == (1, 2, 0)


# --- the active-task limit ----------------------------------------------------------------------


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Client]:
    app = create_app(msgspec.structs.replace(settings, max_active_tasks_per_tenant=2))
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def test_the_active_task_limit(limited: Client, pool: asyncpg.Pool) -> None:
    headers = auth_headers(limited, new_tenant())
    ids = [(await create(limited, headers))["id"] for _ in range(3)]
    for task_id in ids:
        await insert_targets(pool, task_id, 1)
    await act(limited, headers, ids[0], Action.START)
    await act(limited, headers, ids[1], Action.START)
    await act(limited, headers, ids[1], Action.PAUSE)  # paused still counts
    refused = await limited.post(f"{TASKS}/{ids[2]}/start", headers=headers)
    assert refused.status_code == 409
    problem = refused.json()
    assert (problem["active_tasks"], problem["limit"]) == (2, 2)
    assert problem["title"] == "Too many active tasks"
    other_tenant = auth_headers(limited, new_tenant())  # limits are per tenant
    other = (await create(limited, other_tenant))["id"]
    await insert_targets(pool, other, 1)
    await act(limited, other_tenant, other, Action.START)
    await act(limited, headers, ids[0], Action.CANCEL)
    assert (await act(limited, headers, ids[2], Action.START))["status"] == "running"


async def test_concurrent_starts_respect_the_limit(
    limited: Client, settings: Settings, pool: asyncpg.Pool
) -> None:
    tenant = new_tenant()
    headers = auth_headers(limited, tenant)
    ids = [(await create(limited, headers))["id"] for _ in range(5)]
    for task_id in ids:
        await insert_targets(pool, task_id, 1)
    service = TaskService(
        pool, msgspec.structs.replace(settings, max_active_tasks_per_tenant=2), RealClock(), Tenant(tenant)
    )
    results = await asyncio.gather(
        *(service.apply(uuid.UUID(i), Action.START) for i in ids), return_exceptions=True
    )
    started = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, Problem)]
    assert (len(started), len(refused)) == (2, 3)
    assert {p.title for p in refused} == {"Too many active tasks"}


# --- edit and delete ------------------------------------------------------------------------------


async def test_edit_changes_only_the_given_fields(client: Client, headers: dict[str, str]) -> None:
    task = await create(client, headers, invite_task(description="first", settings={"max_attempts": 2}))
    response = await client.put(
        f"{TASKS}/{task['id']}",
        json={"title": "renamed", "priority": "LOW", "description": None},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert (edited["title"], edited["priority"], edited["description"]) == ("renamed", 3, None)
    assert edited["settings"] == {"max_attempts": 2}
    assert edited["target_group_id"] == task["target_group_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scheduled_at": "2020-01-01T00:00:00Z"}, "scheduled_at"),
        ({"target_group_id": None}, "target_group_id"),
        ({"message_template": "{username!r}"}, "message_template"),
        ({"settings": {"daily_limit_per_account": 100}}, "settings.daily_limit_per_account"),
        ({"task_type": "send_messages"}, "task_type"),
        ({"title": ""}, "title"),
    ],
)
async def test_edit_is_validated_like_create(
    client: Client, headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    task_id = (await create(client, headers))["id"]
    assert field in invalid_fields(await client.put(f"{TASKS}/{task_id}", json=body, headers=headers))


async def test_a_scheduled_task_keeps_its_start_time(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await task_in(client, pool, headers, TaskStatus.SCHEDULED)
    cleared = await client.put(f"{TASKS}/{task_id}", json={"scheduled_at": None}, headers=headers)
    assert "scheduled_at" in invalid_fields(cleared)
    moved = await client.put(f"{TASKS}/{task_id}", json={"scheduled_at": later(5)}, headers=headers)
    assert moved.status_code == 200


@pytest.mark.parametrize("status", list(TaskStatus))
async def test_edit_only_while_not_running(
    client: Client, headers: dict[str, str], status: TaskStatus, pool: asyncpg.Pool
) -> None:
    task_id = await task_in(client, pool, headers, status)
    response = await client.put(f"{TASKS}/{task_id}", json={"title": "edited"}, headers=headers)
    if status in (TaskStatus.DRAFT, TaskStatus.SCHEDULED, TaskStatus.PAUSED):
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 409
        assert response.json()["task_status"] == status.value


@pytest.mark.parametrize("status", list(TaskStatus))
async def test_delete_anything_but_a_running_task(
    client: Client, headers: dict[str, str], status: TaskStatus, pool: asyncpg.Pool
) -> None:
    task_id = await task_in(client, pool, headers, status)
    response = await client.delete(f"{TASKS}/{task_id}", headers=headers)
    if status is TaskStatus.RUNNING:
        assert response.status_code == 409
        assert "pause or cancel it first" in response.json()["detail"]
        assert (await client.get(f"{TASKS}/{task_id}", headers=headers)).status_code == 200
    else:
        assert response.status_code == 204
        assert (await client.get(f"{TASKS}/{task_id}", headers=headers)).status_code == 404
        targets = await pool.fetchval(
            "SELECT count(*) FROM invite_targets WHERE task_id = $1", uuid.UUID(task_id)
        )
        assert targets == 0


# --- tenant isolation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {"title": "mine now"}),
        ("DELETE", "", None),
        ("GET", "/status", None),
        ("POST", "/start", None),
        ("POST", "/pause", None),
        ("POST", "/resume", None),
        ("POST", "/cancel", None),
    ],
)
async def test_another_tenants_task_is_not_found(
    client: Client,
    headers: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    pool: asyncpg.Pool,
) -> None:
    # paused: every action but start is legal for its owner, so only the tenant check can refuse
    task_id = await task_in(client, pool, headers, TaskStatus.PAUSED)
    before = (await client.get(f"{TASKS}/{task_id}", headers=headers)).json()
    stranger = auth_headers(client, new_tenant())
    response = await client.request(method, f"{TASKS}/{task_id}{path}", json=body, headers=stranger)
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == "task not found"
    assert (await client.get(f"{TASKS}/{task_id}", headers=headers)).json() == before


async def test_lists_hold_only_the_callers_tasks(client: Client, headers: dict[str, str]) -> None:
    mine = (await create(client, headers))["id"]
    stranger = auth_headers(client, new_tenant())
    theirs = (await create(client, stranger))["id"]
    assert [t["id"] for t in (await client.get(TASKS, headers=headers)).json()["items"]] == [mine]
    assert [t["id"] for t in (await client.get(TASKS, headers=stranger)).json()["items"]] == [theirs]


# --- status, audit, events --------------------------------------------------------------------------


async def test_status_counts_targets_by_state(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await task_in(client, pool, headers, TaskStatus.RUNNING)
    await pool.execute(
        """UPDATE invite_targets SET status = CASE user_identifier
               WHEN 'user1' THEN 'succeeded' WHEN 'user2' THEN 'skipped' ELSE status END
           WHERE task_id = $1""",
        uuid.UUID(task_id),
    )
    status = (await client.get(f"{TASKS}/{task_id}/status", headers=headers)).json()
    assert status["status"] == "running"
    assert status["driver"] == "sandbox"
    assert (status["total"], status["processed"], status["percent_done"]) == (3, 2, 66.7)
    assert status["counts"] == {
        "pending": 1,
        "in_flight": 0,
        "succeeded": 1,
        "skipped": 1,
        "failed": 0,
        "uncertain": 0,
        "cancelled": 0,
    }


async def test_a_task_without_targets_is_zero_percent_done(client: Client, headers: dict[str, str]) -> None:
    task_id = (await create(client, headers))["id"]
    status = (await client.get(f"{TASKS}/{task_id}/status", headers=headers)).json()
    assert (status["total"], status["processed"], status["percent_done"]) == (0, 0, 0.0)


async def test_every_change_is_audited_with_the_request_id(
    client: Client, headers: dict[str, str], tenant: str, pool: asyncpg.Pool
) -> None:
    def traced(request_id: str) -> dict[str, str]:
        return {**headers, "X-Request-ID": request_id}

    created = await client.post(TASKS, json=invite_task(), headers=traced("req-create"))
    assert created.headers["x-request-id"] == "req-create"
    task_id = created.json()["id"]
    await insert_targets(pool, task_id, 1)
    await client.put(f"{TASKS}/{task_id}", json={"title": "x"}, headers=traced("req-edit"))
    await client.post(f"{TASKS}/{task_id}/start", headers=traced("req-start"))
    refused = await client.delete(f"{TASKS}/{task_id}", headers=traced("req-refused"))
    assert refused.status_code == 409
    await client.post(f"{TASKS}/{task_id}/cancel", headers=traced("req-cancel"))
    await client.delete(f"{TASKS}/{task_id}", headers=traced("req-delete"))
    rows = await pool.fetch(
        "SELECT action, resource, resource_id, request_id, details FROM invite_audit_log WHERE user_id = $1 ORDER BY id",
        tenant,
    )
    assert [(r["action"], r["request_id"]) for r in rows] == [
        ("task.create", "req-create"),
        ("task.update", "req-edit"),
        ("task.start", "req-start"),
        ("task.cancel", "req-cancel"),
        ("task.delete", "req-delete"),
    ]
    assert {(r["resource"], r["resource_id"]) for r in rows} == {("task", task_id)}
    assert rows[1]["details"] == {"fields": ["title"]}
    assert rows[2]["details"] == {"from": "draft", "to": "running"}


async def test_a_generated_request_id_is_echoed(client: Client, headers: dict[str, str]) -> None:
    response = await client.get(TASKS, headers={**headers, "X-Request-ID": "bad id with spaces"})
    echoed = response.headers["x-request-id"]
    assert echoed != "bad id with spaces"
    assert len(echoed) == 32


async def test_state_changes_are_announced_to_listeners(
    client: Client, headers: dict[str, str], database_url: str, pool: asyncpg.Pool
) -> None:
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(
            "invite_task_events", lambda *args: events.put_nowait(json.loads(args[3]))
        )
        task_id = await task_in(client, pool, headers, TaskStatus.DRAFT)
        for action in (Action.START, Action.PAUSE, Action.RESUME):
            await act(client, headers, task_id, action)
        mine: list[dict[str, Any]] = []
        while len(mine) < 3:  # the app's engine announces progress on the same channel
            event = await asyncio.wait_for(events.get(), timeout=5)
            if event["task_id"] == task_id and event["type"] == "status":
                mine.append(event)
    finally:
        await listener.close()
    assert mine == [
        {"task_id": task_id, "type": "status", "status": "running"},
        {"task_id": task_id, "type": "status", "status": "paused"},
        {"task_id": task_id, "type": "status", "status": "running"},
    ]


@pytest.mark.parametrize(
    "group_id",
    ["12345", "-99999999999999999999", "-1000000000000000000000", "@ab", "https://t.me/+", "not a group"],
)
async def test_a_group_id_telegram_could_never_resolve_is_refused_at_creation(
    client: Client, headers: dict[str, str], group_id: str
) -> None:
    """A person's id, ids outside every range of Telegram's, a name too short: a 422, not a
    task failing on every person later."""
    fields = invalid_fields(
        await client.post(TASKS, json=invite_task(target_group_id=group_id), headers=headers)
    )
    assert "not a Telegram group" in fields["target_group_id"]


@pytest.mark.parametrize("group_id", ["@my_group", "https://t.me/my_group", "-1001234567890", "-4242"])
async def test_the_forms_of_a_group_id_are_accepted(
    client: Client, headers: dict[str, str], group_id: str
) -> None:
    created = await client.post(TASKS, json=invite_task(target_group_id=group_id), headers=headers)
    assert created.status_code == 201, created.text


# --- one-use invite links (settings.privacy_fallback) ----------------------------------------

LINKED = {"privacy_fallback": "invite_link", "invite_link_hours": 24}


async def test_an_invite_task_offering_links_keeps_its_template(
    client: Client, headers: dict[str, str]
) -> None:
    body = invite_task(message_template="Hi {first_name}, here is your link: {invite_link}", settings=LINKED)
    task = await create(client, headers, body)
    assert (task["message_template"], task["settings"]) == (body["message_template"], LINKED)
    # a template that does not place the link is fine: the link goes after the text
    assert (await create(client, headers, invite_task(message_template="Hi", settings=LINKED)))[
        "settings"
    ] == LINKED


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (
            message_task(settings=LINKED),
            "settings.privacy_fallback",
            "invite_link is for invite_to_group tasks",
        ),
        (
            invite_task(settings=LINKED),
            "message_template",
            "required with settings.privacy_fallback invite_link",
        ),
        (invite_task(message_template="  ", settings=LINKED), "message_template", "required with"),
        (
            message_task(message_template="Hi {invite_link}"),
            "message_template",
            "{invite_link} is only for invite tasks with settings.privacy_fallback invite_link",
        ),
        (
            invite_task(message_template="Hi {invite_link}"),
            "message_template",
            "{invite_link} is only for invite tasks",
        ),
        (invite_task(settings={"privacy_fallback": "dm"}), "settings.privacy_fallback", "Invalid enum value"),
        (
            invite_task(message_template="x", settings={**LINKED, "invite_link_hours": 721}),
            "settings.invite_link_hours",
            "<= 720",
        ),
    ],
)
async def test_the_link_fallback_is_refused_where_it_means_nothing(
    client: Client, headers: dict[str, str], body: dict[str, Any], field: str, reason: str
) -> None:
    fields = invalid_fields(await client.post(TASKS, json=body, headers=headers))
    assert reason in fields[field], fields
