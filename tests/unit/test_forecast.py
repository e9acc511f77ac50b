from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from invite.engine.bucket import Bucket, Limits
from invite.engine.forecast import (
    TELEGRAM_DEFAULTS,
    History,
    Seat,
    calculate_optimal_speed,
    effective_daily_quota,
    eta,
    pacing_interval,
    plan,
)
from invite.platforms.base import RateLimits
from invite.tasks.task_settings import SendWindow

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_ten_accounts_without_links_do_400_a_day() -> None:
    rate = calculate_optimal_speed("telegram", 10, 1000, False)
    assert rate.messages_per_hour == pytest.approx(400 / 24)
    assert rate.pause_between_messages == pytest.approx(86_400 / 40)
    assert rate.accounts_rotation is True
    assert rate.estimated_hours == pytest.approx(60.0)


def test_a_link_lowers_the_quota_to_ten_a_day() -> None:
    rate = calculate_optimal_speed("telegram", 1, 10, True)
    assert rate.messages_per_hour == pytest.approx(10 / 24)
    assert rate.estimated_hours == pytest.approx(24.0)
    assert rate.accounts_rotation is False


def test_no_accounts_gives_no_estimate() -> None:
    rate = calculate_optimal_speed("telegram", 0, 100, False)
    assert rate.messages_per_hour == 0
    assert rate.estimated_hours is None


def test_accounts_on_cooldown_slow_the_campaign_down() -> None:
    all_ready = calculate_optimal_speed("telegram", 4, 400, False)
    half_cooling = calculate_optimal_speed("telegram", 4, 400, False, accounts_available=2)
    all_cooling = calculate_optimal_speed("telegram", 4, 400, False, accounts_available=0)
    assert all_ready.estimated_hours is not None
    assert half_cooling.estimated_hours is not None
    assert half_cooling.estimated_hours == pytest.approx(2 * all_ready.estimated_hours)
    assert all_cooling.estimated_hours is None


def test_the_effective_quota_given_by_the_engine_wins() -> None:
    rate = calculate_optimal_speed("telegram", 2, 48, False, daily_quota=24)
    assert rate.messages_per_hour == pytest.approx(2.0)
    assert rate.estimated_hours == pytest.approx(24.0)


def test_the_minimum_pause_caps_a_large_quota() -> None:
    limits = RateLimits(daily_quota=100_000, daily_quota_with_link=100_000, min_pause_seconds=15)
    rate = calculate_optimal_speed("telegram", 1, 240, False, limits=limits)
    assert rate.pause_between_messages == 15
    assert rate.messages_per_hour == pytest.approx(240)
    assert rate.estimated_hours == pytest.approx(1.0)


def test_nothing_left_means_done_now() -> None:
    assert calculate_optimal_speed("telegram", 3, 0, False).estimated_hours == 0.0
    assert calculate_optimal_speed("telegram", 0, 0, False).estimated_hours == 0.0
    assert eta(0, 0.0, NOW) == NOW


def test_other_platforms_need_their_limits() -> None:
    with pytest.raises(ValueError, match="instagram"):
        calculate_optimal_speed("instagram", 1, 10, False)
    limits = RateLimits(daily_quota=48, daily_quota_with_link=24, min_pause_seconds=60)
    rate = calculate_optimal_speed("instagram", 1, 48, True, limits=limits)
    assert rate.estimated_hours == pytest.approx(48)


@pytest.mark.parametrize(
    ("accounts", "targets", "available"),
    [(-1, 10, None), (1, -1, None), (2, 10, 3), (2, 10, -1)],
)
def test_impossible_inputs_are_refused(accounts: int, targets: int, available: int | None) -> None:
    with pytest.raises(ValueError, match="must"):
        calculate_optimal_speed("telegram", accounts, targets, False, accounts_available=available)


def test_effective_quota_takes_links_and_the_task_limit() -> None:
    assert effective_daily_quota(TELEGRAM_DEFAULTS, False) == 40
    assert effective_daily_quota(TELEGRAM_DEFAULTS, True) == 10
    assert effective_daily_quota(TELEGRAM_DEFAULTS, False, 25) == 25
    assert effective_daily_quota(TELEGRAM_DEFAULTS, True, 25) == 10
    with pytest.raises(ValueError, match="positive"):
        pacing_interval(0, 15)


def test_eta_is_now_plus_remaining_over_rate() -> None:
    assert eta(50, 10.0, NOW) == NOW + timedelta(hours=5)
    assert eta(50, 0.0, NOW) is None


# --- plan: each account's own bucket run forward -------------------------------------------


def seats(n: int, limits: Limits, **bucket: Any) -> list[Seat]:
    return [Seat(f"acc{i}", Bucket(**bucket), limits) for i in range(n)]


