"""Send windows: the hours of the day (in the tenant's time zone) when a task may act."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from invite.tasks.task_settings import SendWindow

DAY = timedelta(days=1)


def is_open(at: datetime, window: SendWindow) -> bool:
    start, end, zone = window.bounds()
    local = at.astimezone(zone).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end  # the window wraps midnight


def next_open(at: datetime, window: SendWindow) -> datetime:
    """``at`` when the window is open then, else the moment it next opens."""
    if is_open(at, window):
        return at
    start, _, zone = window.bounds()
    local = at.astimezone(zone)
    for days_ahead in (0, 1, 2):  # two days cover every closed stretch, DST shifts included
        candidate = datetime.combine(local.date() + timedelta(days=days_ahead), start, tzinfo=zone)
        if candidate > local:
            return candidate.astimezone(UTC)
    raise AssertionError("a daily window opens within two days")


def open_seconds(window: SendWindow | None) -> float:
    """How long the window is open each day (a whole day without a window)."""
    if window is None:
        return DAY.total_seconds()
    start, end, _ = window.bounds()
    minutes = (end.hour * 60 + end.minute - start.hour * 60 - start.minute) % (24 * 60)
    return minutes * 60.0
