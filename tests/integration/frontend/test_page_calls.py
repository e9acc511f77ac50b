"""Every call of FRONTEND-CALLS.md, as the Mailing page sends it (its headers included), through a
gateway that forwards and buffers as the platform's does; each row checks every field the page
reads from the answer (a field it reads and does not get blanks or breaks the page)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
import pytest_asyncio

from invite.app import create_app
from invite.frontend_api.controller import TAG
from invite.kernel.auth import issue_token
from invite.kernel.settings import Settings, SettingsError
from tests.integration.api import new_tenant
from tests.integration.frontend.conftest import (
    EMPTY_PARSING_TASK,
    GROUP,
    LOCKED_GROUP,
    PARSING_TASK,
    SECRET,
    World,
    create_body,
    engine_replica,
    new_task,
    ok,
    people_csv,
    until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

# chosen so the sandbox's privacy draw lets some in and refuses others (it hashes the person)
FINISHED_PEOPLE = ["ann_page", "bob_page", "cid_page"]
ITEM_FIELDS = {
    "id": str,
    "title": str,
    "task_type": str,
    "status": str,
    "priority": str,
    "progress_percentage": float,
    "completed_count": int,
    "failed_count": int,
    "target_count": int,
    "created_at": str,
}
ACCOUNT_FIELDS = {
    "account_id": str,
    "platform": str,
    "username": str,
    "status": str,
    "daily_invite_limit": int,
    "daily_invites_used": int,
}


HEALTH = {"healthy", "pacing", "cooling_down", "spam_flagged", "frozen", "dead", "warming_up"}


def has_health(account: dict[str, Any]) -> None:
    """Ours beside what the page reads: the account's health, as GET /accounts tells it."""
    assert account["health"] in HEALTH, account
    resting = account["health"] in ("cooling_down", "spam_flagged")
    assert (account["health_until"] is not None) is resting, account
    if account["health"] == "warming_up":
        assert 1 <= account["warmup_day"] <= account["warmup_days"], account
    else:
        assert account["warmup_day"] is account["warmup_days"] is None, account


def has(obj: dict[str, Any], fields: dict[str, type]) -> None:
    for name, kind in fields.items():
        assert name in obj, f"the page reads {name}: missing from {obj}"
        value = obj[name]
        assert isinstance(value, kind) or (kind is float and isinstance(value, int)), (name, value)


def item(body: Any) -> None:
    has(body, ITEM_FIELDS)
    assert body["status"] in ("pending", "running", "paused", "completed", "failed", "cancelled")
    assert body["priority"] in ("low", "normal", "high")


@dataclass
class Ctx:
    world: World
    finished: str
    stack: AsyncExitStack  # what a row keeps running during its call (an engine replica)
    ids: dict[str, str] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def finished(world: World) -> AsyncIterator[str]:
    """An invite task the page created, filled and started, run to the end by an engine replica."""
    task_id = await new_task(world.page, world, FINISHED_PEOPLE)
    ok(await world.page.call("POST", f"/tasks/{task_id}/execute"))
    async with engine_replica(world.settings):
        await until(world.page, task_id, lambda s: s["status"] == "completed")
    yield task_id


# --- what each row needs before the call -------------------------------------------------


async def draft(ctx: Ctx) -> None:
    ctx.ids["task"] = await new_task(ctx.world.page, ctx.world, [])


async def filled(ctx: Ctx) -> None:
    ctx.ids["task"] = await new_task(ctx.world.page, ctx.world, ["dee_page", "eve_page"])


async def running(ctx: Ctx) -> None:
    await filled(ctx)
    ok(await ctx.world.page.call("POST", f"/tasks/{ctx.ids['task']}/execute"))


async def paused(ctx: Ctx) -> None:
    await running(ctx)
    ok(await ctx.world.page.call("POST", f"/tasks/{ctx.ids['task']}/pause"))


