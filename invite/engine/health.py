"""An account's health, as the customer sees it in ``GET /accounts`` and the fleet gauges
(``invite_accounts_by_health``) report it: one state, read from the account's row at a moment.

In order, the first that holds:

* ``dead``: blocked for good (banned, deactivated, its session revoked) or disabled;
* ``frozen``: blocked because Telegram froze it (read-only until its owner appeals; the error
  ids of a frozen account begin ``FROZEN_``, see platforms/telegram/errors.py);
* ``spam_flagged``: resting after a PeerFlood, ``until`` when;
* ``cooling_down``: resting after a FloodWait, ``until`` when;
* ``warming_up``: on ``day`` N of M of its warm-up (warmup.py), held below the full quota;
* ``pacing``: slowed down -- its pause stretched by the AIMD multiplier after FloodWaits, or
  today's quota used up until its 24 h window resets;
* ``healthy``: none of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from invite.engine.statuses import AccountStatus
from invite.engine.warmup import warmup_day
from invite.kernel.settings import Settings

# the reasons the group commit writes (outcomes.py), read back here
SPAM_FLAG_REASON = "spam flag (PeerFlood)"
DEAD_REASON = "account dead"
FROZEN_ERROR_PREFIX = "FROZEN_"


class Health(StrEnum):
    HEALTHY = "healthy"
    PACING = "pacing"
    COOLING_DOWN = "cooling_down"
    SPAM_FLAGGED = "spam_flagged"
    FROZEN = "frozen"
    DEAD = "dead"
    WARMING_UP = "warming_up"


@dataclass(frozen=True, slots=True)
class HealthState:
    health: Health
    until: datetime | None = None  # cooling down or spam-flagged: when the rest is over
    day: int | None = None  # warming up: day N ...
    days: int | None = None  # ... of M


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """What the account's row says (invite_accounts), with today's usage against its cap."""

    status: str
    reason: str | None
    cooldown_until: datetime | None
    pace_multiplier: float
    warmup_since: datetime | None
    used_today: int
    cap: int  # its daily quota in force (warm-up included)


def account_health(facts: AccountFacts, now: datetime, settings: Settings) -> HealthState:
    if facts.status in (AccountStatus.BLOCKED, AccountStatus.DISABLED):
        frozen = facts.reason is not None and FROZEN_ERROR_PREFIX in facts.reason
        return HealthState(Health.FROZEN if frozen else Health.DEAD)
    if facts.cooldown_until is not None and facts.cooldown_until > now:
        spam = facts.reason is not None and facts.reason.startswith(SPAM_FLAG_REASON)
        return HealthState(Health.SPAM_FLAGGED if spam else Health.COOLING_DOWN, until=facts.cooldown_until)
    day = warmup_day(facts.warmup_since, now, settings)
    if day is not None:
        return HealthState(Health.WARMING_UP, day=day, days=settings.warmup_days)
    if facts.pace_multiplier > 1.0 or facts.used_today >= facts.cap:
        return HealthState(Health.PACING)
    return HealthState(Health.HEALTHY)
