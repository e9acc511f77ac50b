"""Production wiring: the settings choose the adapters, the process builds one of each.

Without the platform (``make run``) the sandbox serves accounts and actions; with
INTEGRATION_SERVICE_URL the Integration Service client serves GET /accounts and the engine
alike; with TELEGRAM_DRIVER=telegram the Telegram adapter gets its API credentials from
Vault (or the environment), and a missing one stops start-up with one line naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from invite.app import create_app
from invite.integrations.integration import IntegrationClient
from invite.kernel.auth import issue_token
from invite.kernel.clock import RealClock
from invite.kernel.settings import ROOT, Settings, SettingsError
from invite.platforms.sandbox import SandboxAccounts
from invite.wiring import open_accounts, strategies_from_settings
from tests.fakeserver import FakeServer
from tests.integration.api import PREFIX, insert_targets, message_task
from tests.integration.engine.harness import engine_pool, wait_for_status
from tests.integration.test_integration_client import A1, A2, SECRET, TENANT
from tests.integration.test_vault import API_HASH, ROLE_ID, SECRET_ID, FakeVault
from tests.security.test_log_hygiene import PLENTY, GenerousPlatform

TARGETS = 6


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


async def _no_secret() -> str:
    raise AssertionError("the sandbox asks for no secret")


async def test_without_the_platform_the_sandbox_serves_accounts_and_actions() -> None:
    settings = Settings()

    async with open_accounts(settings, _no_secret) as accounts:
        assert isinstance(accounts, SandboxAccounts)
    assert (await strategies_from_settings(settings, RealClock())).driver == "sandbox"


async def test_the_integration_service_serves_the_accounts_endpoint_and_the_engine_alike(
    fresh_database_url: str, server: FakeServer
) -> None:
    platform = GenerousPlatform(server)
    settings = Settings(
        database_url=fresh_database_url,
        jwt_secret=SECRET,  # the platform's services share the secret
        log_json=False,
        integration_service_url=server.url,
        sandbox_profile="zero",
        daily_quota=PLENTY,
        daily_quota_with_link=PLENTY,
        warmup_days=0,  # new accounts at the full quota at once
        min_pause_seconds=0.001,
        poll_interval_seconds=0.2,
        db_pool_max=10,
    )
    headers = {"Authorization": "Bearer " + issue_token(SECRET, TENANT, timedelta(minutes=5))}
    async with AsyncTestClient(app=create_app(settings)) as client, engine_pool(settings) as pool:
        assert isinstance(client.app.state.accounts_provider, IntegrationClient)
        listed = await client.get(f"{PREFIX}/accounts", headers=headers)
        assert [a["id"] for a in listed.json()["accounts"]] == [A1, A2]  # the platform's usable ones

        task_id = (await client.post(f"{PREFIX}/tasks", json=message_task(), headers=headers)).json()["id"]
        await insert_targets(pool, task_id, TARGETS)
        assert (await client.post(f"{PREFIX}/tasks/{task_id}/start", headers=headers)).status_code == 200
        await wait_for_status(pool, RealClock(), uuid.UUID(task_id), "completed", step=0.1, limit=30)

    allocations = [r.json() for r in server.requests_to("POST", "/api/v1/account-manager/allocate")]
    assert allocations
    assert all(a["purpose"] == "message_campaign" for a in allocations)  # a message task's accounts
    assert {account_id for account_id, _ in platform.releases} <= {A1, A2}
    assert sum(stats["usage_stats"]["messages_sent"] for _, stats in platform.releases) == TARGETS


async def test_the_telegram_driver_takes_its_api_credentials_from_vault(server: FakeServer) -> None:
    FakeVault(server)
    settings = Settings(
        telegram_driver="telegram", vault_addr=server.url, vault_role_id=ROLE_ID, vault_secret_id=SECRET_ID
    )

    factory = await strategies_from_settings(settings, RealClock())

    assert factory.driver == "telegram"
    assert server.requests_to("GET", "/v1/kv/data/integration-service")


async def test_the_telegram_driver_falls_back_to_the_environment() -> None:
    settings = Settings(telegram_driver="telegram", telegram_api_id=7, telegram_api_hash=API_HASH)

    assert (await strategies_from_settings(settings, RealClock())).driver == "telegram"


@pytest.mark.parametrize(
    ("present", "missing"),
    [({}, "TELEGRAM_API_ID and TELEGRAM_API_HASH"), ({"telegram_api_id": 7}, "TELEGRAM_API_HASH")],
)
async def test_a_missing_telegram_credential_is_named(present: dict[str, int], missing: str) -> None:
    settings = Settings(telegram_driver="telegram", **present)  # type: ignore[arg-type]

    with pytest.raises(SettingsError, match=f"or {missing}$"):
        await strategies_from_settings(settings, RealClock())


async def test_the_app_does_not_start_without_them_but_an_api_only_replica_needs_none(
    settings: Settings,
) -> None:
    telegram = msgspec.structs.replace(settings, telegram_driver="telegram")
    with pytest.raises(ExceptionGroup) as raised:  # the test client's task group carries it
        async with AsyncTestClient(app=create_app(telegram)):
            pass
    assert raised.group_contains(SettingsError, match="TELEGRAM_API_ID")

    api_only = msgspec.structs.replace(telegram, engine_enabled=False)
    async with AsyncTestClient(app=create_app(api_only)) as client:
        assert (await client.get(f"{PREFIX}/health")).status_code == 200


def test_serve_stops_with_one_line_naming_the_missing_credential(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VAULT_", "DATABASE_URL"))}
    env.update(DATA_DIR=str(tmp_path), TELEGRAM_DRIVER="telegram", TELEGRAM_API_ID="7")

    done = subprocess.run(
        [sys.executable, "-m", "invite", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "invite: TELEGRAM_DRIVER=telegram: no Telegram api_hash: set telegram_api_hash in Vault "
        "(kv/integration-service), or TELEGRAM_API_HASH"
    ]
    assert not (tmp_path / "pg").exists()  # stopped before the database
