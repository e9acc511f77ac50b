"""A simulated campaign of more than a day on the virtual clock: 20 accounts, 1,000 people,
FloodWaits and spam flags injected. Every target ends final; the execution log shows no
account over its quota or under its pause, and nobody reached twice."""

from __future__ import annotations

from collections import Counter

from invite.kernel.clock import VirtualClock
from invite.platforms.sandbox import ActionKind, SandboxAccounts, SandboxProfile, sends_per_target
from tests.integration.engine.checks import quota_breaches, reached_twice
from tests.integration.engine.harness import (
    engine_pool,
    engine_settings,
    execution_log,
    make_task,
    running_engine,
    sandbox,
    target_counts,
    wait_for_status,
)

PROFILE = SandboxProfile(
    not_found_rate=0.03,
    privacy_restricted_rate=0.08,
    already_member_rate=0.05,
    flood_wait_rate=0.04,
    flood_wait_range=(60.0, 3600.0),
    peer_flood_after=51,  # 20 × 51 answers suffice for 1,000 people: the busiest accounts get flagged
)


async def test_simulated_day_keeps_every_limit(fresh_database_url: str) -> None:
    clock = VirtualClock()
    # the breaker would pause the task at the third spam flag: this scenario is about the limits
    settings = engine_settings(fresh_database_url, breaker_peer_floods=1000, breaker_window=100_000)
    async with engine_pool(settings) as pool:
        task_id = await make_task(pool, targets=1000)
        factory = sandbox(clock, settings, PROFILE)
        async with running_engine(pool, settings, clock, factory, SandboxAccounts(20)):
            await wait_for_status(pool, clock, task_id, "completed", real_timeout=90)
        counts = await target_counts(pool, clock, task_id)
        log = await execution_log(pool)
    assert set(counts) <= {"succeeded", "skipped", "failed"}
    assert sum(counts.values()) == 1000
    outcomes = Counter(row["status"] for row in log)
    assert outcomes["flood_wait"] > 10
    assert outcomes["peer_flood"] > 0
    assert len({row["account_id"] for row in log}) == 20
    assert quota_breaches(log, settings.daily_quota, settings.min_pause_seconds) == []
    assert reached_twice(log) == []
    # the simulator's own record agrees: nobody got the invite twice
    sent = sends_per_target(factory.record.read_since(0)[0], ActionKind.INVITE)
    assert max(sent.values()) == 1
    assert sum(sent.values()) == outcomes["success"]
