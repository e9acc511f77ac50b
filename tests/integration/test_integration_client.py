"""The Integration Service client against a local server answering as the platform does when run.

The fake keeps the platform's account-manager state the way its code does
(PLATFORM-AS-RUN.md), bugs included:

- the invites accounts list answers 500 as soon as an account has ``flood_wait_until`` or
  ``blocked_until`` set (a naive/aware comparison), and after that unhandled exception the
  server drops the next request on the same keep-alive connection; the account-manager
  summary keeps answering;
- allocate with ``preferred_account_id`` hands out the account whatever its status, as long
  as it is active and not locked by another service; without it only available accounts
  under their daily and per-channel limits go out (resting ones whose time is over are set
  active again on the way, the only place the platform clears the columns); renewal by the
  holder is re-entrant (the lock is refreshed);
- release adds the usage (every channel of ``channels_used``, as given, gets all the
  invites), and a release with ``success: false`` and an ``error_type`` is handled as a new
  error: ``FLOOD_WAIT_X`` then rests the account 300 s + 60 s from now and counts it twice;
- handle-error: a FloodWait for the first number in the message (else 300) and a minute, a
  spam flag 24 hours, a ban, deactivation or auth-key error disables the account for good;
  every error counts.

Seen when the platform's own code ran (docs/platform-as-run.md) and kept here too:

- the list carries no names: ``username``, ``first_name``, ``last_name`` are always null (its
  table has no such columns), the remaining seconds are null when there is no rest, and its
  500 is the JSON ``{"detail": "Внутренняя ошибка сервера"}`` of its catch-all handler;
- every 404 it answers, "no account free" too, is ``{"detail": "Endpoint не найден"}`` (its
  404 handler replaces the endpoint's own detail);
- the summary's ``is_available`` ignores the locks (they live in Redis, it reads the table's
  unused ``locked`` column), and the summary answers 500 for the whole tenant as soon as an
  account is ``active`` while a ``flood_wait_until`` or ``blocked_until`` is still set — what
  any other error type reported for a resting account leaves behind (its status goes back to
  ``active``, the time stays): nothing on the platform clears that.

Its time stands still unless it is given a clock (the engine's, in the engine's tests).
"""

from __future__ import annotations

import asyncio
import gc
import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import msgspec
import pytest

from invite.integrations.cache import MemoryCache
from invite.integrations.integration import IntegrationClient, channel_key
from invite.kernel.clock import Clock
from invite.kernel.http import UpstreamError
from invite.platforms.base import AccountEvent, LeasePurpose, UsageStats
from tests.fakeserver import FakeServer, Reply, Request

SECRET = "integration-test-secret-" + "i" * 20
TENANT = "42"
A1 = "6f1c3a52-0d5e-4c1b-9a40-2b7e5f1d0a11"
A2 = "9b2d4e63-1e6f-4d2c-8b51-3c8f6a2e1b22"
A3 = "1a3e5f74-2f7a-4e3d-9c62-4d9a7b3f2c33"
TELETHON_B64 = "MUJRQUFBQUFBQUFB"  # base64 of a (short) Telethon string; opaque to this client
LIMITS = {  # the platform's AccountLimits, in every allocation
    "daily_invite_limit": 30,
    "daily_message_limit": 30,
    "contacts_daily_limit": 15,
    "per_channel_invite_limit": 15,
}
CHANNEL_LIFETIME = 200  # the platform's max_per_channel_total
DISABLING = ("auth_key_error", "user_deactivated", "phone_number_banned")
NONE_FREE = {"detail": "Endpoint не найден"}  # every 404 of the platform's integration service
SERVER_ERROR = {"detail": "Внутренняя ошибка сервера"}  # its catch-all 500 handler
SUMMARY_BROKEN = "Error getting available accounts: can't compare offset-naive and offset-aware datetimes"


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
    flood_wait_until: datetime | None = None  # naive UTC, as the platform stores it
    blocked_until: datetime | None = None
    error_count: int = 0
    used_invites_today: int = 0
    used_messages_today: int = 0
    contacts_today: int = 0
    per_channel: dict[str, dict[str, int]] = field(default_factory=dict)  # key as released: today, total

    def listed(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": None,  # the platform's table has no names: always null
            "phone": self.phone,
            "first_name": None,
            "last_name": None,
            "status": self.status,
            "is_active": self.is_active,
            "created_at": "2026-01-01T10:00:00+00:00",
            "last_activity": "2026-01-01T10:00:00+00:00",
            "flood_wait_until": None,
            "blocked_until": None,
            "flood_wait_remaining_seconds": None,
            "blocked_remaining_seconds": None,
            "daily_limits": {"invites": 50, "messages": 40},  # hard-coded on the platform
        }

    def summarised(self, now: datetime) -> dict[str, Any]:
        resting = any(
            until is not None and until > now for until in (self.flood_wait_until, self.blocked_until)
        )
        return {
            "account_id": self.id,
            "phone": self.phone,
            "status": self.status,
            # the platform's locks live in Redis; is_available reads the table's unused column
            "is_available": self.is_active and self.status == "active" and not resting,
            "used_invites_today": self.used_invites_today,
            "used_messages_today": self.used_messages_today,
            "contacts_today": self.contacts_today,
            "error_count": self.error_count,
            "last_used_at": None,
            "flood_wait_until": self.flood_wait_until.isoformat() if self.flood_wait_until else None,
            "blocked_until": self.blocked_until.isoformat() if self.blocked_until else None,
        }


