from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from invite.engine.forecast import (
    TELEGRAM_DEFAULTS,
    calculate_optimal_speed,
    effective_daily_quota,
    eta,
    pacing_interval,
)
from invite.platforms.base import RateLimits

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