async def scheduled(ctx: Ctx) -> None:
    """A task scheduled for tomorrow through our own API: the page sees it as pending."""
    await filled(ctx)
    task = f"/api/v1/invite/tasks/{ctx.ids['task']}"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    async with httpx.AsyncClient(base_url=ctx.world.service_url, headers=ctx.world.page.headers()) as ours:
        ok(await ours.put(task, json={"scheduled_at": tomorrow}))
        assert ok(await ours.post(f"{task}/start"))["status"] == "scheduled"


async def trial_ready(ctx: Ctx) -> None:
    """A task not started, with one person, one of its targets, and an engine replica to serve the
    test. Its pause is the shortest allowed: the accounts acted in the finished campaign just now,
    and the trial waits for the pause only while it passes within TRIAL_WAIT_SECONDS."""
    page, world = ctx.world.page, ctx.world
    body = create_body([world.account(1), world.account(2)])
    body["delay_between_invites"] = body["settings"]["delay_between_invites"] = (
        world.settings.min_pause_seconds
    )
    ctx.ids["task"] = ok(await page.call("POST", "/tasks/", body))["id"]
    ok(await page.upload(f"/tasks/{ctx.ids['task']}/import/file", "p.csv", people_csv(["kim_page"]), "f"))
    conn = await asyncpg.connect(ctx.world.settings.database_url)
    try:
        target = await conn.fetchval(
            "SELECT id FROM invite_targets WHERE task_id = $1 ORDER BY seq LIMIT 1",
            uuid.UUID(ctx.ids["task"]),
        )
    finally:
        await conn.close()
    ctx.ids["target"], ctx.ids["account"] = str(target), ctx.world.account(1)
    await ctx.stack.enter_async_context(engine_replica(ctx.world.settings))


async def fallback_draft(ctx: Ctx) -> None:
    """An invite task the page created falling back to messages."""
    ready = [ctx.world.account(1), ctx.world.account(2)]
    ctx.ids["task"] = ok(await ctx.world.page.call("POST", "/tasks/", _fallback_body(ready)))["id"]


async def nothing(ctx: Ctx) -> None:
    pass


# --- what the page reads -----------------------------------------------------------------


def created(body: Any, ctx: Ctx) -> None:
    item(body)
    assert body["title"] == body["name"] == f"Приглашения в {GROUP}"
    assert body["task_type"] == "invite_to_group"
    assert body["target_group_id"] == GROUP
    assert body["status"] == "pending"
    assert body["priority"] == "normal"
    assert body["delay_between_invites"] == 45
    assert body["max_invites_per_account"] == 5
    settings = body["settings"]
    assert settings["auto_add_contacts"] is False
    assert settings["batch_size"] == 5
    assert settings["group_id"] == GROUP
    assert settings["invite_type"] == "group_invite"
    assert settings["allowed_account_ids"] == [ctx.world.account(1), ctx.world.account(2)]


def created_message(body: Any, ctx: Ctx) -> None:
    item(body)
    assert body["task_type"] == "send_messages"
    assert body["invite_message"] == "Hello {first_name}!"
    assert body["settings"]["invite_type"] == "message"
    assert body["target_group_id"] is None


FALLBACK_MESSAGE = "Здравствуйте, {first_name}! Вступайте: {invite_link}"


def _fallback_body(ready: list[str], message: str | None = FALLBACK_MESSAGE) -> dict[str, Any]:
    body = create_body(ready, message=message)
    body["settings"]["fallback_to_messages"] = True
    return body


async def our_task(ctx: Ctx, task_id: str) -> dict[str, Any]:
    """The task as our own API shows it."""
    async with httpx.AsyncClient(base_url=ctx.world.service_url, headers=ctx.world.page.headers()) as ours:
        task: dict[str, Any] = ok(await ours.get(f"/api/v1/invite/tasks/{task_id}"))
    return task


