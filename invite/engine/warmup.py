"""The warm-up schedule: a new account does not start at the full quota.

An account's clean history starts when the service first sees it (``invite_accounts.
warmup_since``, set by activation) and starts again when Telegram spam-flags it (PeerFlood:
when its rest is over, so it comes back on day 1) or it dies or is frozen (a recovered account
warms up anew): the group commit writes it with the answer's other effects. On day 1 of its clean history it may act ``WARMUP_START_PER_DAY`` times a day;
the cap rises by equal steps each day, and from day ``WARMUP_DAYS + 1`` on the warm-up no
longer limits it. The cap is the lowest of this and every other limit (``RunningTask.limits``)
and is passed to the claim with them, so the claim statement holds it on every replica.

Pure functions of (since, now, settings): every time comes from the injected clock.
"""

from __future__ import annotations

from datetime import datetime

from invite.engine.windows import DAY
from invite.kernel.settings import Settings


def warmup_day(since: datetime | None, now: datetime, settings: Settings) -> int | None:
    """The day of warm-up the account is in at ``now`` (1: the first 24 h of its clean history),
    or None once it is warmed up, when its history is not known (``since`` None: it is not
    held back) or when the warm-up is off (``WARMUP_DAYS=0``)."""
    if since is None or settings.warmup_days == 0:
        return None
    day = max(0, (now - since) // DAY) + 1
    return day if day <= settings.warmup_days else None


def warmup_cap(day: int | None, full: int, settings: Settings) -> int:
    """The daily cap on ``day`` of warm-up, for an account whose quota is otherwise ``full``:
    the start on day 1, then equal steps up to ``full`` (reached on day WARMUP_DAYS + 1);
    ``full`` itself once warmed up (``day`` None) or when ``full`` is below the start."""
    if day is None:
        return full
    start = min(settings.warmup_start_per_day, full)
    return start + (full - start) * (day - 1) // settings.warmup_days
