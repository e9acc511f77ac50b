"""How fast a campaign can go within the platform's limits, and when it will end.

The brief's ``calculate_optimal_speed``, generalised: the engine passes the daily quota an
account really has (a task may lower it; a link in the message lowers it to the link quota)
and how many accounts can act now (those on cooldown, dead or without the right are left
out), so the rate and ETA in a task's status follow the accounts as they cool down.

The engine paces an account evenly over the day (its quota spread over 24 h, never closer
than the minimum pause), so an account's rate is ``3600 / pacing interval`` actions an hour.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from invite.platforms.base import RateLimits

DAY_SECONDS = 86_400.0

# The brief's Telegram figures, for callers without configured limits (a quick estimate).
# The engine passes the configured ones (settings, or the strategy's get_rate_limits()).
TELEGRAM_DEFAULTS = RateLimits(daily_quota=40, daily_quota_with_link=10, min_pause_seconds=15.0)
_DEFAULT_LIMITS = {"telegram": TELEGRAM_DEFAULTS}


class RateConfig(msgspec.Struct, frozen=True):
    messages_per_hour: float  # actions an hour across the accounts available now
    pause_between_messages: float  # seconds between two actions of one account (the pacing)
    accounts_rotation: bool  # the work rotates over more than one account
    estimated_hours: float | None  # None: no account can act now, so no estimate


def effective_daily_quota(
    limits: RateLimits, message_has_links: bool, task_daily_limit: int | None = None
) -> int:
    """An account's actions a day for a task: the link quota when the text has a link, lowered by the task."""
    quota = limits.daily_quota_with_link if message_has_links else limits.daily_quota
    return quota if task_daily_limit is None else min(quota, task_daily_limit)


def pacing_interval(daily_quota: int, min_pause_seconds: float) -> float:
    """Seconds between two actions of one account when its quota is spread over the day."""
    if daily_quota <= 0:
        raise ValueError("daily_quota must be positive")
    return max(min_pause_seconds, DAY_SECONDS / daily_quota)


def calculate_optimal_speed(
    platform: str,
    accounts_count: int,
    target_users_count: int,
    message_has_links: bool,
    *,
    limits: RateLimits | None = None,
    daily_quota: int | None = None,
    accounts_available: int | None = None,
) -> RateConfig:
    """Rate and duration of a campaign of ``target_users_count`` people.

    ``limits`` default to the platform's published figures; ``daily_quota`` is the effective
    per-account quota when the caller knows it (else derived from ``limits`` and the link
    rule); ``accounts_available`` is how many of the ``accounts_count`` can act now (default:
    all of them).
    """
    if accounts_count < 0 or target_users_count < 0:
        raise ValueError("accounts_count and target_users_count must not be negative")
    if limits is None:
        try:
            limits = _DEFAULT_LIMITS[platform]
        except KeyError:
            raise ValueError(f"no default limits for platform {platform!r}: pass limits") from None
    available = accounts_count if accounts_available is None else accounts_available
    if not 0 <= available <= accounts_count:
        raise ValueError("accounts_available must be between 0 and accounts_count")
    quota = daily_quota if daily_quota is not None else effective_daily_quota(limits, message_has_links)
    pause = pacing_interval(quota, limits.min_pause_seconds)
    per_hour = available * 3600.0 / pause
    return RateConfig(
        messages_per_hour=per_hour,
        pause_between_messages=pause,
        accounts_rotation=available > 1,
        estimated_hours=_hours(target_users_count, per_hour),
    )


def eta(remaining: int, rate_per_hour: float, now: datetime) -> datetime | None:
    """When ``remaining`` actions will be done at ``rate_per_hour``; None when nothing moves."""
    hours = _hours(remaining, rate_per_hour)
    return None if hours is None else now + timedelta(hours=hours)


def _hours(remaining: int, per_hour: float) -> float | None:
    if remaining <= 0:
        return 0.0
    if per_hour <= 0:
        return None
    return remaining / per_hour
