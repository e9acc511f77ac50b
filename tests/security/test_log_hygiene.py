"""A whole campaign's logs hold no session string, secret, token or phone number in clear.

The run goes through every part that handles them: the API (bearer tokens, an import of
people with phone numbers), the engine leasing accounts from a local Integration Service
(which hands out session strings and the accounts' phones, and is called with service
tokens), and the sandbox driver sending the messages. Everything logged at DEBUG — the
rendered stderr stream and the log records — is then searched for each of them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from invite.app import create_app
from invite.integrations.cache import MemoryCache
from invite.integrations.integration import IntegrationClient
from invite.kernel.auth import issue_token
from invite.kernel.clock import RealClock
from invite.kernel.db import create_pool
from invite.kernel.settings import Settings
from invite.platforms.sandbox import SandboxAccounts, SandboxFactory, SandboxProfile
from invite.wiring import build_engine
from tests.fakeserver import FakeServer, Reply, Request
from tests.integration.api import PREFIX, message_task, new_tenant
from tests.integration.audience import upload
from tests.integration.test_integration_client import SECRET, TELETHON_B64, TENANT, IntegrationService

PLENTY = 1_000_000  # actions a day: the run is paced in milliseconds, not minutes
TARGET_PHONES = [f"+7999{n:07d}" for n in range(1, 11)]
JWT = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")


class GenerousPlatform(IntegrationService):
    """The Integration Service of the client tests, with limits that let a real clock finish fast."""

    def list(self, request: Request) -> Reply:
        return _with_limits(super().list(request))

    def allocate(self, request: Request) -> Reply:
        return _with_limits(super().allocate(request))


def _with_limits(reply: Reply) -> Reply:
    body: Any = reply.json
    for account in body if isinstance(body, list) else []:
        account["daily_limits"] = {"invites": PLENTY, "messages": PLENTY}
    if isinstance(body, dict) and "allocation" in body:
        body["allocation"]["limits"] = {"daily_invite_limit": PLENTY, "daily_message_limit": PLENTY}
    return Reply(reply.status, json=body)


@pytest.fixture
def platform() -> Iterator[tuple[FakeServer, GenerousPlatform]]:
    with FakeServer() as server:
        yield server, GenerousPlatform(server)


def people_csv() -> bytes:
    rows = ["username,phone,first_name"]
    rows += [f"person_{n:04d},{phone},Name{n}" for n, phone in enumerate(TARGET_PHONES)]
    rows += [f",{phone[:4]} {phone[4:7]} {phone[7:]}," for phone in ("+79998887766",)]  # phone only
    return "\n".join(rows).encode()


def in_clear(phone: str) -> list[str]:
    """The forms a phone number could be written in: with or without + and country code."""
    digits = phone.lstrip("+")
    return [digits, digits[1:]]


@pytest.mark.parametrize("provider", ["sandbox", "integration"])
async def test_a_campaigns_logs_hold_no_secrets(
    provider: str,
    fresh_database_url: str,
    settings: Settings,
    platform: tuple[FakeServer, GenerousPlatform],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, accounts_service = platform
    run = msgspec.structs.replace(
        settings,
        database_url=fresh_database_url,
        log_level="DEBUG",
        log_json=True,
        daily_quota=PLENTY,
        daily_quota_with_link=PLENTY,
        warmup_days=0,  # new accounts at the full quota at once
        min_pause_seconds=0.001,
        poll_interval_seconds=0.2,
        db_pool_max=10,
        engine_enabled=False,  # the app's own engine would drive the sandbox accounts: the one below runs
    )
    assert run.jwt_secret is not None
    tenant = TENANT if provider == "integration" else new_tenant()
    token = issue_token(run.jwt_secret, tenant, timedelta(minutes=5))
    headers = {"Authorization": f"Bearer {token}"}
    caplog.set_level(logging.DEBUG)
    async with AsyncTestClient(app=create_app(run)) as client:
        created = await client.post(f"{PREFIX}/tasks", json=message_task(), headers=headers)
        task_id = created.json()["id"]
        imported = await upload(client, headers, people_csv(), "people.csv", task_id=task_id)
        assert imported.status_code == 201, imported.text
        assert imported.json()["counts"]["imported"] == len(TARGET_PHONES) + 1

        pool = await create_pool(fresh_database_url, run)
        integration = IntegrationClient(server.url, _secret, MemoryCache(), retries=1, backoff_seconds=0.01)
        accounts = integration if provider == "integration" else SandboxAccounts.from_settings(run)
        clock = RealClock()
        factory = SandboxFactory.from_settings(run, clock, profile=SandboxProfile.zero())
        engine = build_engine(pool, run, clock, strategies=factory, accounts=accounts)
        await engine.start()
        try:
            assert (await client.post(f"{PREFIX}/tasks/{task_id}/start", headers=headers)).status_code == 200
            await _wait_for(client, headers, task_id, "completed")
            report = (await client.get(f"{PREFIX}/tasks/{task_id}/report", headers=headers)).json()
            await client.get(f"{PREFIX}/accounts", headers=headers)
            await client.get(f"{PREFIX}/tasks/{task_id}/logs", headers=headers)
        finally:
            await engine.stop()
            await integration.aclose()
            await pool.close()
    assert report["final"]
    assert report["actions"] == len(TARGET_PHONES) + 1
    if provider == "integration":
        assert accounts_service.releases, "the engine leased accounts from the Integration Service"

    written = capsys.readouterr().err + caplog.text
    assert f"/tasks/{task_id}/start" in written  # the run was logged, at DEBUG
    secrets = {
        "session string": TELETHON_B64,
        "JWT secret": run.jwt_secret,
        "integration secret": SECRET,
        "bearer token": token,
    }
    for what, secret in secrets.items():
        assert secret not in written, f"a {what} is in the logs"
    assert not JWT.findall(written), "a JWT is in the logs"
    account_phones = [a.phone for a in accounts_service.accounts.values()]
    for phone in [*TARGET_PHONES, "+79998887766", *account_phones]:
        for form in in_clear(phone):
            assert form not in written, f"the phone number {phone} is in the logs"


async def _secret() -> str:
    return SECRET


async def _wait_for(client: Any, headers: dict[str, str], task_id: str, status: str) -> None:
    for _ in range(200):
        current = (await client.get(f"{PREFIX}/tasks/{task_id}", headers=headers)).json()["status"]
        if current == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} is still {current}, not {status}")