def falls_back(message: str | None, sent: bool) -> Callable[[Any, Ctx], Awaitable[None]]:
    """An invite task whose privacy-refused people get ``message`` with a one-use link (None: the
    fallback is off, and the task has no template); ``sent``: fallback_to_messages as the page sent it."""

    async def check(body: Any, ctx: Ctx) -> None:
        item(body)
        assert body["task_type"] == "invite_to_group"
        assert body["invite_message"] == message
        ours = await our_task(ctx, body["id"])
        assert ours["task_type"] == "invite_to_group"
        assert ours["message_template"] == message
        assert ours["settings"].get("privacy_fallback") == ("invite_link" if message else None)
        # what the page sent comes back as sent
        assert body["settings"]["fallback_to_messages"] is sent

    return check


def clamped(body: Any, ctx: Ctx) -> None:
    item(body)
    assert body["priority"] == "high"  # urgent is our HIGH
    assert body["delay_between_invites"] == ctx.world.settings.min_pause_seconds  # never below ours
    assert body["max_invites_per_account"] == ctx.world.settings.daily_quota  # never above ours
    assert body["settings"]["brand_new_option"] == {"keep": True}


def listed(body: Any, ctx: Ctx) -> None:
    assert {"items", "total", "page", "page_size", "total_pages", "has_next", "has_prev"} <= body.keys()
    for entry in body["items"]:
        item(entry)
        assert entry["status"] == "pending"
    assert ctx.ids["task"] in [e["id"] for e in body["items"]]
    assert body["page"] == 1
    assert body["page_size"] == 20
    assert not body["has_prev"]


def listed_finished(body: Any, ctx: Ctx) -> None:
    (entry,) = [e for e in body["items"] if e["id"] == ctx.finished]
    item(entry)
    assert entry["status"] == "completed"
    assert entry["progress_percentage"] == 100
    assert entry["completed_count"] + entry["failed_count"] == entry["target_count"] == 3


def paged(body: Any, ctx: Ctx) -> None:
    assert body["page"] == 2
    assert body["page_size"] == 1
    assert len(body["items"]) == 1
    assert body["total"] >= 3
    assert body["total_pages"] == body["total"]
    assert body["has_prev"]
    assert body["has_next"] == (body["total"] > 2)


def read(body: Any, ctx: Ctx) -> None:
    item(body)
    assert body["id"] == ctx.ids["task"]


def updated(body: Any, ctx: Ctx) -> None:
    item(body)
    assert body["title"] == "Renamed"
    assert body["description"] == "from the page"
    assert body["settings"]["auto_add_contacts"] is True
    assert "batch_size" not in body["settings"]


def executed(body: Any, ctx: Ctx) -> None:
    assert body["task_id"] == ctx.ids["task"]
    assert body["status"] == "running"
    assert body["message"]
    assert body["started_at"]


def paused_answer(body: Any, ctx: Ctx) -> None:
    assert body == {"message": "task paused", "task_id": ctx.ids["task"], "status": "paused"}


def tried(body: Any, ctx: Ctx) -> None:
    assert isinstance(body["message"], str)
    assert body["message"]  # the page shows it
    assert isinstance(body["success"], bool)
    assert body["state"] == "done"
    assert (body["task_id"], body["target_id"], body["account_id"]) == (
        ctx.ids["task"],
        ctx.ids["target"],
        ctx.ids["account"],
    )
    assert body["status"] in ("succeeded", "skipped")  # invited, or the person's privacy refused
    assert body["outcome"] in ("success", "privacy_restricted")
    assert body["success"] == (body["outcome"] == "success")


def stats(body: Any, ctx: Ctx) -> None:
    assert body["task_id"] == ctx.finished
    assert body["status"] == "completed"
    assert isinstance(body["progress_percentage"], float)
    assert body["progress_percentage"] == 100.0
    targets = body["targets"]
    assert targets["total"] == 3
    assert targets["pending"] == 0
    assert targets["invited"] >= 1
    assert targets["failed"] >= 1
    assert targets["invited"] + targets["failed"] == 3
    timing = body["timing"]
    assert timing["created_at"]
    assert timing["started_at"]
    assert timing["ended_at"]
    assert timing["execution_time_seconds"] >= 0
    assert timing["estimated_completion_at"] is None  # finished: nothing left to forecast
    assert body["settings"]["group_id"] == GROUP
    assert "error_message" in body


