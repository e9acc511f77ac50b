"""The Integration Service client against a local server answering as PLATFORM-CONTRACTS.md says.

The fake keeps the platform's account-manager state the way its code does: allocate hands
out only accounts that are active, not locked and not resting (so a held account is not
re-allocated, even to its holder), release unlocks, handle-error changes the status and
rests the account (a FloodWait for its seconds and a minute, a spam flag for 24 hours). Its
time stands still unless it is given a clock (the engine's, in the engine's tests).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import msgspec
import pytest

from invite.engine.clock import Clock
from invite.integrations.cache import MemoryCache
from invite.integrations.http import UpstreamError
from invite.integrations.integration import IntegrationClient
from invite.platforms.base import AccountEvent, LeasePurpose, UsageStats
from tests.fakeserver import FakeServer, Reply, Request

SECRET = "integration-test-secret-" + "i" * 20
TENANT = "42"
A1 = "6f1c3a52-0d5e-4c1b-9a40-2b7e5f1d0a11"
A2 = "9b2d4e63-1e6f-4d2c-8b51-3c8f6a2e1b22"
A3 = "1a3e5f74-2f7a-4e3d-9c62-4d9a7b3f2c33"
TELETHON_B64 = "MUJRQUFBQUFBQUFB"  # base64 of a (short) Telethon string; opaque to this client


async def secret() -> str:
    return SECRET


@dataclass
class Account:
    id: str
    phone: str
    username: str | None
    status: str = "active"
    is_active: bool = True
    locked_by: str | None = None
    flood_wait_seconds: int | None = None
    resting_until: datetime | None = None  # after a FloodWait or a spam flag: allocatable again then

    def listed(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "phone": self.phone,
            "first_name": "Anna",
            "last_name": None,
            "status": self.status,
            "is_active": self.is_active,
            "created_at": "2026-01-01T10:00:00",
            "last_activity": None,
            "flood_wait_until": None,
            "blocked_until": None,
            "flood_wait_remaining_seconds": self.flood_wait_seconds or 0,
            "blocked_remaining_seconds": 0,
            "daily_limits": {"invites": 50, "messages": 40},
        }


class IntegrationService:
    def __init__(self, server: FakeServer, clock: Clock | None = None) -> None:
        self.clock = clock
        self.accounts = {
            A1: Account(A1, "+79123456781", "anna_one"),
            A2: Account(A2, "+79123456782", None),
            A3: Account(A3, "+79123456783", "gone", status="blocked"),
        }
        self.errors: list[dict[str, Any]] = []
        self.releases: list[tuple[str, dict[str, Any]]] = []
        server.route("GET", "/api/v1/telegram/invites/accounts", self.list)
        server.route("POST", "/api/v1/account-manager/allocate", self.allocate)
        server.route("POST", "/api/v1/account-manager/release/{account_id}", self.release)
        server.route("POST", "/api/v1/account-manager/handle-error/{account_id}", self.handle_error)

    @staticmethod
    def authorised(request: Request) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        claims = jwt.decode(token, SECRET, algorithms=["HS256"])
        return claims["sub"] == "service:invite-service" and request.headers.get("x-user-id") == TENANT

    def now(self) -> datetime:
        """The platform's time: naive UTC, as it writes it (datetime.utcnow())."""
        return self.clock.now().replace(tzinfo=None) if self.clock else datetime(2026, 1, 5, 9, 0)

    def usable(self, account: Account) -> bool:
        rested = account.resting_until is not None and account.resting_until <= self.now()
        return account.is_active and (account.status == "active" or rested)

    def list(self, request: Request) -> Reply:
        if not self.authorised(request):
            return Reply(401)
        return Reply(json=[a.listed() for a in self.accounts.values()])

    def allocate(self, request: Request) -> Reply:
        body = request.json()
        assert self.authorised(request)
        assert body["user_id"] == int(TENANT)
        assert body["service_name"] == "invite-service"
        assert body["purpose"] in ("invite_campaign", "message_campaign")  # the contract's purposes
        free = [a for a in self.accounts.values() if self.usable(a) and a.locked_by is None]
        if body.get("preferred_account_id"):
            free = [a for a in free if a.id == body["preferred_account_id"]]
        if not free:
            return Reply(404, json={"detail": "No available accounts found for the specified criteria"})
        account = free[0]
        account.locked_by = body["service_name"]
        now = self.now()
        return Reply(
            json={
                "success": True,
                "allocation": {
                    "account_id": account.id,
                    "user_id": int(TENANT),
                    "phone": account.phone,
                    "session_data": {"encrypted_session": TELETHON_B64},
                    "allocated_at": now.isoformat(),
                    "allocated_by": body["service_name"],
                    "purpose": body["purpose"],
                    "expires_at": (now + timedelta(minutes=body["timeout_minutes"])).isoformat(),
                    "limits": {
                        "daily_invite_limit": 30,
                        "daily_message_limit": 30,
                        "contacts_daily_limit": 50,
                        "per_channel_invite_limit": 15,
                    },
                    "current_usage": {"invites_today": 0, "messages_today": 0, "contacts_today": 0},
                },
            }
        )

    def release(self, request: Request) -> Reply:
        account = self.accounts.get(request.params["account_id"])
        if account is None:
            return Reply(400, json={"detail": "Failed to release account"})
        account.locked_by = None
        self.releases.append((account.id, request.json()))
        return Reply(json={"success": True, "message": f"Account {account.id} released successfully"})

    def handle_error(self, request: Request) -> Reply:
        body = request.json()
        account = self.accounts[request.params["account_id"]]
        self.errors.append(body)
        if body["error_type"] == "flood_wait":
            match = re.search(r"(\d+)", body["error_message"])  # exactly how the platform reads it
            account.flood_wait_seconds = int(match[1]) if match else 300
            account.status = "flood_wait"
            account.resting_until = self.now() + timedelta(seconds=account.flood_wait_seconds + 60)
        elif body["error_type"] in ("auth_key_error", "user_deactivated", "phone_number_banned"):
            account.status = "disabled"
        elif body["error_type"] == "peer_flood":
            account.status = "blocked"
            account.resting_until = self.now() + timedelta(hours=24)
        return Reply(
            json={"success": True, "result": {"account_id": account.id, "new_status": account.status}}
        )


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def platform(server: FakeServer) -> IntegrationService:
    return IntegrationService(server)


