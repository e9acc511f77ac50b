"""The token bucket: daily quota window, pause × AIMD multiplier, pacing, cooldown, send windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from invite.engine.bucket import Bucket, Limits
from invite.tasks.task_settings import SendWindow

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_pacing_spreads_the_quota_over_the_day() -> None:
    limits = Limits.of(cap=40, min_pause=15.0)
    bucket = Bucket()
    assert bucket.next_allowed(T0, limits) == T0
    bucket.reserve(T0)
    assert bucket.next_allowed(T0, limits) == at(86400 / 40)  # 36 min, not 15 s


def test_pause_wins_over_pacing_when_longer_and_grows_with_the_multiplier() -> None:
    limits = Limits.of(cap=100_000, min_pause=15.0)
    bucket = Bucket()
    bucket.reserve(T0)
    assert bucket.next_allowed(T0, limits) == at(15)
    bucket.back_off(ceiling=16.0)
    bucket.back_off(ceiling=16.0)
    assert bucket.multiplier == 4.0
    assert bucket.next_allowed(T0, limits) == at(60)
    for _ in range(10):
        bucket.back_off(ceiling=16.0)
    assert bucket.multiplier == 16.0
    for _ in range(1000):
        bucket.relax(0.05)
    assert bucket.multiplier == 1.0


def test_daily_quota_holds_until_the_window_that_opened_it_closes() -> None:
    limits = Limits(cap=3, min_pause=1.0, pacing=1.0)  # no pacing: the quota alone binds
    bucket = Bucket()
    for second in (0, 10, 20):
        assert bucket.next_allowed(at(second), limits) == at(second)
        bucket.reserve(at(second))
    assert bucket.shut(at(21), limits)
    assert bucket.next_allowed(at(21), limits) == at(86400)  # the window opened at T0
    bucket.reserve(at(86400))
    assert (bucket.window_start, bucket.count) == (at(86400), 1)


def test_cooldown_keeps_the_later_end() -> None:
    limits = Limits.of(cap=40, min_pause=15.0)
    bucket = Bucket()
    bucket.cool_down(at(600))
    bucket.cool_down(at(300))
    assert bucket.cooling(at(599))
    assert not bucket.cooling(at(600))
    assert bucket.next_allowed(T0, limits) == at(600)


def test_send_window_defers_to_its_opening_and_paces_over_its_length() -> None:
    window = SendWindow(start="10:00", end="12:00", timezone="Europe/Moscow")  # 07:00–09:00 UTC
    limits = Limits.of(cap=40, min_pause=15.0, send_window=window)
    assert limits.pacing == 2 * 3600 / 40
    bucket = Bucket()
    assert bucket.shut(T0, limits)  # 09:00 UTC is 12:00 in Moscow: just closed
    assert bucket.next_allowed(T0, limits) == datetime(2026, 1, 6, 7, 0, tzinfo=UTC)
    opened = datetime(2026, 1, 6, 7, 30, tzinfo=UTC)
    assert not bucket.shut(opened, limits)
    assert bucket.next_allowed(opened, limits) == opened


def test_the_pause_also_holds_between_the_sends() -> None:
    limits = Limits(cap=1000, min_pause=15.0, pacing=1.0)
    bucket = Bucket()
    bucket.reserve(T0)
    bucket.answered(at(2.5))  # a slow claim and a slow answer: Telegram saw it at +2.5 s
    assert bucket.next_allowed(at(3), limits) == at(15)  # the next claim may go at +15 s ...
    assert bucket.send_wait(at(15.2), limits) == 2.3  # ... and its send waits until +17.5 s
    assert bucket.send_wait(at(18), limits) == 0.0


def test_after_a_hand_over_without_release_the_gap_counts_from_the_hand_over() -> None:
    limits = Limits(cap=1000, min_pause=15.0, pacing=1.0)
    bucket = Bucket(last_action_at=T0)
    bucket.acted_by(at(100))
    assert bucket.next_allowed(at(100), limits) == at(115)
    assert bucket.send_wait(at(115), limits) == 0.0  # nothing held once the claim is made


def test_one_pacing_rule_gives_the_gap_and_the_steady_day() -> None:
    """What the forecast reads from the bucket: the gap (pause x multiplier, or the pacing) and
    the actions of a day at rest (the quota, or what the pause or the send window leaves)."""
    paced = Limits.of(cap=40, min_pause=15.0)
    assert (paced.pause_holds(), paced.gap(), paced.per_day()) == (False, timedelta(seconds=2160), 40)
    assert paced.pause_holds(multiplier=200.0)  # 15 s x 200 = 50 min, past the 36 min pacing
    assert paced.gap(multiplier=200.0) == Bucket(multiplier=200.0).gap(paced) == timedelta(minutes=50)
    paused = Limits.of(cap=100_000, min_pause=15.0)
    assert (paused.pause_holds(), paused.gap(), paused.per_day()) == (True, timedelta(seconds=15), 5760)
    window = SendWindow(start="10:00", end="18:00", timezone="UTC")
    assert Limits.of(cap=100_000, min_pause=60.0, send_window=window).per_day() == 480  # 8 h of minutes
    assert Limits.of(cap=8, min_pause=15.0, send_window=window).per_day() == 8
