"""The Mailing page's world for a test module: this service (API only) behind the gateway, a
Parsing Service stand-in, a page for one tenant, and an engine replica to run its campaigns.

The served app runs without its engine, as an API replica; ``engine_replica`` starts one on the
same database (another process's share of the work, as in production), so a test decides when
campaigns run. The sandbox: the tenant's 4th account is dead, nobody may invite into
``LOCKED_GROUP``, and half the people refuse invites for privacy (by a hash of the person).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest_asyncio
from litestar import Litestar

from invite.kernel.clock import RealClock
from invite.kernel.settings import Settings
from invite.platforms.sandbox import SandboxAccounts, SandboxFactory
from tests.fakeserver import FakeServer, Reply, Request
from tests.integration.api import new_tenant
from tests.integration.engine.harness import running_replica
from tests.integration.frontend.page import Gateway, Page, page_world
from tests.integration.parsing import GROUPED_PATH, ROOT_GROUPED, ParsingService

SECRET = "test-secret-" + "x" * 32
GROUP = "https://t.me/Page_Group"
LOCKED_GROUP = "@locked_group"
ACCOUNTS = 4
PARSING_TASK = str(uuid.uuid4())
EMPTY_PARSING_TASK = str(uuid.uuid4())


@dataclass
class World:
    page: Page
    tenant: str
    settings: Settings
    app: Litestar
    parsing: FakeServer
    service_url: str  # this service, not through the gateway
    gateway: Gateway | None  # None: the platform's real gateway (see page_world)

    def account(self, n: int) -> str:
        return f"sandbox-{self.tenant}-{n}"


def parsed_people(n: int) -> list[dict[str, Any]]:
    """Results of a Parsing Service task, shaped as PLATFORM-CONTRACTS.md says."""
    return [
        {
            "id": f"r{i}",
            "task_id": PARSING_TASK,
            "platform": "telegram",
            "platform_id": str(7_000_000 + i),
            "username": f"parsed_person_{i}",
            "display_name": f"Parsed {i}",
            "platform_specific_data": {"user_id": 7_000_000 + i, "username": f"parsed_person_{i}"},
        }
        for i in range(1, n + 1)
    ]


def grouped(request: Request) -> Reply:
    """``GET /api/v1/results/grouped`` as the parsing service answers it."""
    tasks = [
        {
            "task_id": PARSING_TASK,
            "platform": "telegram",
            "target_url": "https://t.me/parsed_channel",
            "title": "Parsed channel",
            "status": "completed",
            "total_results": 3,
            "created_at": "2026-11-30T10:00:00",
        },
        {
            "task_id": EMPTY_PARSING_TASK,
            "platform": "telegram",
            "target_url": "@empty_channel",
            "title": "Nothing found",
            "status": "completed",
            "total_results": 0,
            "created_at": "2026-11-29T10:00:00",
        },
    ]
    return Reply(json={"tasks": tasks, "total_tasks": len(tasks), "user_id": request.arg("user_id")})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(database_url: str) -> AsyncIterator[World]:
    tenant = new_tenant()
    profile = {
        "privacy_restricted_rate": 0.5,
        "groups_without_right": [LOCKED_GROUP],
        "dead_accounts": [f"sandbox-{tenant}-{ACCOUNTS}"],
    }
    with FakeServer() as parsing:
        # as the platform answers: the list at /api/v1/results/grouped; at the root the task route
        # takes the path and answers an empty task "grouped" (docs/platform-as-run.md)
        parsing.route("GET", GROUPED_PATH, grouped)
        parsing.route("GET", "/results/grouped", Reply(json=ROOT_GROUPED))  # before {task_id}
        parsing.route("GET", "/results/{task_id}", ParsingService(SECRET, parsed_people(3)))
        settings = Settings(
            database_url=database_url,
            jwt_secret=SECRET,
            log_json=False,
            log_level="WARNING",
            db_pool_min=2,
            engine_enabled=False,
            parsing_service_url=parsing.url,
            sandbox_accounts_per_tenant=ACCOUNTS,
            sandbox_profile=json.dumps(profile),
            poll_interval_seconds=0.2,
            min_pause_seconds=2.0,  # the test invite after a campaign waits for it
        )
        async with page_world(settings, tenant) as (page, app, service_url, gateway):
            yield World(page, tenant, settings, app, parsing, service_url, gateway)


@asynccontextmanager
async def engine_replica(settings: Settings) -> AsyncIterator[None]:
    """An engine replica of this service on the same database, with the sandbox driver."""
    mine = msgspec.structs.replace(settings, engine_enabled=True, replica_id=f"engine-{uuid.uuid4().hex[:6]}")
    clock = RealClock()
    factory = SandboxFactory.from_settings(mine, clock)
    async with running_replica(mine, clock, factory, SandboxAccounts.from_settings(mine)):
        yield


def create_body(ready: list[str], *, group: str | None = GROUP, message: str | None = None) -> dict[str, Any]:
    """The body inviteApi.tasks.create sends for the page's form (api.ts; undefined fields left out)."""
    body: dict[str, Any] = {
        "name": f"Приглашения в {group}" if group else "Сообщения",
        "platform": "telegram",
        "priority": "normal",
        "delay_between_invites": 45,
        "max_invites_per_account": 5,
        "settings": {
            "delay_between_invites": 45,
            "batch_size": 5,
            "auto_add_contacts": False,
            "fallback_to_messages": False,
            "group_id": group,
            "invite_type": "group_invite" if group else "message",
            "allowed_account_ids": ready,
        },
    }
    if message is not None:
        body["invite_message"] = message
    return body


def people_csv(names: list[str]) -> bytes:
    return ("username,first_name\n" + "".join(f"@{n},{n.title()}\n" for n in names)).encode()


async def until(
    page: Page, task_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 20.0
) -> dict[str, Any]:
    """Poll the page's status call (as its stats panel does) until ``done`` holds."""
    async with asyncio.timeout(timeout):
        while True:
            response = await page.call("GET", f"/tasks/{task_id}/status")
            assert response.status_code == 200, response.text
            status: dict[str, Any] = response.json()
            if done(status):
                return status
            await asyncio.sleep(0.1)


async def new_task(page: Page, world: World, people: list[str], **body: Any) -> str:
    """A task created and given people through the page's own calls; its id."""
    ready = [world.account(n) for n in (1, 2, 3)]
    created = await page.call("POST", "/tasks/", create_body(ready, **body))
    assert created.status_code in (200, 201), created.text
    task_id: str = created.json()["id"]
    if people:
        imported = await page.upload(
            f"/tasks/{task_id}/import/file", "people.csv", people_csv(people), "file_1"
        )
        assert imported.status_code == 200, imported.text
    return task_id


def ok(response: httpx.Response) -> Any:
    assert response.is_success, f"{response.status_code} {response.text}"
    return response.json() if response.content else None
