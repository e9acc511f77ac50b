from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from invite.engine.bucket import Bucket, Limits
from invite.engine.forecast import History, Seat, plan
from invite.tasks.task_settings import SendWindow

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


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


# --- one-use invite links ------------------------------------------------------------------


def linking(n: int, limits: Limits, link: Limits) -> list[Seat]:
    return [Seat(f"acc{i}", Bucket(), limits, link_limits=link) for i in range(n)]


def test_links_cost_one_more_action_each_and_keep_to_the_link_quota() -> None:
    """One account, 40 actions a day, 10 of them at most for messages carrying a link."""
    limits, link = Limits.of(40, 15.0), Limits.of(10, 15.0)
    plain = plan(NOW, 200, linking(1, limits, link), relax_step=0, history=History())
    # a fifth of the people refused for privacy: 240 actions, 40 of them links, at 40 a day
    fifth = plan(NOW, 200, linking(1, limits, link), relax_step=0, history=History(link_share=0.2))
    # everyone refused: 200 links at 10 a day bound it, whatever the invites' pace
    everyone = plan(NOW, 200, linking(1, limits, link), relax_step=0, history=History(link_share=1.0))
    assert plain.days is not None
    assert fifth.days is not None
    assert everyone.days is not None
    assert plain.days == pytest.approx(5.0, abs=0.05)
    # 240 actions at 40 a day: 6 days, and the last links wait for a window with link room
    assert 6.0 <= fifth.days <= 7.0
    assert everyone.days == pytest.approx(20.0, abs=0.6)
    # the share only counts where the seats send links
    assert plan(NOW, 200, seats(1, limits), relax_step=0, history=History(link_share=1.0)) == plain
    assert fifth.people_per_day == int(min(40 / 1.2, 10 / 0.2))


def test_people_waiting_for_their_link_go_within_each_window_s_link_quota() -> None:
    """30 people whose link is due and nobody new: 10 a window, the third window's last at ~48 h."""
    limits, link = Limits.of(40, 15.0), Limits.of(10, 15.0)
    due = plan(NOW, 30, linking(1, limits, link), relax_step=0, history=History(link_share=0.2), links_due=30)
    assert due.finish_at is not None
    assert NOW + timedelta(hours=48) <= due.finish_at <= NOW + timedelta(hours=72)
