"""Which task an account serves next: priority, round-robin, and what is passed over."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from invite.engine.account import LeasedAccount
from invite.engine.bucket import Bucket
from invite.engine.priorities import choose
from invite.engine.registry import Registry, RunningTask
from invite.kernel.clock import VirtualClock
from invite.kernel.settings import Settings
from invite.platforms.base import AccountData, RateLimits
from invite.platforms.sandbox import SandboxFactory
from invite.tasks.task_settings import SendWindow, TaskSettings

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SETTINGS = Settings(jwt_secret="x" * 40)
LIMITS = RateLimits(40, 10, 15.0)


def task(priority: int, n: int, settings: TaskSettings | None = None) -> RunningTask:
    return RunningTask(
        id=uuid.UUID(int=n),
        user_id="t",
        platform="telegram",
        task_type="invite_to_group",
        group_id="g",
        template=None,
        priority=priority,
        settings=settings or TaskSettings(),
        has_link=False,
    )


def account() -> LeasedAccount:
    data = AccountData(id="a1", user_id="t")
    strategy = SandboxFactory(VirtualClock(), limits=LIMITS).for_account(data)
    return LeasedAccount(data, strategy, LIMITS, Bucket())


def registry(*tasks: RunningTask) -> Registry:
    reg = Registry()
    reg.replace(tasks, [("a1", t.id) for t in tasks])
    return reg


def test_high_before_normal_before_low() -> None:
    low, normal, high = task(3, 1), task(2, 2), task(1, 3)
    choice = choose(account(), registry(low, normal, high), SETTINGS, NOW)
    assert choice is not None
    assert choice.task == high


def test_round_robin_among_equal_priority() -> None:
    first, second = task(2, 1), task(2, 2)
    reg, acc = registry(first, second), account()
    picked = []
    for _ in range(4):
        choice = choose(acc, reg, SETTINGS, NOW)
        assert choice is not None
        picked.append(choice.task.id)
        acc.turn += 1
    assert picked == [first.id, second.id, first.id, second.id]


def test_closed_window_or_no_work_passes_a_task_over() -> None:
    closed = SendWindow(start="01:00", end="02:00", timezone="UTC")
    high_closed, low = task(1, 1, TaskSettings(send_window=closed)), task(3, 2)
    reg = registry(high_closed, low)
    choice = choose(account(), reg, SETTINGS, NOW)
    assert choice is not None
    assert choice.task == low
    reg.mark_idle(low.id, NOW + timedelta(minutes=5))
    choice = choose(account(), reg, SETTINGS, NOW)  # nothing reachable: wait for the earliest
    assert choice is not None
    assert (choice.task, choice.when) == (low, NOW + timedelta(minutes=5))


def test_waiting_for_the_pause_does_not_pass_a_high_task_over() -> None:
    high, low = task(1, 1), task(3, 2)
    acc = account()
    acc.bucket.reserve(NOW)
    choice = choose(acc, registry(high, low), SETTINGS, NOW)
    assert choice is not None
    assert choice.task == high
    assert choice.when == NOW + timedelta(seconds=86400 / 40)


def test_a_task_the_account_may_not_serve_is_never_chosen() -> None:
    reg = registry(task(1, 1))
    reg.forbid("a1", uuid.UUID(int=1))
    assert choose(account(), reg, SETTINGS, NOW) is None