class IntegrationService:
    def __init__(self, server: FakeServer, clock: Clock | None = None) -> None:
        self.server = server
        self.clock = clock
        self.accounts = {
            A1: Account(A1, "+79123456781", "anna_one"),
            A2: Account(A2, "+79123456782", None),
            A3: Account(A3, "+79123456783", "gone", status="disabled"),
        }
        self.errors: list[dict[str, Any]] = []  # every error handled: reported, or repeated by a release
        self.releases: list[tuple[str, dict[str, Any]]] = []
        self.allocations: list[dict[str, Any]] = []  # the bodies of allocations granted
        server.route("GET", "/api/v1/telegram/invites/accounts", self.list)
        server.route("GET", "/api/v1/account-manager/accounts/summary", self.summary)
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

    def list(self, request: Request) -> Reply:
        if not self.authorised(request):
            return Reply(401)
        if any(a.flood_wait_until or a.blocked_until for a in self.accounts.values()):
            # "can't compare offset-naive and offset-aware datetimes", unhandled
            return Reply(500, json=SERVER_ERROR, close_after=True)
        return Reply(json=[a.listed() for a in self.accounts.values()])

    def summary(self, request: Request) -> Reply:
        assert self.authorised(request)
        assert request.arg("user_id") == TENANT
        assert request.arg("include_unavailable") == "true"
        now = self.now()
        active = [a for a in self.accounts.values() if a.is_active]
        if any(a.status == "active" and (a.flood_wait_until or a.blocked_until) for a in active):
            # is_available compares the aware column with utcnow(): caught, answered as a 500
            return Reply(500, json={"detail": SUMMARY_BROKEN})
        accounts = [a.summarised(now) for a in active]
        statuses: dict[str, int] = {}
        for account in active:
            statuses[account.status] = statuses.get(account.status, 0) + 1
        return Reply(
            json={
                "success": True,
                "user_id": int(TENANT),
                "purpose": "general",
                "total_accounts": len(accounts),
                "active_accounts": len(accounts),
                "available_now": sum(a["is_available"] for a in accounts),
                "aggregates": {
                    "status_distribution": statuses,
                    "can_invite_in_channel_true": None,
                    "capacity_today_sum": sum(
                        max(0, LIMITS["daily_invite_limit"] - a.used_invites_today) for a in active
                    ),
                    "capacity_today_by_channel": None,
                },
                "accounts": accounts,
            }
        )

    def allocate(self, request: Request) -> Reply:
        body = request.json()
        assert self.authorised(request)
        assert body["user_id"] == int(TENANT)
        assert body["service_name"] == "invite-service"
        assert body["purpose"] in ("invite_campaign", "message_campaign")  # the contract's purposes
        service = body["service_name"]
        preferred = self.accounts.get(body.get("preferred_account_id") or "")
        if preferred is not None and preferred.locked_by in (None, service) and preferred.is_active:
            account: Account | None = preferred  # the bypass: whatever its status
        else:
            account = self._available(body, preferred)
        if account is None:
            return Reply(404, json=NONE_FREE)
        account.locked_by = service  # a lock of ours is refreshed
        self.allocations.append(body)
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
                    "allocated_by": service,
                    "purpose": body["purpose"],
                    "expires_at": (now + timedelta(minutes=body["timeout_minutes"])).isoformat(),
                    "limits": LIMITS,
                    "current_usage": {
                        "invites_today": account.used_invites_today,
                        "messages_today": account.used_messages_today,
                        "contacts_today": account.contacts_today,
                    },
                },
            }
        )

    def _available(self, body: dict[str, Any], preferred: Account | None) -> Account | None:
        now = self.now()
        channel = body.get("target_channel_id")
        candidates = [preferred] if body.get("preferred_account_id") else list(self.accounts.values())
        for account in candidates:
            if (
                account is None
                or not account.is_active
                or account.locked_by not in (None, body["service_name"])
            ):
                continue
            if account.status in ("flood_wait", "blocked"):  # the lazy recovery, this path only
                until = account.flood_wait_until if account.status == "flood_wait" else account.blocked_until
                if until is None or until <= now:
                    account.status, account.flood_wait_until, account.blocked_until = "active", None, None
            if account.status != "active":
                continue
            if body["purpose"] == "invite_campaign":
                used = account.per_channel.get(channel or "", {"today": 0, "total": 0})
                if account.used_invites_today >= LIMITS["daily_invite_limit"]:
                    continue
                if channel and (
                    used["today"] >= LIMITS["per_channel_invite_limit"] or used["total"] >= CHANNEL_LIFETIME
                ):
                    continue
            return account
        return None

    def release(self, request: Request) -> Reply:
        account = self.accounts.get(request.params["account_id"])
        if account is None:
            return Reply(400, json={"detail": "Failed to release account"})
        body = request.json()
        usage = body["usage_stats"]
        self.releases.append((account.id, body))
        account.used_invites_today += usage.get("invites_sent", 0)
        account.used_messages_today += usage.get("messages_sent", 0)
        account.contacts_today += usage.get("contacts_added", 0)
        for channel in usage.get("channels_used") or []:
            used = account.per_channel.setdefault(channel, {"today": 0, "total": 0})
            used["today"] += usage.get("invites_sent", 0)
            used["total"] += usage.get("invites_sent", 0)
        if not usage.get("success", True) and usage.get("error_type"):
            self._handle(account, usage["error_type"], usage.get("error_message") or "Unknown error")
        if account.locked_by == body["service_name"]:
            account.locked_by = None
        return Reply(json={"success": True, "message": f"Account {account.id} released successfully"})

    def handle_error(self, request: Request) -> Reply:
        body = request.json()
        account = self.accounts[request.params["account_id"]]
        self._handle(account, body["error_type"], body["error_message"], body.get("context"))
        return Reply(
            json={"success": True, "result": {"account_id": account.id, "new_status": account.status}}
        )

    def _handle(self, account: Account, error_type: str, message: str, context: Any = None) -> None:
        self.errors.append({"error_type": error_type, "error_message": message, "context": context})
        now = self.now()
        account.error_count += 1
        if error_type == "flood_wait":
            match = re.search(r"(\d+)", message)  # exactly how the platform reads it
            seconds = int(match[1]) if match else 300
            account.status, account.flood_wait_until = "flood_wait", now + timedelta(seconds=seconds + 60)
        elif error_type == "peer_flood":
            account.status, account.blocked_until = "blocked", now + timedelta(hours=24)
        elif error_type in DISABLING:
            account.status = "disabled"
        else:
            account.status = "active"

    def rests(self, account_id: str) -> float:
        """Seconds the platform still rests the account (0: it does not)."""
        account = self.accounts[account_id]
        until = max((u for u in (account.flood_wait_until, account.blocked_until) if u), default=None)
        return max(0.0, (until - self.now()).total_seconds()) if until else 0.0


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