def rights(body: Any, ctx: Ctx) -> None:
    assert body["group_name"] == "Page_Group"
    assert body["can_proceed"] is True
    ready = sorted(a["account_id"] for a in body["ready_accounts"])
    assert ready == [ctx.world.account(n) for n in (1, 2, 3)]
    (dead,) = body["unavailable_accounts"]
    assert dead["account_id"] == ctx.world.account(4)
    assert "dead" in dead["reason"]
    for account in body["ready_accounts"] + body["unavailable_accounts"]:
        has(account, ACCOUNT_FIELDS)
        assert {"account_status", "flood_wait_until", "blocked_until"} <= account.keys()
    assert body["estimated_capacity"] == sum(
        a["daily_invite_limit"] - a["daily_invites_used"] for a in body["ready_accounts"]
    )
    # each check leased the account from the platform and gave it back
    provider = ctx.world.app.state.accounts_provider
    assert {r.account_id for r in provider.releases} >= set(ready)


def no_rights(body: Any, ctx: Ctx) -> None:
    assert body["can_proceed"] is False
    assert body["ready_accounts"] == []
    assert body["estimated_capacity"] == 0
    reasons = [a["reason"] for a in body["unavailable_accounts"]]
    assert len(reasons) == 4
    assert sum("no right to invite" in r for r in reasons) == 3


def logs(body: Any, ctx: Ctx) -> None:
    assert isinstance(body, list)  # the page calls .filter on it
    invites = [e for e in body if e["target_id"] is not None]
    assert len(invites) == 3
    for entry in body:
        assert {"id", "target_id", "account_id", "action_type", "message", "created_at"} <= entry.keys()
        assert entry["action_type"] in ("INVITE_SUCCESSFUL", "INVITE_FAILED", "ERROR_OCCURRED")
        assert {"result_status", "target_username"} <= entry["details"].keys()
    succeeded = [e for e in invites if e["action_type"] == "INVITE_SUCCESSFUL"]
    failed = [e for e in invites if e["action_type"] == "INVITE_FAILED"]
    assert succeeded
    assert failed
    assert len(succeeded) + len(failed) == 3
    assert {e["details"]["result_status"] for e in succeeded} == {"SUCCESS"}
    assert {e["details"]["result_status"] for e in failed} == {"PRIVACY_RESTRICTED"}
    names = {e["details"]["target_username"].lstrip("@") for e in invites}
    assert names == set(FINISHED_PEOPLE)


def task_accounts(body: Any, ctx: Ctx) -> None:
    assert body["task_id"] == ctx.finished
    assert body["platform"] == "telegram"
    assert {"total_accounts", "active_accounts", "available_now", "accounts", "aggregates"} <= body.keys()
    used = {a["account_id"] for a in body["accounts"]}
    assert used <= {ctx.world.account(n) for n in (1, 2, 3)}
    assert body["total_accounts"] == len(used)
    assert sum(a["actions"] for a in body["accounts"]) >= 3
    assert body["aggregates"]["used_today"] >= 3
    for account in body["accounts"]:
        has(account, ACCOUNT_FIELDS)
        has_health(account)


def accounts(body: Any, ctx: Ctx) -> None:
    assert isinstance(body, list)
    assert len(body) == 4
    for account in body:
        has(account, ACCOUNT_FIELDS)
        assert {"flood_wait_until", "blocked_until"} <= account.keys()
        has_health(account)
    used = {a["account_id"]: a["daily_invites_used"] for a in body}
    assert sum(used.values()) >= 3  # the finished campaign's invites count today


def parsing_tasks(body: Any, ctx: Ctx) -> None:
    assert body == [
        {
            "id": PARSING_TASK,
            "platform": "telegram",
            "status": "completed",
            "result_count": 3,
            "created_at": "2026-11-30T10:00:00",
            "link": "https://t.me/parsed_channel",
            "title": "Parsed channel",
        }
    ]  # the task with no results is not offered
    assert EMPTY_PARSING_TASK not in str(body)