@pytest.fixture
async def client(server: FakeServer, platform: IntegrationService) -> AsyncIterator[IntegrationClient]:
    client = IntegrationClient(
        server.url, secret, MemoryCache(), timeout_seconds=0.5, retries=2, backoff_seconds=0.01
    )
    yield client
    await client.aclose()


async def test_lists_usable_accounts_with_the_lowest_daily_limit(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    accounts = await client.list_accounts(TENANT)

    assert [(a.id, a.label, a.daily_limit) for a in accounts] == [
        (A1, "@anna_one", 40),
        (A2, "Anna", 40),
    ]  # A3 is blocked on the platform: left out
    assert all(a.session == "" and a.user_id == TENANT for a in accounts)
    call = server.requests[0]
    assert call.headers["x-user-id"] == TENANT


async def test_the_list_is_cached_and_an_account_ending_report_drops_it(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.list_accounts(TENANT)
    await client.list_accounts(TENANT)
    assert len(server.requests_to("GET")) == 1

    await client.report(A1, TENANT, AccountEvent.USER_DEACTIVATED, "USER_DEACTIVATED")
    accounts = await client.list_accounts(TENANT)

    assert len(server.requests_to("GET")) == 2
    assert [a.id for a in accounts] == [A2]


async def test_a_flood_wait_report_does_not_drop_the_cache(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.list_accounts(TENANT)
    await client.report(A1, TENANT, AccountEvent.FLOOD_WAIT, "420 FLOOD_WAIT_3600")
    await client.list_accounts(TENANT)

    assert len(server.requests_to("GET")) == 1


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("3600", 3600),
        ("A wait of 86 seconds is required", 86),
        ("420 FLOOD_WAIT_3600", 3600),
        ("telegram asked for 12.5 s", 13),
        ("FloodWait 300s", 300),
    ],
)
async def test_flood_wait_seconds_are_the_first_number_the_platform_reads(
    platform: IntegrationService, client: IntegrationClient, message: str, seconds: int
) -> None:
    await client.report(A1, TENANT, AccountEvent.FLOOD_WAIT, message)

    assert platform.accounts[A1].flood_wait_seconds == seconds
    assert platform.errors[0]["error_type"] == "flood_wait"
    assert platform.errors[0]["context"] == {"service": "invite-service", "user_id": 42}


async def test_lease_gives_the_session_and_the_allocations_limits(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    account = await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)

    assert account is not None
    assert (account.id, account.user_id, account.daily_limit) == (A1, TENANT, 30)
    assert account.session == TELETHON_B64  # session_data.encrypted_session, unchanged
    assert account.label == "+7*******781"  # the phone, masked
    assert TELETHON_B64 not in repr(account)
    body = server.requests_to("POST", "/api/v1/account-manager/allocate")[0].json()
    assert body == {
        "user_id": 42,
        "purpose": "invite_campaign",
        "service_name": "invite-service",
        "preferred_account_id": A1,
        "timeout_minutes": 30,
    }
    assert account.lease_seconds == 30 * 60  # expires_at - allocated_at, in the platform's clock


async def test_lease_of_a_busy_account_is_none(
    platform: IntegrationService, client: IntegrationClient
) -> None:
    platform.accounts[A1].locked_by = "parsing-service"

    assert await client.lease(A1, TENANT, LeasePurpose.MESSAGE_CAMPAIGN) is None


async def test_an_allocation_of_another_account_is_given_back(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    # a platform that ignores preferred_account_id and hands out whatever is free
    original = platform.allocate

    def ignores_preference(request: Request) -> Reply:
        body = request.json()
        body.pop("preferred_account_id")
        return original(
            Request(request.method, request.path, request.query, request.headers, msgspec.json.encode(body))
        )

    server.route("POST", "/api/v1/account-manager/allocate", ignores_preference)
    platform.accounts[A1].locked_by = "parsing-service"

    assert await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN) is None
    assert platform.accounts[A2].locked_by is None  # released again
    assert [account_id for account_id, _ in platform.releases] == [A2]


async def test_renew_keeps_the_account_although_the_platform_refuses_to_reallocate_a_held_one(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.lease(A1, TENANT, LeasePurpose.MESSAGE_CAMPAIGN)

    renewed = await client.renew(A1, TENANT, LeasePurpose.MESSAGE_CAMPAIGN)

    assert renewed is not None
    assert (renewed.id, renewed.session, renewed.lease_seconds) == (A1, TELETHON_B64, 30 * 60)
    assert platform.accounts[A1].locked_by == "invite-service"
    paths = [r.path for r in server.requests]
    assert paths == [
        "/api/v1/account-manager/allocate",
        "/api/v1/account-manager/allocate",  # 404: held (by us)
        f"/api/v1/account-manager/release/{A1}",
        "/api/v1/account-manager/allocate",
    ]
    allocations = [r.json() for r in server.requests_to("POST", "/api/v1/account-manager/allocate")]
    assert {(a["preferred_account_id"], a["purpose"]) for a in allocations} == {(A1, "message_campaign")}
    # the usage under the lease is the engine's to report when it lets the account go
    assert platform.releases == [
        (A1, {"service_name": "invite-service", "usage_stats": msgspec.to_builtins(UsageStats())})
    ]


async def test_renew_answers_none_when_the_platform_no_longer_hands_the_account_out(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)
    platform.accounts[A1].status = "flood_wait"  # the platform rests it in between

    assert await client.renew(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN) is None


async def test_renew_fails_loudly_when_the_platform_is_down(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)
    server.route("POST", "/api/v1/account-manager/allocate", Reply(500))

    with pytest.raises(UpstreamError):
        await client.renew(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)


async def test_a_lease_without_its_times_lasts_the_minutes_asked_for(server: FakeServer) -> None:
    server.route(
        "POST",
        "/api/v1/account-manager/allocate",
        Reply(json={"success": True, "allocation": {"account_id": A1, "session_data": {}}}),
    )
    client = IntegrationClient(server.url, secret, MemoryCache(), lease_minutes=12)
    try:
        account = await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)
    finally:
        await client.aclose()
    assert account is not None
    assert account.lease_seconds == 12 * 60


async def test_release_sends_the_usage_stats(platform: IntegrationService, client: IntegrationClient) -> None:
    await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)
    usage = UsageStats(invites_sent=7, contacts_added=2, channels_used=["-1001234"])

    await client.release(A1, TENANT, usage)

    assert platform.accounts[A1].locked_by is None
    assert platform.releases == [
        (
            A1,
            {
                "service_name": "invite-service",
                "usage_stats": {
                    "invites_sent": 7,
                    "messages_sent": 0,
                    "contacts_added": 2,
                    "success": True,
                    "error_type": None,
                    "error_message": None,
                    "channels_used": ["-1001234"],
                },
            },
        )
    ]


