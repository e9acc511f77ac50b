"""A simulated campaign of more than a day on the virtual clock: 20 accounts, 1,000 people,
FloodWaits and spam flags injected. Every target ends final; the execution log shows no
account over its quota or under its pause, and nobody reached twice."""

from __future__ import annotations

from collections import Counter

from invite.platforms.sandbox import ActionKind, SandboxProfile, sends_per_target
from tests.integration.engine.checks import quota_breaches, reached_twice
from tests.integration.engine.harness import Scenario

PROFILE = SandboxProfile(
    not_found_rate=0.03,
    privacy_restricted_rate=0.08,
    already_member_rate=0.05,
    flood_wait_rate=0.04,
    flood_wait_range=(60.0, 3600.0),
    peer_flood_after=51,  # 20 × 51 answers suffice for 1,000 people: the busiest accounts get flagged
)


async def test_simulated_day_keeps_every_limit(engine_scenario: Scenario) -> None:
    # the breaker would pause the task at the third spam flag: this scenario is about the limits
    engine_scenario.configure(PROFILE, breaker_peer_floods=1000, breaker_window=100_000)
    settings = engine_scenario.settings
    task_id = await engine_scenario.add_task(targets=1000)
    async with engine_scenario.running(20):
        await engine_scenario.wait_for_status(task_id, "completed", real_timeout=90)
    counts = await engine_scenario.target_counts(task_id)
    log = await engine_scenario.execution_log()
    assert set(counts) <= {"succeeded", "skipped", "failed"}
    assert sum(counts.values()) == 1000
    outcomes = Counter(row["status"] for row in log)
    assert outcomes["flood_wait"] > 10
    assert outcomes["peer_flood"] > 0
    assert len({row["account_id"] for row in log}) == 20
    assert quota_breaches(log, settings.daily_quota, settings.min_pause_seconds) == []
    assert reached_twice(log) == []
    # the simulator's own record agrees: nobody got the invite twice
    sent = sends_per_target(engine_scenario.record.actions, ActionKind.INVITE)
    assert max(sent.values()) == 1
    assert sum(sent.values()) == outcomes["success"]
