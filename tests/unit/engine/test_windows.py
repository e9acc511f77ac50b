"""Send windows in the tenant's time zone, wrapping midnight and crossing DST."""

from __future__ import annotations

from datetime import UTC, datetime

from invite.engine.windows import is_open, next_open, open_seconds
from invite.tasks.task_settings import SendWindow


def test_window_wrapping_midnight() -> None:
    night = SendWindow(start="22:00", end="06:00", timezone="UTC")
    assert is_open(datetime(2026, 1, 5, 23, 0, tzinfo=UTC), night)
    assert is_open(datetime(2026, 1, 6, 5, 59, tzinfo=UTC), night)
    assert not is_open(datetime(2026, 1, 6, 6, 0, tzinfo=UTC), night)
    assert next_open(datetime(2026, 1, 6, 6, 0, tzinfo=UTC), night) == datetime(2026, 1, 6, 22, 0, tzinfo=UTC)
    assert open_seconds(night) == 8 * 3600


def test_next_open_is_tomorrow_after_the_close() -> None:
    day = SendWindow(start="09:00", end="18:00", timezone="UTC")
    assert next_open(datetime(2026, 1, 5, 18, 30, tzinfo=UTC), day) == datetime(2026, 1, 6, 9, 0, tzinfo=UTC)
    assert next_open(datetime(2026, 1, 5, 8, 0, tzinfo=UTC), day) == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    moment = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert next_open(moment, day) == moment
    assert open_seconds(None) == 86400


def test_local_time_follows_daylight_saving() -> None:
    berlin = SendWindow(start="09:00", end="10:00", timezone="Europe/Berlin")
    # 29 March 2026: clocks go from 02:00 CET to 03:00 CEST; 09:00 local is 07:00 UTC after it
    assert next_open(datetime(2026, 3, 28, 10, 0, tzinfo=UTC), berlin) == datetime(
        2026, 3, 29, 7, 0, tzinfo=UTC
    )
    assert next_open(datetime(2026, 3, 27, 10, 0, tzinfo=UTC), berlin) == datetime(
        2026, 3, 28, 8, 0, tzinfo=UTC
    )