async def test_releasing_an_account_the_platform_does_not_know_is_not_an_error(
    platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.release("00000000-0000-0000-0000-000000000000", TENANT, UsageStats())


async def test_a_500_on_list_is_retried_then_succeeds(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    server.route("GET", "/api/v1/telegram/invites/accounts", Reply(500), platform.list)

    assert len(await client.list_accounts(TENANT)) == 2
    assert len(server.requests) == 2


async def test_a_service_that_keeps_failing_is_an_upstream_error(
    server: FakeServer, client: IntegrationClient
) -> None:
    server.route("GET", "/api/v1/telegram/invites/accounts", Reply(500, json={"detail": "db down"}))

    with pytest.raises(UpstreamError) as caught:
        await client.list_accounts(TENANT)

    assert caught.value.service == "integration-service"
    assert len(server.requests) == 3


async def test_allocate_is_never_retried(server: FakeServer, client: IntegrationClient) -> None:
    server.route("POST", "/api/v1/account-manager/allocate", Reply(500))

    with pytest.raises(UpstreamError):
        await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)

    assert len(server.requests) == 1


async def test_a_timeout_is_an_upstream_error(server: FakeServer) -> None:
    server.route("GET", "/api/v1/telegram/invites/accounts", Reply(json=[], delay=1.0))
    client = IntegrationClient(
        server.url, secret, MemoryCache(), timeout_seconds=0.1, retries=1, backoff_seconds=0.01
    )
    try:
        with pytest.raises(UpstreamError) as caught:
            await client.list_accounts(TENANT)
    finally:
        await client.aclose()
    assert "timed out" in caught.value.detail


async def test_an_unreachable_service_is_an_upstream_error() -> None:
    client = IntegrationClient("http://127.0.0.1:1", secret, MemoryCache(), retries=1, backoff_seconds=0.01)
    try:
        with pytest.raises(UpstreamError) as caught:
            await client.report(A1, TENANT, AccountEvent.PEER_FLOOD, "PEER_FLOOD")
    finally:
        await client.aclose()
    assert "unreachable" in caught.value.detail


async def test_a_list_that_is_not_the_contract_is_an_upstream_error(
    server: FakeServer, client: IntegrationClient
) -> None:
    server.route(
        "GET", "/api/v1/telegram/invites/accounts", Reply(json={"unexpected": True, "accounts": "x"})
    )

    with pytest.raises(UpstreamError):
        await client.list_accounts(TENANT)


@pytest.mark.parametrize(
    ("purpose", "sent"),
    [(LeasePurpose.INVITE_CAMPAIGN, "invite_campaign"), (LeasePurpose.MESSAGE_CAMPAIGN, "message_campaign")],
)
async def test_the_purpose_is_sent_in_the_platforms_words(
    server: FakeServer,
    platform: IntegrationService,
    client: IntegrationClient,
    purpose: LeasePurpose,
    sent: str,
) -> None:
    assert await client.lease(A1, TENANT, purpose) is not None

    assert server.requests_to("POST", "/api/v1/account-manager/allocate")[0].json()["purpose"] == sent