SUMMARY = "/api/v1/account-manager/accounts/summary"
LIST = "/api/v1/telegram/invites/accounts"
ALLOCATE = "/api/v1/account-manager/allocate"


async def test_lists_the_accounts_from_the_account_managers_summary(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    accounts = await client.list_accounts(TENANT)

    # A3 is disabled on the platform: left out; the list's hard-coded limits are not taken
    assert [(a.id, a.label, a.daily_limit) for a in accounts] == [
        (A1, "+7*******781", None),
        (A2, "+7*******782", None),
    ]
    assert all(a.session == "" and a.user_id == TENANT for a in accounts)
    [call] = server.requests
    assert (call.path, call.headers["x-user-id"], call.arg("user_id")) == (SUMMARY, TENANT, TENANT)


async def test_the_accounts_keep_coming_after_a_flood_wait_breaks_the_platforms_list(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.report(A1, TENANT, AccountEvent.FLOOD_WAIT, "420 FLOOD_WAIT_3600")
    await client.invalidate(TENANT)

    assert [a.id for a in await client.list_accounts(TENANT)] == [A1, A2]  # resting, but the tenant's
    async with httpx.AsyncClient() as direct:  # the invites list itself answers 500 from now on
        broken = await direct.get(server.url + LIST, headers=_service_headers())
    assert broken.status_code == 500


async def test_an_integration_service_without_the_summary_is_read_from_its_list(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    server.route("GET", SUMMARY, Reply(404, json=NONE_FREE))

    accounts = await client.list_accounts(TENANT)

    # the platform's list has no names (always null): the masked phone is the label
    assert [(a.id, a.label, a.daily_limit) for a in accounts] == [
        (A1, "+7*******781", None),
        (A2, "+7*******782", None),
    ]


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

    assert platform.rests(A1) == seconds + 60  # the platform adds its minute
    assert platform.errors[0]["error_type"] == "flood_wait"
    assert platform.errors[0]["context"] == {"service": "invite-service", "user_id": 42}


async def test_lease_gives_the_session_and_the_allocations_limits(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    account = await client.lease(A1, TENANT, LeasePurpose.MESSAGE_CAMPAIGN, "@Interop_Grp")

    assert account is not None
    assert (account.id, account.user_id, account.daily_limit, account.channel_limit) == (A1, TENANT, 30, 15)
    assert account.session == TELETHON_B64  # session_data.encrypted_session, unchanged
    assert account.label == "+7*******781"  # the phone, masked
    assert TELETHON_B64 not in repr(account)
    body = server.requests_to("POST", ALLOCATE)[0].json()
    assert body == {  # a message campaign has no channel
        "user_id": 42,
        "purpose": "message_campaign",
        "service_name": "invite-service",
        "preferred_account_id": A1,
        "timeout_minutes": 30,
    }
    assert account.lease_seconds == 30 * 60  # expires_at - allocated_at, in the platform's clock


@pytest.mark.parametrize(
    "group", ["https://t.me/Interop_Grp", "@Interop_Grp", "interop_grp", " t.me/INTEROP_grp"]
)
async def test_an_invite_lease_names_the_channel_as_the_platform_keys_it(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient, group: str
) -> None:
    assert await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN, group) is not None

    assert server.requests_to("POST", ALLOCATE)[0].json()["target_channel_id"] == "interop_grp"


@pytest.mark.parametrize(
    ("status", "field"),
    [("flood_wait", "flood_wait_until"), ("blocked", "blocked_until"), ("disabled", None)],
)
async def test_an_account_the_platform_rests_is_handed_out_but_given_back_at_once(
    platform: IntegrationService, client: IntegrationClient, status: str, field: str | None
) -> None:
    account = platform.accounts[A1]
    account.status = status
    if field:
        setattr(account, field, platform.now() + timedelta(hours=1))

    assert await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN) is None

    assert len(platform.allocations) == 1  # the platform's preferred allocation ignored the status
    assert account.locked_by is None
    assert [account_id for account_id, _ in platform.releases] == [A1]


async def test_an_account_whose_rest_is_over_is_driven_though_its_status_still_says_flood_wait(
    platform: IntegrationService, client: IntegrationClient
) -> None:
    account = platform.accounts[A1]
    account.status, account.flood_wait_until = "flood_wait", platform.now() - timedelta(seconds=1)

    assert await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN) is not None


async def test_lease_of_an_account_another_service_holds_is_none(
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

    server.route("POST", ALLOCATE, ignores_preference)
    platform.accounts[A1].locked_by = "parsing-service"

    assert await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN) is None
    assert platform.accounts[A2].locked_by is None  # released again
    assert [account_id for account_id, _ in platform.releases] == [A2]


async def test_renew_allocates_again_and_the_platform_refreshes_our_lock(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.lease(A1, TENANT, LeasePurpose.MESSAGE_CAMPAIGN)

    renewed = await client.renew(A1, TENANT, LeasePurpose.MESSAGE_CAMPAIGN)

    assert renewed is not None
    assert (renewed.id, renewed.session, renewed.lease_seconds) == (A1, TELETHON_B64, 30 * 60)
    assert platform.accounts[A1].locked_by == "invite-service"
    assert [r.path for r in server.requests if r.method == "POST"] == [ALLOCATE, ALLOCATE]
    assert platform.releases == []  # never let go in between


async def test_renew_answers_none_and_lets_go_when_the_platform_rests_the_account_meanwhile(
    platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)
    await client.report(A1, TENANT, AccountEvent.FLOOD_WAIT, "FLOOD_WAIT_3600")

    assert await client.renew(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN) is None
    assert platform.accounts[A1].locked_by is None


async def test_renew_fails_loudly_when_the_platform_is_down(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)
    server.route("POST", ALLOCATE, Reply(500))

    with pytest.raises(UpstreamError):
        await client.renew(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)


async def test_a_lease_without_its_times_lasts_the_minutes_asked_for(server: FakeServer) -> None:
    server.route(
        "POST", ALLOCATE, Reply(json={"success": True, "allocation": {"account_id": A1, "session_data": {}}})
    )
    client = IntegrationClient(server.url, secret, MemoryCache(), lease_minutes=12)
    try:
        account = await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)
    finally:
        await client.aclose()
    assert account is not None
    assert account.lease_seconds == 12 * 60


async def test_release_sends_the_usage_with_the_channels_as_the_platform_keys_them(
    platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN, "@Interop_Grp")
    usage = UsageStats(
        invites_sent=7, contacts_added=2, channels_used=["https://t.me/Interop_Grp", "@interop_grp"]
    )

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
                    "channels_used": ["interop_grp"],
                },
            },
        )
    ]
    assert platform.accounts[A1].per_channel == {"interop_grp": {"today": 7, "total": 7}}


