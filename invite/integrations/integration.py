"""The platform's Integration Service as our ``AccountsProvider``: accounts, leases, error reports.

Base ``{INTEGRATION_SERVICE_URL}/api/v1``; every call carries the service JWT and
``X-User-Id: <tenant>`` (PLATFORM-CONTRACTS.md), and answers the way PLATFORM-AS-RUN.md says
the running service does:

- ``list_accounts``: ``GET /account-manager/accounts/summary?user_id=&include_unavailable=true``,
  which the platform's own invite service reads and which keeps answering once an account
  has a FloodWait timestamp (the invites accounts list then answers 500, for good: nothing
  on the platform clears the column). The list ``GET /telegram/invites/accounts`` is the
  fallback when the summary is not there (404) and gives the names. Cached per tenant for a
  short TTL. Accounts the platform ``disabled`` (or not ``is_active``) are left out;
  resting ones (``flood_wait``, ``blocked`` with a time) stay listed and are not driven
  until the rest is over (see ``lease``). The list's ``daily_limits`` are hard-coded on the
  platform and ignored: the real limits come with each allocation.
- ``lease``: ``POST /account-manager/allocate`` for exactly that account (and, for an
  invite campaign, ``target_channel_id``: the channel's normalised key), for
  ``timeout_minutes``. The platform hands a preferred account out whatever its status, so
  the account's status is then read from the summary: an account the platform rests is
  released at once and None returned. ``session`` is the allocation's
  ``session_data.encrypted_session`` unchanged (base64 of a Telethon StringSession today);
  a ``session_data`` without that key is passed on as its JSON. ``daily_limit`` is the lowest
  of the allocation's invite and message limits, ``channel_limit`` its per-channel invite
  limit (the platform does not check it on a preferred allocation), ``contacts_limit`` its
  contacts_daily_limit (phone numbers imported a day); ``lease_seconds`` is ``expires_at -
  allocated_at`` (both the platform's clock), else the minutes asked for. 404: none free →
  None. A call that fails on a keep-alive connection the platform dropped is sent once more
  on a fresh one (invite.kernel.http); otherwise not retried.
- ``renew``: the same allocate again; the platform refreshes the lock of its holder. None
  when the platform no longer hands the account out, or rests it.
- ``report`` sends an account-level event through ``handle-error`` when it happens;
  ``release`` then never repeats it (the platform handles an error in a release as a new one,
  and a FloodWait without digits there overwrites the real rest with its 300 s fallback): an
  event reaches the release only if its report failed. ``channels_used`` go as normalised
  keys (the platform stores them as given). Both are retried (repeats are harmless).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import msgspec
import structlog

from invite.integrations.cache import Cache, get_struct, set_struct
from invite.kernel.clock import Clock, RealClock
from invite.kernel.http import SERVICE_NAME, UpstreamError, integration_token, request
from invite.kernel.settings import Settings
from invite.platforms.base import AccountData, AccountEvent, LeasePurpose, UsageStats
from invite.platforms.phones import mask_phone

SERVICE = "integration-service"
ACCOUNT_ENDING = frozenset(
    {
        AccountEvent.PEER_FLOOD,
        AccountEvent.AUTH_KEY_ERROR,
        AccountEvent.USER_DEACTIVATED,
        AccountEvent.PHONE_NUMBER_BANNED,
    }
)
UNUSABLE_STATUSES = frozenset({"disabled"})

SecretProvider = Callable[[], Awaitable[str]]
log = structlog.get_logger(__name__)


SUMMARY_REUSE_SECONDS = 5.0  # a platform rest is seen within this of its start

# --- the platform's shapes (unknown fields ignored) ----------------------------------------


class _PlatformAccount(msgspec.Struct):
    id: str
    username: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    status: str = "active"
    is_active: bool = True


class _AccountsEnvelope(msgspec.Struct):
    accounts: list[_PlatformAccount] = msgspec.field(default_factory=list)


class _SummaryAccount(msgspec.Struct):
    account_id: str
    phone: str | None = None
    status: str = "active"
    flood_wait_until: str | None = None
    blocked_until: str | None = None


class _Summary(msgspec.Struct):
    accounts: list[_SummaryAccount] = msgspec.field(default_factory=list)


class _Limits(msgspec.Struct):
    daily_invite_limit: int | None = None
    daily_message_limit: int | None = None
    per_channel_invite_limit: int | None = None
    contacts_daily_limit: int | None = None


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
_decode_summary = msgspec.json.Decoder(_Summary).decode
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
        # tenant → (when read, the summary): every lease and renewal checks its account in the
        # tenant's summary, so one heartbeat of N accounts would read the whole list N times
        self._summaries: dict[str, tuple[datetime, asyncio.Task[_Summary | None]]] = {}
        self._unreported: dict[str, tuple[AccountEvent, str]] = {}  # events whose report failed

    async def aclose(self) -> None:
        # a shared summary read outlives a caller cancelled at shutdown: stopped and its outcome
        # taken here, before the client it would send on is closed
        reads = [read for _, read in self._summaries.values()]
        self._summaries.clear()
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        await self._client.aclose()

    async def list_accounts(self, user_id: str) -> list[AccountData]:
        key = _cache_key(user_id)
        cached = await get_struct(self._cache, key, list[AccountData])
        if cached is not None:
            return cached
        summary = await self._summary(user_id)
        if summary is None:
            accounts = await self._listed(user_id)
        else:
            accounts = [
                AccountData(
                    id=a.account_id, user_id=user_id, label=mask_phone(a.phone) if a.phone else a.account_id
                )
                for a in summary.accounts
                if a.status not in UNUSABLE_STATUSES
            ]
        await set_struct(self._cache, key, accounts, self._cache_ttl)
        return accounts

    async def invalidate(self, user_id: str) -> None:
        """Forget the tenant's cached account list (an account was blocked, say)."""
        await self._cache.delete(_cache_key(user_id))

    async def lease(
        self, account_id: str, user_id: str, purpose: LeasePurpose, channel: str | None = None
    ) -> AccountData | None:
        """The account with its session, leased to us; None when the platform has it busy or resting."""
        body: dict[str, object] = {
            "user_id": _tenant(user_id),
            "purpose": purpose.value,
            "service_name": SERVICE_NAME,
            "preferred_account_id": account_id,
            "timeout_minutes": self._lease_minutes,
        }
        if channel and purpose is LeasePurpose.INVITE_CAMPAIGN:
            body["target_channel_id"] = channel_key(channel)
        # Not retried after an answer: the platform locks what it hands out. Only a request
        # lost on a connection it had dropped goes again (the platform never saw it).
        response = await self._call(
            "POST", "/account-manager/allocate", user_id, retries=0, json=body, accept_status=frozenset({404})
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
        # the platform's own clock says when, so no skew between its clock and ours matters
        now = _utc(allocation.allocated_at) if allocation.allocated_at else self._clock.now()
        resting = await self._resting(account_id, user_id, now)
        if resting is not None:
            # The platform hands a preferred account out whatever its status: not ours to drive now.
            log.info(
                "the platform rests the account: given back",
                service=SERVICE,
                account_id=account_id,
                status=resting,
            )
            await self.release(account_id, user_id, UsageStats())
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
            channel_limit=allocation.limits.per_channel_invite_limit if allocation.limits else None,
            contacts_limit=allocation.limits.contacts_daily_limit if allocation.limits else None,
            lease_seconds=self._lease_seconds(allocation),
        )

    async def renew(
        self, account_id: str, user_id: str, purpose: LeasePurpose, channel: str | None = None
    ) -> AccountData | None:
        """Extend our lease on ``account_id`` (the platform refreshes its holder's lock); None when
        it could not be kept, or the platform now rests the account (then it is released)."""
        return await self.lease(account_id, user_id, purpose, channel)

    async def release(self, account_id: str, user_id: str, usage: UsageStats) -> None:
        sent = msgspec.structs.replace(usage, channels_used=_keys(usage.channels_used))
        unreported = self._unreported.pop(account_id, None)
        if unreported is None:  # reported through handle-error already (or nothing happened)
            sent = msgspec.structs.replace(sent, success=True, error_type=None, error_message=None)
        else:
            event, message = unreported
            sent = msgspec.structs.replace(sent, success=False, error_type=event.value, error_message=message)
        response = await self._call(
            "POST",
            f"/account-manager/release/{account_id}",
            user_id,
            retries=self._retries,
            json={"service_name": SERVICE_NAME, "usage_stats": msgspec.to_builtins(sent)},
            accept_status=frozenset({400, 404}),
        )
        if not response.is_success:
            # The platform had no lease of ours on it (expired, or never taken).
            log.info("release refused", service=SERVICE, account_id=account_id, status=response.status_code)

    async def report(self, account_id: str, user_id: str, event: AccountEvent, message: str) -> None:
        sent = _flood_wait_message(message) if event is AccountEvent.FLOOD_WAIT else message
        self._summaries.pop(user_id, None)  # the platform is about to rest the account: read it anew
        try:
            await self._call(
                "POST",
                f"/account-manager/handle-error/{account_id}",
                user_id,
                retries=self._retries,
                json={
                    "error_type": event.value,
                    "error_message": sent,
                    "context": {"service": SERVICE_NAME, "user_id": _tenant(user_id)},
                },
            )
        except UpstreamError:
            self._unreported[account_id] = (event, sent)  # the release carries it instead
            raise
        else:
            self._unreported.pop(account_id, None)
        finally:
            if event in ACCOUNT_ENDING:
                await self.invalidate(user_id)

    async def _summary(self, user_id: str) -> _Summary | None:
        """The tenant's accounts as the account manager sees them; None when it has no summary."""
        response = await self._call(
            "GET",
            "/account-manager/accounts/summary",
            user_id,
            retries=self._retries,
            # every account of the tenant, resting ones too; 2000 is the most it answers (default 500)
            params={"user_id": user_id, "include_unavailable": "true", "limit": "2000"},
            accept_status=frozenset({404}),
        )
        if response.status_code == 404:
            return None
        try:
            return _decode_summary(response.content)
        except msgspec.DecodeError as exc:
            raise self._unexpected("accounts summary", exc) from None

    async def _listed(self, user_id: str) -> list[AccountData]:
        response = await self._call("GET", "/telegram/invites/accounts", user_id, retries=self._retries)
        try:
            decoded = _decode_accounts(response.content)
        except msgspec.DecodeError as exc:
            raise self._unexpected("accounts", exc) from None
        listed = decoded.accounts if isinstance(decoded, _AccountsEnvelope) else decoded
        return [AccountData(id=a.id, user_id=user_id, label=_label(a)) for a in listed if _usable(a)]

    async def _recent_summary(self, user_id: str, now: datetime) -> _Summary | None:
        """The tenant's summary read at most SUMMARY_REUSE_SECONDS ago (one read shared by the
        leases and renewals of that moment, also while it is in flight); a failed read is not kept."""
        self._summaries = {
            k: v for k, v in self._summaries.items() if (now - v[0]).total_seconds() < SUMMARY_REUSE_SECONDS
        }
        held = self._summaries.get(user_id)
        if held is None:
            held = self._summaries[user_id] = (now, asyncio.ensure_future(self._summary(user_id)))
        try:
            return await asyncio.shield(held[1])
        except BaseException:
            if self._summaries.get(user_id) is held and held[1].done():
                del self._summaries[user_id]
            raise

    async def _resting(self, account_id: str, user_id: str, now: datetime) -> str | None:
        """Why the platform rests the account at ``now``, or None.

        Disabled is for good. A FloodWait or a spam flag rests it until its time, whatever the
        status still says afterwards: the platform sets the status back only when it hands
        the account out without a preference, which we never ask for.
        """
        summary = await self._recent_summary(user_id, now)
        if summary is None:
            return None  # a platform without the summary refuses resting accounts itself
        for account in summary.accounts:
            if account.account_id != account_id:
                continue
            if account.status in UNUSABLE_STATUSES:
                return account.status
            for until in (account.flood_wait_until, account.blocked_until):
                if until and _utc(until) > now:
                    return f"{account.status} until {until}"
            return None
        return "not listed"

    async def _call(
        self,
        method: str,
        path: str,
        user_id: str,
        *,
        retries: int,
        json: object = None,
        params: dict[str, str] | None = None,
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
            params=params,
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


_CHANNEL_LINK = ("https://t.me/", "http://t.me/", "t.me/")


def channel_key(channel: str) -> str:
    """A channel as the platform keys its per-channel counters: a lowercase slug without the
    ``https://t.me/`` link or the ``@`` (``https://t.me/Interop_Grp``, ``@Interop_Grp`` →
    ``interop_grp``); a numeric chat id stays as it is. The same rule as the SQL function
    invite_channel_key (migration 0006)."""
    raw = channel.strip()
    if raw.startswith(_CHANNEL_LINK):
        raw = raw.rsplit("/", 1)[-1]
    return raw.removeprefix("@").lower()


def _keys(channels: list[str]) -> list[str]:
    return list(dict.fromkeys(channel_key(c) for c in channels))


def _label(account: _PlatformAccount) -> str:
    if account.username:
        return f"@{account.username}"
    name = " ".join(part for part in (account.first_name, account.last_name) if part)
    if name:
        return name
    return mask_phone(account.phone) if account.phone else account.id


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