def imported(count: int) -> Callable[[Any, Ctx], None]:
    def check(body: Any, ctx: Ctx) -> None:
        assert body["imported_count"] == count
        assert body["task_id"] == ctx.ids["task"]

    return check


def healthy(body: Any, ctx: Ctx) -> None:
    assert body["status"] == "healthy"


def detailed(body: Any, ctx: Ctx) -> None:
    assert body["status"] == "healthy"
    assert body["components"] == {"database": "healthy", "vault": "not_configured"}


def detail(text: str) -> Callable[[Any, Ctx], None]:
    def check(body: Any, ctx: Ctx) -> None:
        assert text in body["detail"], body

    return check


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str  # {task}: the row's task, {finished}: the campaign run to the end
    reads: Callable[[Any, Ctx], Awaitable[None] | None]
    body: Any = None
    given: Callable[[Ctx], Awaitable[None]] = nothing
    status: int = 200
    file: bytes | None = None
    token: str | None = None


CALLS = [
    Call("1 health", "GET", "/health/", healthy),
    Call("2 health detailed", "GET", "/health/detailed/", detailed),
    Call("3 create invite task", "POST", "/tasks/", created, body="invite", status=201),
    Call("3 create message task", "POST", "/tasks/", created_message, body="message", status=201),
    Call("3 create, limits kept", "POST", "/tasks/", clamped, body="clamped", status=201),
    Call(
        "3 create invite task, fallback to messages",
        "POST",
        "/tasks/",
        falls_back(FALLBACK_MESSAGE, sent=True),
        body="fallback",
        status=201,
    ),
    Call(
        "3 create invite task, fallback without a message",
        "POST",
        "/tasks/",
        falls_back(None, sent=True),
        body="fallback, no message",
        status=201,
    ),
    Call(
        "4 list pending",
        "GET",
        "/tasks/?platform=telegram&status=pending&page=1&page_size=20",
        listed,
        given=draft,
    ),
    Call("4 list completed", "GET", "/tasks/?platform=telegram&status=completed", listed_finished),
    Call("4 list, page 2 of 1", "GET", "/tasks/?page=2&page_size=1", paged, given=draft),
    Call("5 read", "GET", "/tasks/{task}", read, given=draft),
    Call("6 update", "PUT", "/tasks/{task}", updated, body="update", given=draft),
    Call(
        "6 update: fallback on",
        "PUT",
        "/tasks/{task}",
        falls_back("Join: {invite_link}", sent=True),
        body="fallback on",
        given=draft,
    ),
    Call(
        "6 update: fallback off",
        "PUT",
        "/tasks/{task}",
        falls_back(None, sent=False),
        body="fallback off",
        given=fallback_draft,
    ),
    Call(
        "6 update: settings left out, fallback kept",
        "PUT",
        "/tasks/{task}",
        falls_back(FALLBACK_MESSAGE, sent=True),
        body={"name": "Renamed"},
        given=fallback_draft,
    ),
    Call("7 delete", "DELETE", "/tasks/{task}", lambda body, ctx: None, given=draft, status=204),
    Call("8 execute: start", "POST", "/tasks/{task}/execute", executed, given=filled),
    Call("8 execute: resume", "POST", "/tasks/{task}/execute", executed, given=paused),
    Call("8 execute: scheduled, now", "POST", "/tasks/{task}/execute", executed, given=scheduled),
    Call("8 execute: running already", "POST", "/tasks/{task}/execute", executed, given=running),
    Call("9 pause", "POST", "/tasks/{task}/pause", paused_answer, given=running),
    Call("10 status", "GET", "/tasks/{finished}/status", stats),
    Call("11 check admin rights", "POST", "/tasks/check-admin-rights", rights, body={"group_link": GROUP}),
    Call(
        "11 check admin rights, none",
        "POST",
        "/tasks/check-admin-rights",
        no_rights,
        body={"group_link": LOCKED_GROUP},
    ),
    Call("12 logs", "GET", "/tasks/{finished}/logs?limit=50", logs),
    Call("13 task accounts", "GET", "/tasks/{finished}/accounts", task_accounts),
    Call(
        "14 test invite",
        "POST",
        "/tasks/{task}/test-invite?target_id={target}&account_id={account}",
        tried,
        given=trial_ready,
    ),
    Call("15 accounts", "GET", "/accounts/", accounts),
    Call("16 parsing tasks", "GET", "/parsing-tasks", parsing_tasks),
    Call(
        "17 import parsing",
        "POST",
        "/tasks/{task}/import/parsing",
        imported(3),
        body={"parsing_task_id": PARSING_TASK, "source_name": f"parsing_{PARSING_TASK}"},
        given=draft,
    ),
    Call(
        "18 import file",
        "POST",
        "/tasks/{task}/import/file",
        imported(2),
        given=draft,
        file=people_csv(["fay_page", "gus_page"]),
    ),
    # errors: JSON with the detail the page shows, 401 so that it refreshes its token
    Call("error: bad token", "GET", "/tasks/", detail("token"), token="not-a-token", status=401),
    Call("error: unknown task", "GET", f"/tasks/{uuid.uuid4()}", detail("task not found"), status=404),
    Call("error: blank name", "POST", "/tasks/", detail("name:"), body={"name": ""}, status=422),
    Call(
        "error: no template",
        "POST",
        "/tasks/",
        detail("invite_message: required"),
        body="no template",
        status=422,
    ),
    Call(
        "error: edit while running",
        "PUT",
        "/tasks/{task}",
        detail("pause it first"),
        body="update",
        given=running,
        status=409,
    ),
    Call(
        "error: too many extras",
        "POST",
        "/tasks/",
        detail("settings: at most 64"),
        body="crowded",
        status=422,
    ),
    Call(
        "error: pause, not started",
        "POST",
        "/tasks/{task}/pause",
        detail("not started"),
        given=draft,
        status=409,
    ),
    Call(
        "error: start, no people",
        "POST",
        "/tasks/{task}/execute",
        detail("import an audience"),
        given=draft,
        status=409,
    ),
    Call(
        "error: not a form",
        "POST",
        "/tasks/{task}/import/file",
        detail("multipart/form-data expected"),
        body={"file": "people.csv"},
        given=draft,
        status=415,
    ),
]