async def test_a_release_does_not_repeat_a_reported_flood_wait(
    platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)
    await client.report(A1, TENANT, AccountEvent.FLOOD_WAIT, "FLOOD_WAIT_X (3600 s)")
    # what the engine's usage says after the event
    usage = UsageStats(invites_sent=3, success=False, error_type="flood_wait", error_message="FLOOD_WAIT_X")

    await client.release(A1, TENANT, usage)

    assert platform.rests(A1) == 3600 + 60  # not the 300 s fallback a repeat would have set
    assert platform.accounts[A1].error_count == 1
    sent = platform.releases[0][1]["usage_stats"]
    assert (sent["success"], sent["error_type"], sent["error_message"]) == (True, None, None)


async def test_an_event_whose_report_failed_goes_with_the_release(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)
    handle_error = "/api/v1/account-manager/handle-error/{account_id}"
    server.route("POST", handle_error, Reply(503))
    with pytest.raises(UpstreamError):
        await client.report(A1, TENANT, AccountEvent.FLOOD_WAIT, "FLOOD_WAIT_X (3600 s)")
    server.route("POST", handle_error, platform.handle_error)

    await client.release(A1, TENANT, UsageStats(success=False, error_type="flood_wait"))

    assert platform.rests(A1) == 3600 + 60
    assert platform.accounts[A1].error_count == 1
    sent = platform.releases[0][1]["usage_stats"]
    assert (sent["success"], sent["error_type"], sent["error_message"]) == (
        False,
        "flood_wait",
        "FLOOD_WAIT_X (3600 s)",
    )