def test_the_plan_follows_the_buckets_own_pacing() -> None:
    """Two fresh accounts, 40 a day each paced over 24 h: 80 people take 39 gaps of 36 min."""
    limits = Limits.of(40, 15.0)
    planned = plan(NOW, 80, seats(2, limits), relax_step=0.05)
    assert planned.finish_at == NOW + timedelta(seconds=39 * 2160)
    assert (planned.accounts, planned.people_per_day, planned.limited_by) == (2, 80, ["quota"])
    assert planned.days == pytest.approx(39 * 2160 / 86_400)


def test_spent_quota_waits_for_its_window_and_a_cooldown_for_its_end() -> None:
    limits = Limits.of(40, 15.0)
    spent = plan(NOW, 1, seats(1, limits, window_start=NOW - timedelta(hours=20), count=40), relax_step=0)
    assert spent.finish_at == NOW + timedelta(hours=4)
    cooling = plan(NOW, 1, seats(1, limits, cooldown_until=NOW + timedelta(hours=2)), relax_step=0)
    assert (cooling.finish_at, cooling.limited_by) == (NOW + timedelta(hours=2), ["quota", "cooldown"])


def test_the_aimd_multiplier_stretches_the_pause_and_eases_back() -> None:
    limits = Limits.of(10_000, 60.0)  # the pause holds, not the pacing
    slow = plan(NOW, 3, seats(1, limits, multiplier=4.0), relax_step=1.0)
    # three actions: at once, then after 60 s x 3, then 60 s x 2
    assert (slow.finish_at, slow.limited_by) == (NOW + timedelta(seconds=300), ["pause"])


def test_a_send_window_in_the_tasks_time_zone_holds_the_work() -> None:
    window = SendWindow(start="10:00", end="18:00", timezone="Europe/Moscow")  # 07:00-15:00 UTC
    limits = Limits.of(8, 15.0, window)  # one an hour within the window
    planned = plan(NOW, 9, seats(1, limits), relax_step=0)  # NOW is 09:00 UTC = 12:00 MSK
    # six by 14:00 UTC, the window shuts at 15:00, two more at 07:00 and 08:00 tomorrow; the
    # ninth waits for the quota's 24 h window, opened at 09:00 today, to close
    assert planned.finish_at == NOW + timedelta(days=1)
    assert planned.limited_by == ["quota", "send_window"]
    closed = plan(NOW.replace(hour=16), 1, seats(1, limits), relax_step=0)  # 19:00 MSK
    assert closed.finish_at == datetime(2026, 1, 6, 7, 0, tzinfo=UTC)


def test_accounts_that_may_not_act_are_left_out_and_said_so() -> None:
    limits = Limits.of(40, 15.0)
    planned = plan(NOW, 10, [*seats(1, limits), Seat("gone", Bucket(), None)], relax_step=0)
    assert (planned.accounts, planned.limited_by) == (1, ["quota", "accounts"])
    nobody = plan(NOW, 10, [Seat("gone", Bucket(), None)], relax_step=0)
    assert (nobody.finish_at, nobody.days, nobody.limited_by) == (None, None, ["accounts"])
    assert plan(NOW, 0, [], relax_step=0).finish_at == NOW


def test_a_long_campaign_goes_on_at_the_steady_rate_past_the_replayed_events() -> None:
    limits = Limits.of(40, 15.0)
    replayed = plan(NOW, 4_000, seats(10, limits), relax_step=0, max_events=100_000)
    cut = plan(NOW, 4_000, seats(10, limits), relax_step=0, max_events=200)
    assert replayed.finish_at is not None
    assert cut.finish_at is not None
    assert abs((cut.finish_at - replayed.finish_at).total_seconds()) <= 2160  # one gap


def test_the_tasks_history_of_floodwaits_and_retries_lengthens_the_plan() -> None:
    """One FloodWait in ten actions, each cooling the account for 2 h, and a retry for one
    person in four: the replay meets them, spread over the accounts, and ends later."""
    limits = Limits.of(10_000, 60.0)  # the pause holds: a minute an action
    clean = plan(NOW, 100, seats(4, limits), relax_step=0)
    seen = History(actions_per_person=1.25, flood_rate=0.1, flood_seconds=7200.0)
    costly = plan(NOW, 100, seats(4, limits), relax_step=0, history=seen)
    assert clean.finish_at == NOW + timedelta(minutes=24)  # 25 each, the first at once
    assert costly.finish_at is not None
    # 125 actions besides ~14 FloodWaits; every account cools 2 h at least once or twice
    assert NOW + timedelta(hours=4) < costly.finish_at < NOW + timedelta(hours=8)
    assert costly.people_per_day < clean.people_per_day