def _body(call: Call, ctx: Ctx) -> Any:
    ready = [ctx.world.account(1), ctx.world.account(2)]
    if call.body == "invite":
        return create_body(ready)
    if call.body == "message":
        return create_body(ready, group=None, message="Hello {first_name}!")
    if call.body == "no template":
        return create_body(ready, group=None)
    if call.body == "clamped":
        body = create_body(ready, message=None)
        body |= {"priority": "urgent", "delay_between_invites": 1, "max_invites_per_account": 1000}
        body["settings"] |= {"delay_between_invites": 1, "brand_new_option": {"keep": True}}
        return body
    if call.body == "crowded":
        body = create_body(ready)
        body["settings"] |= {f"option_{n}": n for n in range(70)}
        return body
    if call.body == "fallback":
        return _fallback_body(ready)
    if call.body == "fallback, no message":
        return _fallback_body(ready, message=None)
    if call.body in ("fallback on", "fallback off"):
        on = call.body == "fallback on"
        settings = create_body(ready)["settings"] | {"fallback_to_messages": on}
        return {"name": "Renamed", "invite_message": "Join: {invite_link}", "settings": settings}
    if call.body == "update":
        settings = {"auto_add_contacts": True, "group_id": GROUP}
        return {
            "name": "Renamed",
            "description": "from the page",
            "invite_message": None,
            "settings": settings,
        }
    return call.body