async def test_releasing_an_account_the_platform_does_not_know_is_not_an_error(
    platform: IntegrationService, client: IntegrationClient
) -> None:
    await client.release("00000000-0000-0000-0000-000000000000", TENANT, UsageStats())


async def test_a_500_on_the_summary_is_retried_then_succeeds(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    server.route("GET", SUMMARY, Reply(500), platform.summary)

    assert len(await client.list_accounts(TENANT)) == 2
    assert len(server.requests) == 2


async def test_a_service_that_keeps_failing_is_an_upstream_error(
    server: FakeServer, client: IntegrationClient
) -> None:
    server.route("GET", SUMMARY, Reply(500, json={"detail": "db down"}))

    with pytest.raises(UpstreamError) as caught:
        await client.list_accounts(TENANT)

    assert caught.value.service == "integration-service"
    assert len(server.requests) == 3


async def test_allocate_is_not_retried_after_an_answer(server: FakeServer, client: IntegrationClient) -> None:
    server.route("POST", ALLOCATE, Reply(500))

    with pytest.raises(UpstreamError):
        await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)

    assert len(server.requests) == 1


async def test_a_call_on_a_connection_the_platform_dropped_after_its_500_goes_again_on_a_fresh_one(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    # the platform's unhandled exception: a 500, and the keep-alive connection is dead after it
    server.route("POST", ALLOCATE, Reply(500, body=b"Internal Server Error", close_after=True))
    with pytest.raises(UpstreamError):
        await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)
    server.route("POST", ALLOCATE, platform.allocate)

    account = await client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN)

    assert account is not None
    assert len(server.requests_to("POST", ALLOCATE)) == 2  # the dropped one never reached it


