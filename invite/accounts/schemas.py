"""The accounts API's response bodies. Sessions and phone numbers never appear in them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from invite.engine.health import Health

AccountStatus = Literal["active", "cooldown", "blocked", "disabled"]


class AccountView(msgspec.Struct, kw_only=True):
    id: str
    label: str  # @username, a name, or a masked phone (+7*******789)
    # listed by the accounts provider right now; False: known to the engine only (removed,
    # or blocked/disabled on the platform)
    available: bool
    status: AccountStatus  # the engine's view; "active" for an account it has not used yet
    # healthy, pacing, cooling_down (FloodWait, until cooldown_until), spam_flagged (PeerFlood,
    # until cooldown_until), frozen, dead, warming_up (day warmup_day of warmup_days)
    health: Health = Health.HEALTHY
    warmup_day: int | None = None
    warmup_days: int | None = None
    status_reason: str | None = None  # why it is in cooldown or blocked, in words the customer sees
    cooldown_until: datetime | None = None
    used_today: int = 0  # actions in the current 24 h window
    daily_limit: int  # the lowest of our default, the provider's, the engine's and the warm-up's limit
    window_resets_at: datetime | None = None  # when used_today goes back to 0
    pace_multiplier: float = 1.0  # > 1: the engine slowed this account down after FloodWaits
    last_action_at: datetime | None = None


class AccountList(msgspec.Struct):
    accounts: list[AccountView]
