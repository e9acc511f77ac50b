"""The tenant's accounts (from the accounts provider) merged with the engine's live state."""

from __future__ import annotations

import re
from datetime import datetime

import asyncpg
import msgspec

from invite.accounts.schemas import AccountList, AccountStatus, AccountView
from invite.engine.health import AccountFacts, account_health
from invite.engine.warmup import warmup_cap, warmup_day
from invite.kernel.clock import Clock
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql
from invite.platforms.base import AccountData, AccountsProvider
from invite.platforms.phones import mask_phone

# A phone number inside free text (a label), not digits inside a username like @anna_1234567.
_PHONE_IN_TEXT = re.compile(r"(?<![\w@])\+?\d[\d\s().-]{6,}\d")


class LiveState(msgspec.Struct, frozen=True):
    """accounts.live_state: what the engine keeps of one account."""

    id: str
    label: str | None
    status: AccountStatus  # the column's CHECK
    status_reason: str | None
    cooldown_until: datetime | None
    daily_limit: int | None
    pace_multiplier: float
    last_action_at: datetime | None
    used_today: int
    window_resets_at: datetime | None
    warmup_since: datetime | None


def mask_phones(text: str) -> str:
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m[0]), text)


class AccountsService:
    def __init__(
        self, pool: asyncpg.Pool, provider: AccountsProvider, settings: Settings, clock: Clock, user_id: str
    ) -> None:
        self._pool = pool
        self._provider = provider
        self._settings = settings
        self._clock = clock
        self._user_id = user_id

    async def list_accounts(self) -> AccountList:
        """The provider's accounts first, in its order; then those only the engine still knows."""
        listed = [a for a in await self._provider.list_accounts(self._user_id) if a.user_id == self._user_id]
        now = self._clock.now()
        with self._clock.busy():
            rows = await Sql(self._settings.sql_dir).fetch(
                self._pool, "accounts.live_state", LiveState, user_id=self._user_id, now=now
            )
        state = {row.id: row for row in rows}
        views = [self._view(account, state.pop(account.id, None), now) for account in listed]
        views += [self._view(None, row, now) for row in state.values()]
        return AccountList(views)

    def _view(self, account: AccountData | None, row: LiveState | None, now: datetime) -> AccountView:
        """One account: as the provider lists it (``account``), as the engine knows it (``row``), or both."""
        limits = [self._settings.daily_quota]
        if account is not None and account.daily_limit is not None:
            limits.append(account.daily_limit)
        if row is not None and row.daily_limit is not None:
            limits.append(row.daily_limit)
        label = account.label if account is not None and account.label else (row and row.label) or ""
        known = account or row
        assert known is not None  # one of them, always
        view = AccountView(
            id=known.id,
            label=mask_phones(label),
            available=account is not None,
            status="active",
            daily_limit=min(limits),
        )
        # an account the engine has not used yet starts its clean history when it first does
        since = now if row is None else row.warmup_since
        view.daily_limit = warmup_cap(
            warmup_day(since, now, self._settings), view.daily_limit, self._settings
        )
        if row is not None:
            view.status = row.status
            view.status_reason = row.status_reason
            view.cooldown_until = row.cooldown_until
            view.used_today = row.used_today
            view.window_resets_at = row.window_resets_at
            view.pace_multiplier = row.pace_multiplier
            view.last_action_at = row.last_action_at
        if view.status == "cooldown" and (view.cooldown_until is None or view.cooldown_until <= now):
            # over: the engine takes it back on its next pass, the customer sees it as active now
            view.status, view.status_reason, view.cooldown_until = "active", None, None
        facts = AccountFacts(
            view.status,
            view.status_reason,
            view.cooldown_until,
            view.pace_multiplier,
            since,
            view.used_today,
            view.daily_limit,
        )
        state = account_health(facts, now, self._settings)
        view.health, view.warmup_day, view.warmup_days = state.health, state.day, state.days
        return view