@pytest.mark.parametrize("call", CALLS, ids=[c.name for c in CALLS])
async def test_the_page_gets_what_it_reads(call: Call, world: World, finished: str) -> None:
    async with AsyncExitStack() as stack:
        ctx = Ctx(world, finished, stack)
        await call.given(ctx)
        path = call.path.format(
            task=ctx.ids.get("task"),
            finished=finished,
            target=ctx.ids.get("target"),
            account=ctx.ids.get("account"),
        )
        if call.file is not None:
            response = await world.page.upload(path, "people.csv", call.file, "file_1")
        else:
            response = await world.page.call(call.method, path, _body(call, ctx), token=call.token)
    assert response.status_code == call.status, response.text
    body: Any = response.json() if response.content else None
    if not response.is_success:
        assert isinstance(body["detail"], str)
        assert body["detail"]  # the page shows it
    checked = call.reads(body, ctx)
    if checked is not None:
        await checked


async def test_the_gateway_delivered_every_call_to_the_page_api(world: World) -> None:
    if world.gateway is None:
        pytest.skip("the platform's real gateway keeps no record of what it forwarded")
    assert world.gateway.forwarded  # the rows above went through it
    page_api = f"{world.service_url}{world.settings.frontend_api_prefix}/"
    assert all(url.startswith(page_api) for url in world.gateway.forwarded)
    assert not [url for url in world.gateway.forwarded if url.startswith(page_api + "invite/")]


async def test_an_expired_token_is_401_so_the_page_refreshes(world: World) -> None:
    expired = issue_token(SECRET, world.tenant, timedelta(minutes=-1))
    response = await world.page.call("GET", "/tasks/", token=expired)
    assert response.status_code == 401
    assert response.json()["detail"]


async def test_openapi_documents_the_page_api_under_its_own_tag(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.service_url) as direct:
        document = ok(await direct.get("/docs/openapi.json"))
        ours = await direct.get("/api/v1/invite/tasks", headers=world.page.headers())
    (tag,) = [t for t in document["tags"] if t["name"] == TAG]
    assert "Mailing page" in tag["description"]
    page_api = {
        path: operations
        for path, operations in document["paths"].items()
        if path.startswith("/api/v1/") and not path.startswith("/api/v1/invite/")
    }
    assert "/api/v1/tasks/check-admin-rights" in page_api
    assert "/api/v1/tasks/{task_id}/test-invite" in page_api
    assert "/api/v1/tasks/{task_id}/import/file" in page_api
    for operations in page_api.values():
        for operation in operations.values():
            assert operation["tags"] == [TAG]
    assert all(
        TAG not in op.get("tags", [])
        for p, ops in document["paths"].items()
        if p.startswith("/api/v1/invite/")
        for op in ops.values()
    )
    assert "next_cursor" in ok(ours)  # our own API, beside it, answers in its own shape


async def test_the_two_apis_never_share_a_prefix(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="FRONTEND_API_PREFIX"):
        create_app(msgspec.structs.replace(settings, frontend_api_prefix=settings.api_prefix + "/"))


async def test_the_rights_check_leaves_an_account_an_engine_holds_alone(world: World, finished: str) -> None:
    held = world.account(2)
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        # as a replica's lease keeper writes it while it drives the account
        await conn.execute(
            "UPDATE invite_accounts SET lease_owner = 'another-replica', lease_expires_at = now() + interval '1 hour'"
            " WHERE id = $1",
            held,
        )
        leases_before = len(world.app.state.accounts_provider.leases)
        body = ok(await world.page.call("POST", "/tasks/check-admin-rights", {"group_link": GROUP}))
    finally:
        await conn.execute(
            "UPDATE invite_accounts SET lease_owner = NULL, lease_expires_at = NULL WHERE id = $1", held
        )
        await conn.close()
    (busy,) = [a for a in body["unavailable_accounts"] if a["account_id"] == held]
    assert "in use" in busy["reason"]
    assert held not in [a["account_id"] for a in body["ready_accounts"]]
    leased = [lease[0] for lease in world.app.state.accounts_provider.leases[leases_before:]]
    assert sorted(leased) == [world.account(n) for n in (1, 3, 4)]  # never the held one


