"""History.of: the FloodWaits a task expects — the tenant's other tasks' before it has met its
own, its own as it acts — and the plan those make at the start of a task."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from invite.engine.bucket import Bucket, Limits
from invite.engine.forecast import PRIOR_ACTIONS, History, Refusals, Seat, Seen, plan

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TENANT = Seen(actions=4_000, floods=120, flood_seconds=8_100.0)  # 3 % of its actions, 2 h 15 min each


def test_a_task_that_has_not_acted_expects_the_tenants_floodwaits() -> None:
    assert History.of(Seen(), 0, TENANT) == History(
        actions_per_person=1.0, flood_rate=0.03, flood_seconds=8_100.0
    )


def test_without_a_history_anywhere_a_task_expects_none() -> None:
    assert History.of(Seen(), 0, Seen()) == History()
    assert History.of(Seen(100, 10, 60.0), 80) == History(1.125, 0.1, 60.0)


def test_the_tasks_own_floodwaits_take_over_as_it_acts() -> None:
    """The tenant's weigh as PRIOR_ACTIONS of the task's actions: their rate and wait in that share."""
    own = Seen(actions=2_000, floods=20, flood_seconds=3_600.0)
    seen = History.of(own, 1_980, TENANT)
    share = PRIOR_ACTIONS / TENANT.actions
    floods = 20 + TENANT.floods * share
    assert seen.actions_per_person == 1.0  # the task's own: 1,980 actions for 1,980 people
    assert seen.flood_rate == pytest.approx(floods / (2_000 + PRIOR_ACTIONS))
    assert seen.flood_seconds == pytest.approx((20 * 3_600.0 + TENANT.floods * share * 8_100.0) / floods)
    later = History.of(Seen(20_000, 200, 3_600.0), 19_800, TENANT)
    assert abs(later.flood_rate - 0.01) < abs(seen.flood_rate - 0.01)  # nearer its own 1 %


def test_the_start_forecast_meets_the_floodwaits_the_tenant_meets() -> None:
    """Twenty fresh accounts, 2,000 people: 99 pacing gaps of 36 min each with no FloodWait;
    with the tenant's 3 % of 2 h 15 min each, the accounts lose about 7 h more cooling."""
    limits = Limits.of(40, 15.0)
    fresh = [Seat(f"acc{i}", Bucket(), limits) for i in range(20)]
    blind = plan(NOW, 2_000, fresh, relax_step=0.05, history=History.of(Seen(), 0))
    told = plan(NOW, 2_000, fresh, relax_step=0.05, history=History.of(Seen(), 0, TENANT))
    assert blind.days == pytest.approx(99 * 2_160 / 86_400)
    assert blind.days is not None
    assert told.days is not None
    assert 6 < (told.days - blind.days) * 24 < 9


def test_the_share_of_people_a_link_is_offered_to_comes_from_the_invites_refusals() -> None:
    # nothing known: no share; the tenant's invites before the task's first; then its own
    assert History.of(Seen(), 0).link_share == 0.0
    before = History.of(Seen(), 0, TENANT, tenant_refusals=Refusals(invites=1_000, refused=100))
    assert before.link_share == pytest.approx(0.1)
    own = History.of(
        Seen(1_000, 0),
        800,
        TENANT,
        refusals=Refusals(invites=1_000, refused=300),
        tenant_refusals=Refusals(invites=1_000, refused=100),
    )
    # the tenant's count as PRIOR_ACTIONS (200) of its invites at most: (300 + 20) / (1000 + 200)
    assert own.link_share == pytest.approx(320 / 1_200)