async def test_a_timeout_is_an_upstream_error(server: FakeServer) -> None:
    server.route("GET", SUMMARY, Reply(json={"accounts": []}, delay=1.0))
    client = IntegrationClient(
        server.url, secret, MemoryCache(), timeout_seconds=0.1, retries=1, backoff_seconds=0.01
    )
    try:
        with pytest.raises(UpstreamError) as caught:
            await client.list_accounts(TENANT)
    finally:
        await client.aclose()
    assert "timed out" in caught.value.detail


async def test_a_summary_read_in_flight_at_shutdown_is_stopped_with_the_client(
    server: FakeServer, platform: IntegrationService
) -> None:
    """A lease cancelled at shutdown leaves its shared summary read behind: closing the client
    stops it and takes its outcome, so nothing is sent on the closed client and no error is
    left unretrieved for the event loop to report."""
    asked = threading.Event()

    def unavailable(request: Request) -> Reply:
        asked.set()
        return Reply(503)  # tried again after a backoff

    server.route("GET", SUMMARY, unavailable, platform.summary)
    client = IntegrationClient(
        server.url, secret, MemoryCache(), timeout_seconds=2.0, retries=1, backoff_seconds=0.3
    )
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))
    try:
        lease = asyncio.ensure_future(client.lease(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN))
        assert await asyncio.to_thread(asked.wait, 5.0)
        lease.cancel()
        await asyncio.gather(lease, return_exceptions=True)
        await client.aclose()
        await asyncio.sleep(0.5)  # past the backoff: the read would go again now
        del client, lease
        gc.collect()  # an error nobody took is reported as its task goes
    finally:
        loop.set_exception_handler(None)
    assert unretrieved == []
    assert len(server.requests_to("GET", SUMMARY)) == 1


async def test_an_unreachable_service_is_an_upstream_error() -> None:
    client = IntegrationClient("http://127.0.0.1:1", secret, MemoryCache(), retries=1, backoff_seconds=0.01)
    try:
        with pytest.raises(UpstreamError) as caught:
            await client.report(A1, TENANT, AccountEvent.PEER_FLOOD, "PEER_FLOOD")
    finally:
        await client.aclose()
    assert "unreachable" in caught.value.detail


@pytest.mark.parametrize("path", [SUMMARY, LIST])
async def test_an_answer_that_is_not_the_contract_is_an_upstream_error(
    server: FakeServer, client: IntegrationClient, path: str
) -> None:
    if path == LIST:
        server.route("GET", SUMMARY, Reply(404))
    server.route("GET", path, Reply(json={"unexpected": True, "accounts": "x"}))

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

    assert server.requests_to("POST", ALLOCATE)[0].json()["purpose"] == sent


CHANNELS = [
    "https://t.me/Interop_Grp",
    "http://t.me/a/Interop_Grp",
    "@Interop_Grp",
    " Interop_Grp ",
    "-1001234",
]


async def test_the_channel_key_is_the_platforms_and_the_databases_alike(pool: asyncpg.Pool) -> None:
    in_sql = await pool.fetch("SELECT c, invite_channel_key(c) AS key FROM unnest($1::text[]) c", CHANNELS)

    assert [channel_key(c) for c in CHANNELS] == ["interop_grp"] * 4 + ["-1001234"]
    assert [row["key"] for row in in_sql] == [channel_key(c) for c in CHANNELS]


def _service_headers() -> dict[str, str]:
    token = jwt.encode({"sub": "service:invite-service"}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}", "X-User-Id": TENANT}


async def test_the_renewals_of_one_moment_share_one_read_of_the_summary(
    server: FakeServer, platform: IntegrationService, client: IntegrationClient
) -> None:
    """A heartbeat renews every account of a tenant side by side: one summary read answers them
    all (not one read of the whole list per account); a report of ours makes the next read anew."""
    for account in (A1, A2):
        await client.lease(account, TENANT, LeasePurpose.INVITE_CAMPAIGN)
    before = len(server.requests_to("GET", SUMMARY))
    renewed = await asyncio.gather(
        *(client.renew(account, TENANT, LeasePurpose.INVITE_CAMPAIGN) for account in (A1, A2, A1, A2))
    )
    assert all(lease is not None for lease in renewed)
    assert len(server.requests_to("GET", SUMMARY)) - before <= 1
    await client.report(A1, TENANT, AccountEvent.FLOOD_WAIT, "FLOOD_WAIT_3600")
    assert await client.renew(A1, TENANT, LeasePurpose.INVITE_CAMPAIGN) is None  # seen at once