async def test_the_account_lists_show_each_accounts_health(world: World, finished: str) -> None:
    """/accounts/ and /tasks/{id}/accounts carry GET /accounts's health beside the page's fields:
    a fresh account warming up (day 1 of WARMUP_DAYS), one resting after a FloodWait until when."""
    resting = world.account(2)
    conn = await asyncpg.connect(world.settings.database_url)
    before = await conn.fetchrow(
        "SELECT status, status_reason, cooldown_until FROM invite_accounts WHERE id = $1", resting
    )
    assert before is not None
    try:
        until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
        await conn.execute(  # as the group commit writes a FloodWait
            "UPDATE invite_accounts SET status = 'cooldown', status_reason = 'FloodWait 3600 s',"
            " cooldown_until = $2 WHERE id = $1",
            resting,
            until,
        )
        listed = {a["account_id"]: a for a in ok(await world.page.call("GET", "/accounts/"))}
        in_task = ok(await world.page.call("GET", f"/tasks/{finished}/accounts"))["accounts"]
    finally:
        await conn.execute(
            "UPDATE invite_accounts SET status = $2, status_reason = $3, cooldown_until = $4 WHERE id = $1",
            resting,
            before["status"],
            before["status_reason"],
            before["cooldown_until"],
        )
        await conn.close()
    days = world.settings.warmup_days
    for entries in (listed.values(), in_task):
        for account in entries:
            has(account, ACCOUNT_FIELDS)
            has_health(account)
        shown = {a["account_id"]: a for a in entries}
        cooling = shown[resting]
        assert (cooling["health"], cooling["status"]) == (
            "cooling_down",
            "flood_wait",
        )  # the page's word kept
        assert datetime.fromisoformat(cooling["health_until"]) == until
        assert cooling["health_until"] == cooling["flood_wait_until"]
        warming = shown[world.account(1)]
        assert (warming["health"], warming["warmup_day"], warming["warmup_days"]) == ("warming_up", 1, days)
        assert warming["health_until"] is None


ANOTHER_TENANTS_TASK = [
    ("GET", "/tasks/{task}", None),
    ("PUT", "/tasks/{task}", {"name": "taken over"}),
    ("DELETE", "/tasks/{task}", None),
    ("POST", "/tasks/{task}/execute", None),
    ("POST", "/tasks/{task}/pause", None),
    ("GET", "/tasks/{task}/status", None),
    ("GET", "/tasks/{task}/logs?limit=50", None),
    ("GET", "/tasks/{task}/accounts", None),
    ("POST", "/tasks/{task}/import/parsing", {"parsing_task_id": PARSING_TASK, "source_name": "x"}),
    ("POST", "/tasks/{task}/test-invite", {"target_id": str(uuid.uuid4())}),
    ("GET", f"/tasks/{{task}}/test-invite/{uuid.uuid4()}", None),
]


async def test_another_tenant_reaches_nothing_of_this_one(world: World, finished: str) -> None:
    stranger = world.page.other(issue_token(SECRET, new_tenant(), timedelta(minutes=5)))
    try:
        for method, path, body in ANOTHER_TENANTS_TASK:
            answer = await stranger.call(method, path.format(task=finished), body)
            assert answer.status_code == 404, (method, path, answer.text)
        upload = await stranger.upload(f"/tasks/{finished}/import/file", "p.csv", people_csv(["x_page"]), "f")
        assert upload.status_code == 404, upload.text
        assert ok(await stranger.call("GET", "/tasks/"))["items"] == []
        theirs = {a["account_id"] for a in ok(await stranger.call("GET", "/accounts/"))}
        assert not theirs & {world.account(n) for n in range(1, 5)}
        rights = ok(await stranger.call("POST", "/tasks/check-admin-rights", {"group_link": GROUP}))
        checked = {a["account_id"] for a in rights["ready_accounts"] + rights["unavailable_accounts"]}
        assert checked == theirs
    finally:
        await stranger.aclose()
    # and the owner's campaign is as it was
    assert ok(await world.page.call("GET", f"/tasks/{finished}/status"))["status"] == "completed"
