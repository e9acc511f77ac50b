"""One account's token bucket: when may it act next, and what an action costs it.

The rules, all from the injected clock's time:

* **daily quota**: at most ``cap`` actions in a 24 h window; the window opens with the first
  action after the previous one closed (the same rule the claim statement enforces in SQL);
* **minimum pause** between two actions, times the AIMD multiplier (FloodWait doubles it,
  each success takes a step off, never below 1) — between reservations, and again between
  the sends themselves (``send_wait``);
* **pacing**: the quota spread over the time the task may act each day (its send window, or
  24 h), so a day's quota is never spent in one burst — the gap between two actions is the
  larger of the pause and the pacing interval;
* **cooldown**: after a FloodWait or a spam flag, nothing until it is over;
* **send window**: nothing while the task's window is closed.

The state mirrors the account's row in ``invite_accounts``, loaded when the account is
leased; the claim statement re-checks quota, pause and cooldown in SQL as the safety net
across replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from invite.engine.windows import DAY, is_open, next_open, open_seconds
from invite.tasks.task_settings import SendWindow


@dataclass(frozen=True, slots=True)
class Limits:
    """What one task allows one account."""

    cap: int  # actions per 24 h window
    min_pause: float  # seconds between two actions, before the AIMD multiplier
    pacing: float  # seconds: the task's daily open time ÷ cap
    send_window: SendWindow | None = None

    @classmethod
    def of(cls, cap: int, min_pause: float, send_window: SendWindow | None = None) -> Limits:
        return cls(cap, min_pause, open_seconds(send_window) / cap, send_window)

    def pause_holds(self, multiplier: float = 1.0) -> bool:
        """True when the pause, times the AIMD ``multiplier``, sets the gap (the pacing does otherwise)."""
        return self.min_pause * multiplier > self.pacing

    def gap(self, multiplier: float = 1.0) -> timedelta:
        """The pacing rule: the time between two actions of one account, the larger of its pause
        times the AIMD ``multiplier`` and the pacing interval."""
        return _seconds(self.min_pause * multiplier if self.pause_holds(multiplier) else self.pacing)

    def per_day(self) -> float:
        """Actions a day of an account at rest (multiplier 1) by that rule: its quota, or fewer
        when the pause leaves less room in the open time than the quota asks."""
        return min(float(self.cap), open_seconds(self.send_window) / self.gap().total_seconds())


@lru_cache(maxsize=4096)
def _seconds(seconds: float) -> timedelta:
    """A gap as a timedelta: a handful of values, asked for on every claim and by every
    forecast for each account (a timedelta costs more to build than to look up)."""
    return timedelta(seconds=seconds)


@dataclass(slots=True)
class Bucket:
    window_start: datetime | None = None
    count: int = 0
    last_action_at: datetime | None = None
    cooldown_until: datetime | None = None
    multiplier: float = 1.0
    answered_at: datetime | None = None  # when the platform answered the last action (in memory)

    def used(self, at: datetime) -> int:
        """Actions counted against the quota at ``at`` (0 once the 24 h window has closed)."""
        if self.window_start is None or at >= self.window_start + DAY:
            return 0
        return self.count

    def gap(self, limits: Limits) -> timedelta:
        return limits.gap(self.multiplier)

    def next_allowed(self, now: datetime, limits: Limits) -> datetime:
        """The earliest moment from ``now`` on when this account may act for a task with ``limits``."""
        at = now
        if self.cooldown_until is not None and self.cooldown_until > at:
            at = self.cooldown_until
        if self.last_action_at is not None:
            at = max(at, self.last_action_at + self.gap(limits))
        if self.used(at) >= limits.cap and self.window_start is not None:
            at = self.window_start + DAY
        if limits.send_window is not None:
            at = next_open(at, limits.send_window)
        return at

    def shut(self, now: datetime, limits: Limits) -> bool:
        """True when the task is out of reach for a while: its window is closed or its quota spent."""
        if limits.send_window is not None and not is_open(now, limits.send_window):
            return True
        return self.used(now) >= limits.cap

    def reserve(self, at: datetime) -> None:
        """Count one action at ``at`` (the claim made the same reservation in the database)."""
        if self.used(at) == 0:
            self.window_start, self.count = at, 0
        self.count += 1
        self.last_action_at = at

    def acted_by(self, at: datetime) -> None:
        """The last action may have happened as late as ``at`` (an owner that died cannot say)."""
        if self.last_action_at is None or at > self.last_action_at:
            self.last_action_at = at

    def answered(self, at: datetime) -> None:
        """The platform answered the last action at ``at``."""
        self.answered_at = at

    def send_wait(self, now: datetime, limits: Limits) -> float:
        """Seconds to hold a claimed target so that the gap is kept between the sends themselves:
        claims are spaced from reservation to reservation, and a slow claim or a slow answer
        could otherwise bring two sends closer than the pause."""
        if self.answered_at is None:
            return 0.0
        return max(0.0, (self.answered_at + self.gap(limits) - now).total_seconds())

    def cool_down(self, until: datetime) -> None:
        if self.cooldown_until is None or until > self.cooldown_until:
            self.cooldown_until = until

    def back_off(self, ceiling: float) -> None:
        self.multiplier = min(self.multiplier * 2.0, ceiling)

    def relax(self, step: float) -> None:
        self.multiplier = max(1.0, self.multiplier - step)

    def cooling(self, now: datetime) -> bool:
        return self.cooldown_until is not None and self.cooldown_until > now
