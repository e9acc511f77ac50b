"""GET /accounts: the provider's accounts merged with the engine's live state, tenant-scoped, masked.

The service is tested on its own with a virtual clock (sandbox and Integration Service
providers); the endpoint through the real app (auth, problem details, the app's pool).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from prometheus_client import REGISTRY

from invite.accounts.service import AccountsService, mask_phones
from invite.engine.health import Health
from invite.integrations.cache import MemoryCache
from invite.integrations.integration import IntegrationClient
from invite.kernel.clock import VirtualClock
from invite.kernel.db import create_pool
from invite.kernel.settings import Settings
from invite.platforms.sandbox import SandboxAccounts
from invite.reports.gauges import refresh_fleet_gauges
from tests.fakeserver import FakeServer, Reply
from tests.integration.api import PREFIX, Client, auth_headers, new_tenant

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SECRET = "accounts-test-secret-" + "a" * 24
SESSION = "MUJRQUFBQUFBQUFB-secret-session"


async def secret() -> str:
    return SECRET


async def add_state(pool: asyncpg.Pool, user_id: str, account_id: str, **columns: Any) -> None:
    """A row of invite_accounts as the engine leaves it."""
    row = {"id": account_id, "user_id": user_id, **columns}
    names = ", ".join(row)
    marks = ", ".join(f"${n}" for n in range(1, len(row) + 1))
    await pool.execute(f"INSERT INTO invite_accounts ({names}) VALUES ({marks})", *row.values())


def integration_accounts(server: FakeServer, user_id: str) -> None:
    server.route(
        "GET",
        "/api/v1/telegram/invites/accounts",
        Reply(
            json=[
                {
                    "id": f"acc-{user_id}-1",
                    "username": "anna_1234567",
                    "phone": "+79123456781",
                    "first_name": "Anna",
                    "last_name": None,
                    "status": "active",
                    "is_active": True,
                    "created_at": "2026-01-01T10:00:00",
                    "last_activity": None,
                    "flood_wait_until": None,
                    "blocked_until": None,
                    "flood_wait_remaining_seconds": 0,
                    "blocked_remaining_seconds": 0,
                    "daily_limits": {"invites": 25, "messages": 30},
                    "session_data": {"encrypted_session": SESSION},
                },
                {
                    "id": f"acc-{user_id}-2",
                    "username": None,
                    "phone": "+79123456782",
                    "first_name": None,
                    "last_name": None,
                    "status": "active",
                    "is_active": True,
                    "daily_limits": {"invites": 50, "messages": 40},
                },
            ]
        ),
    )


@pytest.fixture
def tenant_id() -> str:
    return new_tenant()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
async def integration(server: FakeServer) -> AsyncIterator[IntegrationClient]:
    client = IntegrationClient(server.url, secret, MemoryCache(), retries=0, timeout_seconds=1)
    yield client
    await client.aclose()


# --- the service ----------------------------------------------------------------------------


async def test_sandbox_accounts_merged_with_the_engines_state(
    pool: asyncpg.Pool, settings: Settings, tenant_id: str
) -> None:
    ids = [f"sandbox-{tenant_id}-{n}" for n in range(1, 6)]
    await add_state(
        pool, tenant_id, ids[0],
        status="cooldown", status_reason="FloodWait 3600 s", cooldown_until=NOW + timedelta(hours=1),
        daily_window_start=NOW - timedelta(hours=2), daily_count=12, pace_multiplier=2.0,
        last_action_at=NOW - timedelta(minutes=5),
    )  # fmt: skip
    await add_state(pool, tenant_id, ids[1], status="blocked", status_reason="the account was deactivated")
    await add_state(
        pool, tenant_id, ids[2], daily_window_start=NOW - timedelta(hours=25), daily_count=40, daily_limit=20
    )  # the window closed an hour ago
    await add_state(
        pool,
        tenant_id,
        ids[3],
        status="cooldown",
        status_reason="FloodWait 60 s",
        cooldown_until=NOW - timedelta(seconds=1),
    )  # over
    service = AccountsService(pool, SandboxAccounts(5), settings, VirtualClock(NOW), tenant_id)

    views = {v.id: v for v in (await service.list_accounts()).accounts}

    assert list(views) == ids
    cooling = views[ids[0]]
    assert (cooling.status, cooling.status_reason) == ("cooldown", "FloodWait 3600 s")
    assert cooling.cooldown_until == NOW + timedelta(hours=1)
    assert (cooling.used_today, cooling.daily_limit) == (12, settings.daily_quota)
    assert cooling.window_resets_at == NOW + timedelta(hours=22)
    assert cooling.pace_multiplier == 2.0
    assert (views[ids[1]].status, views[ids[1]].status_reason) == ("blocked", "the account was deactivated")
    assert (views[ids[2]].used_today, views[ids[2]].daily_limit, views[ids[2]].window_resets_at) == (
        0,
        20,
        None,
    )
    assert (views[ids[3]].status, views[ids[3]].cooldown_until) == ("active", None)
    fresh = views[ids[4]]
    assert (fresh.status, fresh.used_today, fresh.available, fresh.label) == (
        "active",
        0,
        True,
        "Sandbox account 5",
    )


async def test_only_the_tenants_own_accounts(pool: asyncpg.Pool, settings: Settings, tenant_id: str) -> None:
    other = new_tenant()
    await add_state(pool, other, f"sandbox-{other}-1", status="blocked", status_reason="theirs")
    await add_state(pool, other, "engine-only-of-another-tenant")
    service = AccountsService(pool, SandboxAccounts(2), settings, VirtualClock(NOW), tenant_id)

    views = (await service.list_accounts()).accounts

    assert [v.id for v in views] == [f"sandbox-{tenant_id}-1", f"sandbox-{tenant_id}-2"]
    assert all(v.status == "active" for v in views)


async def test_integration_accounts_limits_labels_and_accounts_the_provider_dropped(
    pool: asyncpg.Pool, settings: Settings, tenant_id: str, server: FakeServer, integration: IntegrationClient
) -> None:
    integration_accounts(server, tenant_id)
    # the platform's limit is the one its lease gave (kept in the row); the list's numbers are hard-coded
    await add_state(
        pool, tenant_id, f"acc-{tenant_id}-1", daily_window_start=NOW, daily_count=3, daily_limit=25
    )
    await add_state(
        pool, tenant_id, "acc-removed", label="Work phone +7 912 345-67-89", status="blocked",
        status_reason="the session was revoked",
    )  # fmt: skip
    service = AccountsService(pool, integration, settings, VirtualClock(NOW), tenant_id)

    views = (await service.list_accounts()).accounts

    assert [(v.id, v.label, v.available, v.daily_limit, v.used_today) for v in views] == [
        (f"acc-{tenant_id}-1", "@anna_1234567", True, 25, 3),
        (f"acc-{tenant_id}-2", "+7*******782", True, 5, 0),  # not used yet: its first day of warm-up
        ("acc-removed", "Work phone +7*******789", False, settings.daily_quota, 0),
    ]
    assert views[2].status == "blocked"


HEALTHY_SINCE = NOW - timedelta(days=30)  # a clean history longer than the warm-up
HEALTH: dict[str, dict[str, Any]] = {
    "healthy": {"warmup_since": HEALTHY_SINCE, "daily_window_start": NOW, "daily_count": 3},
    "pacing": {"warmup_since": HEALTHY_SINCE, "pace_multiplier": 4.0},
    "spent": {
        "warmup_since": HEALTHY_SINCE,
        "daily_window_start": NOW - timedelta(hours=3),
        "daily_count": 40,
    },
    "flood": {
        "warmup_since": HEALTHY_SINCE,
        "status": "cooldown",
        "status_reason": "FloodWait 600 s",
        "cooldown_until": NOW + timedelta(minutes=11),
    },
    "flagged": {  # the group commit restarted its clean history at the flag
        "warmup_since": NOW - timedelta(hours=2),
        "status": "cooldown",
        "status_reason": "spam flag (PeerFlood): resting 24 h",
        "cooldown_until": NOW + timedelta(hours=22),
    },
    "warming": {
        "warmup_since": NOW - timedelta(days=2, hours=1),
        "daily_window_start": NOW,
        "daily_count": 1,
    },
    "frozen": {"status": "blocked", "status_reason": "account dead: FROZEN_METHOD_INVALID"},
    "dead": {"status": "blocked", "status_reason": "account dead: USER_DEACTIVATED_BAN"},
}


async def add_health_states(pool: asyncpg.Pool, tenant_id: str) -> None:
    for name, columns in HEALTH.items():
        await add_state(pool, tenant_id, f"{tenant_id}-{name}", **columns)


async def test_each_account_s_health(pool: asyncpg.Pool, settings: Settings, tenant_id: str) -> None:
    await add_health_states(pool, tenant_id)
    service = AccountsService(pool, SandboxAccounts(1), settings, VirtualClock(NOW), tenant_id)

    views = {v.id.replace(f"{tenant_id}-", ""): v for v in (await service.list_accounts()).accounts}

    health = {name: (v.health, v.warmup_day, v.warmup_days) for name, v in views.items()}
    assert health == {
        "sandbox-1": ("warming_up", 1, 14),  # listed, never used: it starts warming up
        "healthy": ("healthy", None, None),
        "pacing": ("pacing", None, None),  # slowed down after FloodWaits
        "spent": ("pacing", None, None),  # today's quota used up
        "flood": ("cooling_down", None, None),
        "flagged": ("spam_flagged", None, None),
        "warming": ("warming_up", 3, 14),
        "frozen": ("frozen", None, None),
        "dead": ("dead", None, None),
    }
    # the rests say until when
    assert views["flood"].cooldown_until == NOW + timedelta(minutes=11)
    assert views["flagged"].cooldown_until == NOW + timedelta(hours=22)
    # the quota in force includes the warm-up's: 5 a day rising to 40 over 14 days
    assert views["sandbox-1"].daily_limit == 5
    assert views["warming"].daily_limit == 5 + 35 * 2 // 14
    assert views["healthy"].daily_limit == settings.daily_quota


async def test_warm_up_off_shows_the_full_quota(
    pool: asyncpg.Pool, settings: Settings, tenant_id: str
) -> None:
    await add_state(pool, tenant_id, f"sandbox-{tenant_id}-1", warmup_since=NOW)
    off = msgspec.structs.replace(settings, warmup_days=0)
    service = AccountsService(pool, SandboxAccounts(1), off, VirtualClock(NOW), tenant_id)

    [view] = (await service.list_accounts()).accounts

    assert (view.health, view.daily_limit, view.warmup_day) == ("healthy", off.daily_quota, None)


async def test_the_fleet_gauge_counts_accounts_by_health(fresh_database_url: str, settings: Settings) -> None:
    own = msgspec.structs.replace(settings, database_url=fresh_database_url)
    pool = await create_pool(fresh_database_url, own)
    try:
        await add_health_states(pool, "t1")
        await refresh_fleet_gauges(pool, own, VirtualClock(NOW))
    finally:
        await pool.close()

    counts = {
        state.value: REGISTRY.get_sample_value(
            "invite_accounts_by_health", {"platform": "telegram", "health": state.value}
        )
        for state in Health
    }
    assert counts == {
        "healthy": 1.0,
        "pacing": 2,
        "cooling_down": 1,
        "spam_flagged": 1,
        "warming_up": 1,
        "frozen": 1,
        "dead": 1,
    }


def test_phones_in_labels_are_masked_and_usernames_left_alone() -> None:
    assert mask_phones("+79123456789") == "+7*******789"
    assert mask_phones("call 8 (912) 345-67-89 now") == "call 8*******789 now"
    assert mask_phones("@anna_1234567") == "@anna_1234567"
    assert mask_phones("Sandbox account 3") == "Sandbox account 3"


# --- the endpoint ---------------------------------------------------------------------------


async def test_get_accounts_through_the_app(
    client: Client, pool: asyncpg.Pool, tenant: str, headers: dict[str, str]
) -> None:
    await add_state(pool, tenant, f"sandbox-{tenant}-2", status="blocked", status_reason="banned")

    response = await client.get(f"{PREFIX}/accounts", headers=headers)

    assert response.status_code == 200
    accounts = response.json()["accounts"]
    assert [a["id"] for a in accounts] == [f"sandbox-{tenant}-{n}" for n in range(1, 6)]
    assert (accounts[1]["status"], accounts[1]["status_reason"]) == ("blocked", "banned")
    assert all("session" not in a for a in accounts)
    assert accounts[1]["health"] == "dead"
    assert (accounts[0]["health"], accounts[0]["warmup_day"], accounts[0]["warmup_days"]) == (
        "warming_up",
        1,
        14,
    )


async def test_get_accounts_from_the_integration_service_never_shows_sessions_or_phones(
    client: Client, tenant: str, headers: dict[str, str], server: FakeServer, integration: IntegrationClient
) -> None:
    integration_accounts(server, tenant)
    client.app.state.accounts_provider = integration

    response = await client.get(f"{PREFIX}/accounts", headers=headers)

    assert response.status_code == 200
    body = response.text
    assert SESSION not in body
    assert "9123456781" not in body
    assert "9123456782" not in body
    assert server.requests[0].headers["x-user-id"] == tenant


async def test_integration_service_down_is_a_problem_naming_it(
    client: Client, headers: dict[str, str], server: FakeServer, integration: IntegrationClient
) -> None:
    server.route("GET", "/api/v1/telegram/invites/accounts", Reply(500))
    client.app.state.accounts_provider = integration

    response = await client.get(f"{PREFIX}/accounts", headers=headers)

    assert response.status_code in (502, 503)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "integration-service" in response.json()["detail"]


async def test_get_accounts_needs_a_token(client: Client) -> None:
    response = await client.get(f"{PREFIX}/accounts")

    assert response.status_code == 401


async def test_another_tenants_token_sees_only_its_accounts(
    client: Client, pool: asyncpg.Pool, tenant: str
) -> None:
    await add_state(pool, tenant, "engine-only-account", status="blocked", status_reason="x")
    other = new_tenant()

    response = await client.get(f"{PREFIX}/accounts", headers=auth_headers(client, other))

    ids = [a["id"] for a in response.json()["accounts"]]
    assert "engine-only-account" not in ids
    assert all(i.startswith(f"sandbox-{other}-") for i in ids)
