"""The warm-up schedule (5 a day rising to the full quota over 14 days of clean history), the
quota in force as the lowest of it and every other limit, what sets it back, and the health
states an account is read in."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import msgspec
import pytest

from invite.engine.bucket import Limits
from invite.engine.decisions import DECISIONS
from invite.engine.health import AccountFacts, Health, HealthState, account_health
from invite.engine.outcomes import _ACCOUNT, settle
from invite.engine.warmup import warmup_cap, warmup_day
from invite.platforms.base import Outcome, OutcomeKind
from invite.tasks.task_settings import TaskSettings
from tests.unit.engine.world import NOW, SETTINGS, TASK, account, claim, registry

DAY = timedelta(days=1)


def cap_of(limits: Limits | None) -> int:
    assert limits is not None
    return limits.cap


@pytest.mark.parametrize(
    ("age", "day"),
    [
        (timedelta(0), 1),
        (DAY - timedelta(seconds=1), 1),
        (DAY, 2),
        (13 * DAY + timedelta(hours=23), 14),
        (14 * DAY, None),  # warmed up
        (400 * DAY, None),
        (-timedelta(hours=1), 1),  # a start a moment ahead of this replica's clock: day 1
    ],
)
def test_the_day_of_warm_up_counts_whole_days_of_clean_history(age: timedelta, day: int | None) -> None:
    assert warmup_day(NOW - age, NOW, SETTINGS) == day


def test_no_history_or_no_warm_up_holds_nobody_back() -> None:
    assert warmup_day(None, NOW, SETTINGS) is None
    off = msgspec.structs.replace(SETTINGS, warmup_days=0)
    assert warmup_day(NOW, NOW, off) is None


def test_the_cap_rises_from_the_start_to_the_full_quota_over_the_days() -> None:
    assert (SETTINGS.warmup_start_per_day, SETTINGS.warmup_days) == (5, 14)  # the defaults
    caps = [warmup_cap(day, 40, SETTINGS) for day in range(1, 15)]
    assert caps[0] == 5
    assert caps[1] == 7  # 5 + 35 * 1 / 14
    assert caps == sorted(caps)
    assert len(set(caps)) == 14  # a step up every day
    assert caps[-1] == 37 < 40
    assert warmup_cap(None, 40, SETTINGS) == 40  # day 15 on: the full quota


def test_a_quota_below_the_start_is_not_raised() -> None:
    assert warmup_cap(1, 3, SETTINGS) == 3
    assert warmup_cap(7, 3, SETTINGS) == 3
    assert warmup_cap(1, 0, SETTINGS) == 0


def test_the_quota_in_force_is_the_lowest_of_warm_up_task_platform_and_ours() -> None:
    rate = account().rate
    assert (limits := TASK.limits(SETTINGS, rate, None, warmup_day=1)) is not None
    assert limits.cap == 5
    # pacing spreads the day's warm-up quota, not the full one
    assert limits.pacing == 86400 / 5
    # the warm-up rises towards the lowest of the others: the task's 20 here
    task = msgspec.structs.replace(TASK, settings=TaskSettings(daily_limit_per_account=20))
    assert (limits := task.limits(SETTINGS, rate, 30, warmup_day=8)) is not None
    assert limits.cap == 5 + 15 * 7 // 14
    # a link quota of 10 (ours and the platform's) starts at 5 too
    link = msgspec.structs.replace(TASK, task_type="send_messages", has_link=True)
    assert (limits := link.limits(SETTINGS, rate, None, warmup_day=1)) is not None
    assert limits.cap == 5
    assert (limits := TASK.limits(SETTINGS, rate, None, warmup_day=None)) is not None
    assert limits.cap == 40


def test_an_account_s_limits_follow_its_day_of_warm_up() -> None:
    acc = account()
    acc.warmup_since = NOW
    first = acc.limits_for(TASK, SETTINGS, NOW)
    assert cap_of(first) == 5
    assert acc.limits_for(TASK, SETTINGS, NOW + timedelta(hours=5)) is first  # the same day: kept
    assert cap_of(acc.limits_for(TASK, SETTINGS, NOW + DAY)) == 7
    assert cap_of(acc.limits_for(TASK, SETTINGS, NOW + 14 * DAY)) == 40


LATER = NOW + timedelta(hours=3)


@pytest.mark.parametrize(
    ("kind", "since", "cap"),
    [
        # after the spam flag's rest, day 1 again
        (OutcomeKind.PEER_FLOOD, LATER + timedelta(seconds=SETTINGS.peer_flood_cooldown_seconds), 5),
        (OutcomeKind.ACCOUNT_DEAD, LATER, 7),  # were it brought back a day later: day 2
    ],
)
def test_a_spam_flag_or_a_death_starts_the_clean_history_again(
    kind: OutcomeKind, since: datetime, cap: int
) -> None:
    acc = account()
    acc.warmup_since = NOW - 30 * DAY
    assert cap_of(acc.limits_for(TASK, SETTINGS, LATER)) == 40
    entry = settle(SETTINGS, registry(acc), LATER, acc, TASK, Outcome(kind, detail="X"), claim())
    assert entry.account is not None
    assert entry.account.warmup_since == since  # written by the group commit
    assert acc.warmup_since == since
    assert cap_of(acc.limits_for(TASK, SETTINGS, LATER + DAY)) == cap


def test_other_outcomes_leave_the_clean_history_alone() -> None:
    for key, decision in DECISIONS.items():
        if decision.account.value in ("spam_flag", "block"):
            continue
        acc = account()
        acc.warmup_since = NOW - 3 * DAY
        change = _ACCOUNT[decision.account](acc, "", 30.0, SETTINGS, NOW)
        assert acc.warmup_since == NOW - 3 * DAY, key
        assert change is None or change.warmup_since is None, key


FACTS = AccountFacts(
    status="active",
    reason=None,
    cooldown_until=None,
    pace_multiplier=1.0,
    warmup_since=NOW - 30 * DAY,
    used_today=3,
    cap=40,
)


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, HealthState(Health.HEALTHY)),
        ({"pace_multiplier": 2.0}, HealthState(Health.PACING)),
        ({"used_today": 40}, HealthState(Health.PACING)),
        (
            {"status": "cooldown", "reason": "FloodWait 30 s", "cooldown_until": NOW + timedelta(minutes=2)},
            HealthState(Health.COOLING_DOWN, until=NOW + timedelta(minutes=2)),
        ),
        (
            {
                "status": "cooldown",
                "reason": "spam flag (PeerFlood): resting 24 h",
                "cooldown_until": NOW + DAY,
            },
            HealthState(Health.SPAM_FLAGGED, until=NOW + DAY),
        ),
        (  # a rest that is over: back to what the rest says
            {"status": "cooldown", "reason": "FloodWait 30 s", "cooldown_until": NOW - timedelta(seconds=1)},
            HealthState(Health.HEALTHY),
        ),
        ({"status": "blocked", "reason": "account dead: USER_DEACTIVATED_BAN"}, HealthState(Health.DEAD)),
        ({"status": "disabled"}, HealthState(Health.DEAD)),
        ({"status": "blocked", "reason": "account dead: FROZEN_METHOD_INVALID"}, HealthState(Health.FROZEN)),
        (
            {"warmup_since": NOW - 2 * DAY - timedelta(hours=1)},
            HealthState(Health.WARMING_UP, day=3, days=14),
        ),
        (  # a rest outranks the warm-up, the warm-up the pacing
            {
                "warmup_since": NOW,
                "cooldown_until": NOW + DAY,
                "reason": "spam flag (PeerFlood): resting 24 h",
            },
            HealthState(Health.SPAM_FLAGGED, until=NOW + DAY),
        ),
        ({"warmup_since": NOW, "used_today": 5, "cap": 5}, HealthState(Health.WARMING_UP, day=1, days=14)),
    ],
)
def test_the_health_state(changes: dict[str, object], state: HealthState) -> None:
    assert account_health(dataclasses.replace(FACTS, **changes), NOW, SETTINGS) == state  # type: ignore[arg-type]
