"""The platform's Integration Service as our ``AccountsProvider``: accounts, leases, error reports.

Base ``{INTEGRATION_SERVICE_URL}/api/v1``; every call carries the service JWT and
``X-User-Id: <tenant>`` (PLATFORM-CONTRACTS.md).

- ``list_accounts``: ``GET /telegram/invites/accounts``, cached per tenant for a short TTL.
  Accounts the platform reports ``blocked`` or ``disabled`` (or not ``is_active``) are left
  out: the engine must not pick them. ``flood_wait`` accounts stay listed; the platform
  refuses to lease them until the wait is over, and ``lease`` then answers None.
- ``lease``: ``POST /account-manager/allocate`` for exactly that account, for the purpose
  the engine names (``invite_campaign`` or ``message_campaign``: the platform checks that
  daily counter), for ``timeout_minutes``. ``session`` is the
  allocation's ``session_data.encrypted_session`` unchanged (base64 of a Telethon
  StringSession today), which the Telegram adapter reads (platforms/telegram/sessions.py);
  a ``session_data`` without that key is passed on as its JSON. ``lease_seconds`` is the
  allocation's ``expires_at - allocated_at`` (both the platform's clock, so no skew between
  its clock and ours matters), else the minutes asked for. 404 means none is free → None.
  Not retried: a second allocate could lock a second account.
- ``renew``: the engine's heartbeat calls it when a third of the lease is left; it
  allocates again with ``preferred_account_id`` and the same purpose. The platform does
  not hand out an account that is locked, even to its holder, so when that is refused the
  lease is released (with no usage: the engine's own release at the end reports it all)
  and taken again at once (a window of one round trip in which another service could take
  it: then renew answers None, and the engine stops driving the account).
- ``release`` and ``report`` are retried (the platform treats repeats as harmless).
  ``report`` for an account-ending event drops the tenant's cached list.

Daily limits: the lowest of what the platform reports for invites and messages; the
engine takes the lowest of that, our defaults and the task's settings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import msgspec
import structlog

from invite.engine.clock import Clock, RealClock
from invite.integrations.cache import Cache, get_struct, set_struct
from invite.integrations.http import SERVICE_NAME, UpstreamError, integration_token, request
from invite.platforms.base import AccountData, AccountEvent, LeasePurpose, UsageStats
from invite.settings import Settings

SERVICE = "integration-service"
ACCOUNT_ENDING = frozenset(
    {
        AccountEvent.PEER_FLOOD,
        AccountEvent.AUTH_KEY_ERROR,
        AccountEvent.USER_DEACTIVATED,
        AccountEvent.PHONE_NUMBER_BANNED,
    }
)
UNUSABLE_STATUSES = frozenset({"blocked", "disabled"})

SecretProvider = Callable[[], Awaitable[str]]
log = structlog.get_logger(__name__)


# --- the platform's shapes (unknown fields ignored) ----------------------------------------


class _DailyLimits(msgspec.Struct):
    invites: int | None = None
    messages: int | None = None


class _PlatformAccount(msgspec.Struct):
    id: str
    username: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    status: str = "active"
    is_active: bool = True
    daily_limits: _DailyLimits | None = None


class _AccountsEnvelope(msgspec.Struct):
    accounts: list[_PlatformAccount] = msgspec.field(default_factory=list)


class _Limits(msgspec.Struct):
    daily_invite_limit: int | None = None
    daily_message_limit: int | None = None


class _Allocation(msgspec.Struct):
    account_id: str
    allocated_at: str | None = None
    expires_at: str | None = None
    phone: str | None = None
    session_data: dict[str, object] | str | None = None
    limits: _Limits | None = None


class _Allocated(msgspec.Struct):
    success: bool = True
    allocation: _Allocation | None = None


_decode_accounts = msgspec.json.Decoder(list[_PlatformAccount] | _AccountsEnvelope).decode
_decode_allocated = msgspec.json.Decoder(_Allocated).decode


class IntegrationClient:
    """Implements ``AccountsProvider``; one instance per process, closed on shutdown."""

    def __init__(
        self,
        base_url: str,
        secret_provider: SecretProvider,
        cache: Cache,
        *,
        cache_ttl_seconds: float = 30.0,
        lease_minutes: int = 30,
        timeout_seconds: float = 10.0,
        retries: int = 3,
        backoff_seconds: float = 0.2,
        clock: Clock | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api = base_url.rstrip("/") + "/api/v1"
        self._secret = secret_provider
        self._cache = cache
        self._cache_ttl = cache_ttl_seconds
        self._lease_minutes = lease_minutes
        self._retries = retries
        self._backoff = backoff_seconds
        self._clock = clock or RealClock()
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def list_accounts(self, user_id: str) -> list[AccountData]:
        key = _cache_key(user_id)
        cached = await get_struct(self._cache, key, list[AccountData])
        if cached is not None:
            return cached
        response = await self._call("GET", "/telegram/invites/accounts", user_id, retries=self._retries)
        try:
            decoded = _decode_accounts(response.content)
        except msgspec.DecodeError as exc:
            raise self._unexpected("accounts", exc) from None
        listed = decoded.accounts if isinstance(decoded, _AccountsEnvelope) else decoded
        accounts = [_account(user_id, a) for a in listed if _usable(a)]
        await set_struct(self._cache, key, accounts, self._cache_ttl)
        return accounts

    async def invalidate(self, user_id: str) -> None:
        """Forget the tenant's cached account list (an account was blocked, say)."""
        await self._cache.delete(_cache_key(user_id))

    async def lease(self, account_id: str, user_id: str, purpose: LeasePurpose) -> AccountData | None:
        """The account with its session, leased to us; None when the platform has it busy or resting."""
        response = await self._call(
            "POST",
            "/account-manager/allocate",
            user_id,
            retries=0,
            json={
                "user_id": _tenant(user_id),
                "purpose": purpose.value,
                "service_name": SERVICE_NAME,
                "preferred_account_id": account_id,
                "timeout_minutes": self._lease_minutes,
            },
            accept_status=frozenset({404}),
        )
        if response.status_code == 404:
            return None
        try:
            allocated = _decode_allocated(response.content)
        except msgspec.DecodeError as exc:
            raise self._unexpected("allocation", exc) from None
        allocation = allocated.allocation
        if not allocated.success or allocation is None:
            return None
        if allocation.account_id != account_id:
            # Another account than the one asked for: not ours to drive. Give it back.
            await self.release(allocation.account_id, user_id, UsageStats())
            return None
        return AccountData(
            id=account_id,
            user_id=user_id,
            label=mask_phone(allocation.phone) if allocation.phone else "",
            session=_session(allocation.session_data),
            daily_limit=_lowest(
                allocation.limits.daily_invite_limit if allocation.limits else None,
                allocation.limits.daily_message_limit if allocation.limits else None,
            ),
            lease_seconds=self._lease_seconds(allocation),
        )

    async def renew(self, account_id: str, user_id: str, purpose: LeasePurpose) -> AccountData | None:
        """Extend our lease on ``account_id``; None when it could not be kept."""
        account = await self.lease(account_id, user_id, purpose)
        if account is not None:
            return account
        await self.release(account_id, user_id, UsageStats())
        return await self.lease(account_id, user_id, purpose)

    async def release(self, account_id: str, user_id: str, usage: UsageStats) -> None:
        response = await self._call(
            "POST",
            f"/account-manager/release/{account_id}",
            user_id,
            retries=self._retries,
            json={"service_name": SERVICE_NAME, "usage_stats": msgspec.to_builtins(usage)},
            accept_status=frozenset({400, 404}),
        )
        if not response.is_success:
            # The platform had no lease of ours on it (expired, or never taken).
            log.info("release refused", service=SERVICE, account_id=account_id, status=response.status_code)

    async def report(self, account_id: str, user_id: str, event: AccountEvent, message: str) -> None:
        try:
            await self._call(
                "POST",
                f"/account-manager/handle-error/{account_id}",
                user_id,
                retries=self._retries,
                json={
                    "error_type": event.value,
                    "error_message": _flood_wait_message(message)
                    if event is AccountEvent.FLOOD_WAIT
                    else message,
                    "context": {"service": SERVICE_NAME, "user_id": _tenant(user_id)},
                },
            )
        finally:
            if event in ACCOUNT_ENDING:
                await self.invalidate(user_id)

    async def _call(
        self,
        method: str,
        path: str,
        user_id: str,
        *,
        retries: int,
        json: object = None,
        accept_status: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        token = integration_token(await self._secret(), self._clock.now())
        return await request(
            self._client,
            SERVICE,
            method,
            self._api + path,
            retries=retries,
            backoff_seconds=self._backoff,
            headers={"Authorization": f"Bearer {token}", "X-User-Id": user_id},
            json=json,
            accept_status=accept_status,
        )

    def _lease_seconds(self, allocation: _Allocation) -> float:
        if allocation.allocated_at and allocation.expires_at:
            seconds = (_utc(allocation.expires_at) - _utc(allocation.allocated_at)).total_seconds()
            if seconds > 0:
                return seconds
        return self._lease_minutes * 60.0

    @staticmethod
    def _unexpected(what: str, exc: Exception) -> UpstreamError:
        return UpstreamError(SERVICE, f"answered an unexpected {what} body ({exc})")


def integration_from_settings(
    settings: Settings, secret_provider: SecretProvider, cache: Cache
) -> IntegrationClient | None:
    """The Integration Service client, or None when INTEGRATION_SERVICE_URL is unset (sandbox)."""
    if not settings.integration_service_url:
        return None
    return IntegrationClient(
        settings.integration_service_url,
        secret_provider,
        cache,
        cache_ttl_seconds=settings.accounts_cache_ttl_seconds,
        lease_minutes=settings.integration_lease_minutes,
        timeout_seconds=settings.http_timeout_seconds,
        retries=settings.http_retries,
    )


# --- mapping ------------------------------------------------------------------------------


def _cache_key(user_id: str) -> str:
    return f"accounts:{user_id}"


def _tenant(user_id: str) -> int | str:
    # the platform's ids are integers today; keep anything else as given
    return int(user_id) if user_id.isdigit() else user_id


def _usable(account: _PlatformAccount) -> bool:
    return account.is_active and account.status not in UNUSABLE_STATUSES


def _account(user_id: str, account: _PlatformAccount) -> AccountData:
    limits = account.daily_limits
    return AccountData(
        id=account.id,
        user_id=user_id,
        label=_label(account),
        daily_limit=_lowest(limits.invites, limits.messages) if limits else None,
    )


def _label(account: _PlatformAccount) -> str:
    if account.username:
        return f"@{account.username}"
    name = " ".join(part for part in (account.first_name, account.last_name) if part)
    if name:
        return name
    return mask_phone(account.phone) if account.phone else account.id


def mask_phone(phone: str) -> str:
    """``+79123456789`` → ``+7******789``: enough to tell accounts apart, not to dial."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 5:
        return "*" * len(digits)
    plus = "+" if phone.lstrip().startswith("+") else ""
    return f"{plus}{digits[0]}{'*' * (len(digits) - 4)}{digits[-3:]}"


def _lowest(*limits: int | None) -> int | None:
    known = [limit for limit in limits if limit is not None and limit >= 0]
    return min(known) if known else None


def _session(session_data: dict[str, object] | str | None) -> str:
    if session_data is None:
        return ""
    if isinstance(session_data, str):
        return session_data
    encrypted = session_data.get("encrypted_session")
    if isinstance(encrypted, str):
        return encrypted
    return msgspec.json.encode(session_data).decode()


def _utc(iso: str) -> datetime:
    moment = datetime.fromisoformat(iso)
    # the platform writes datetime.utcnow().isoformat(): naive, meaning UTC
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_FLOOD_SECONDS = (
    re.compile(r"FLOOD_WAIT_(\d+)", re.IGNORECASE),
    re.compile(r"wait of (\d+(?:\.\d+)?) seconds", re.IGNORECASE),
    re.compile(r"(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds)\b", re.IGNORECASE),
    re.compile(r"(\d+(?:\.\d+)?)"),
)
_FIRST_NUMBER = re.compile(r"\d+")


def _flood_wait_message(message: str) -> str:
    """A message whose first number is the wait in seconds: the platform reads that number."""
    for pattern in _FLOOD_SECONDS:
        match = pattern.search(message)
        if match:
            seconds = math.ceil(float(match[1]))
            break
    else:
        return message  # no seconds at all: the platform assumes its default
    first = _FIRST_NUMBER.search(message)
    if first and int(first[0]) == seconds:
        return message
    return f"FloodWait {seconds}s ({message})"
