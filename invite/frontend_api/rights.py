"""``check-admin-rights``: which of the tenant's accounts may invite into a group, asked for real.

Each free account (listed by the platform, active, not held by an engine replica) is leased
from the accounts provider, its client started and its right in the group checked through the
adapter, exactly as the engine does before a task's first invite (``engine.actions.check_right``),
then closed and released with no usage. A few at a time: each is a round trip to Telegram.
"""

from __future__ import annotations

import asyncio
import re

import asyncpg
import msgspec
import structlog

from invite.accounts.schemas import AccountView
from invite.accounts.service import AccountsService
from invite.engine.actions import check_right
from invite.frontend_api.schemas import AdminCheck, CheckedAccount
from invite.frontend_api.service import page_account
from invite.kernel.clock import Clock
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql
from invite.platforms.base import (
    AccountsProvider,
    LeasePurpose,
    Outcome,
    OutcomeKind,
    StrategyFactory,
    UsageStats,
)

log = structlog.get_logger(__name__)

CHECKS_AT_ONCE = 4
_LINK = re.compile(r"^(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me)/(?:s/)?", re.IGNORECASE)
_WHY = {
    OutcomeKind.NO_ADMIN_RIGHT: "no right to invite there: make the account an admin allowed to add members",
    OutcomeKind.CHAT_UNAVAILABLE: "the group cannot be reached",
    OutcomeKind.ACCOUNT_DEAD: "the account is dead",
    OutcomeKind.FLOOD_WAIT: "the account is resting after a FloodWait",
    OutcomeKind.PEER_FLOOD: "Telegram flagged the account for spam",
    OutcomeKind.NOT_FOUND: "no such group",
    OutcomeKind.TRANSIENT: "Telegram did not answer; try again",
}


def group_name(link: str) -> str:
    """``https://t.me/Group``, ``t.me/Group`` or ``@Group`` → ``Group`` (a numeric id stays)."""
    return _LINK.sub("", link.strip()).lstrip("@").split("?", 1)[0].rstrip("/")


class _Held(msgspec.Struct, frozen=True):
    id: str


class RightsCheck:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        clock: Clock,
        user_id: str,
        provider: AccountsProvider,
        strategies: StrategyFactory,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._clock = clock
        self._user_id = user_id
        self._provider = provider
        self._strategies = strategies
        self._accounts = AccountsService(pool, provider, settings, clock, user_id)

    async def check(self, group_link: str) -> AdminCheck:
        group = group_link.strip()
        views = (await self._accounts.list_accounts()).accounts
        held = {
            row.id
            for row in await Sql(self._settings.sql_dir).fetch(
                self._pool, "accounts.held", _Held, user_id=self._user_id, now=self._clock.now()
            )
        }
        gate = asyncio.Semaphore(CHECKS_AT_ONCE)

        async def verdict(view: AccountView) -> str | None:
            if (why := _not_free(view, held)) is not None:
                return why
            async with gate:
                return await self._ask(view.id, group)

        reasons = await asyncio.gather(*(verdict(view) for view in views))
        checked = [
            CheckedAccount(**msgspec.structs.asdict(page_account(view)), reason=reason)
            for view, reason in zip(views, reasons, strict=True)
        ]
        ready = [a for a in checked if a.reason is None]
        return AdminCheck(
            group_link=group,
            group_name=group_name(group),
            ready_accounts=ready,
            unavailable_accounts=[a for a in checked if a.reason is not None],
            can_proceed=bool(ready),
            estimated_capacity=sum(max(0, a.daily_invite_limit - a.daily_invites_used) for a in ready),
        )

    async def _ask(self, account_id: str, group: str) -> str | None:
        """Why this account may not invite into ``group`` (None: it may)."""
        try:
            data = await self._provider.lease(account_id, self._user_id, LeasePurpose.INVITE_CAMPAIGN)
        except Exception as exc:
            return f"the platform would not lease it ({type(exc).__name__})"
        if data is None:
            return "busy elsewhere on the platform"
        try:
            strategy = self._strategies.for_account(data)
            try:
                ready = await strategy.initialize_client(data)
                if ready.kind is not OutcomeKind.SUCCESS:
                    return _reason(ready)
                answer = await check_right(strategy, group)
                return None if answer.kind is OutcomeKind.SUCCESS else _reason(answer)
            finally:
                await strategy.close()
        except Exception as exc:
            return f"its client did not start ({type(exc).__name__})"
        finally:
            try:
                await self._provider.release(account_id, self._user_id, UsageStats())
            except Exception as exc:  # its lease runs out by itself on the platform
                log.warning("release after the rights check failed", account_id=account_id, error=repr(exc))


def _not_free(view: AccountView, held: set[str]) -> str | None:
    if not view.available:
        return "not listed by the platform now"
    if view.status != "active":
        return view.status_reason or view.status
    if view.id in held:
        return "in use by a running campaign right now"
    return None


def _reason(outcome: Outcome) -> str:
    why = _WHY.get(outcome.kind, outcome.kind.value)
    return f"{why} ({outcome.detail})" if outcome.detail else why
