"""What each answer of the platform does, end to end on a virtual clock and real PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from invite.observability.metrics import breaker_trips
from invite.platforms.base import AccountEvent
from invite.platforms.sandbox import SandboxAccounts, SandboxProfile
from tests.integration.engine.harness import TENANT, Scenario

ACCOUNT = [f"sandbox-{TENANT}-{n}" for n in range(1, 6)]


async def test_flood_wait_rests_the_account_while_others_carry_on(engine_scenario: Scenario) -> None:
    engine_scenario.configure(
        SandboxProfile(flood_wait_rate=0.25, flood_wait_seconds=(5000.0,)), breaker_window=100_000
    )
    task_id = await engine_scenario.add_task(targets=40)
    async with engine_scenario.running(2):
        await engine_scenario.wait_for_status(task_id, "completed")
    log = await engine_scenario.execution_log()
    accounts = {r["id"]: r for r in await engine_scenario.pool.fetch("SELECT * FROM invite_accounts")}
    attempts = await engine_scenario.pool.fetchval(
        "SELECT max(attempts) FROM invite_targets WHERE task_id = $1", task_id
    )
    counts = await engine_scenario.target_counts(task_id)
    assert counts == {"succeeded": 40}
    by_account = defaultdict(list)
    for row in log:
        by_account[row["account_id"]].append(row)
    floods = [r for r in log if r["status"] == "flood_wait"]
    came_back = 0
    for flood in floods:
        mine = by_account[flood["account_id"]]
        later = [r["created_at"] for r in mine if r["created_at"] > flood["created_at"]]
        if later:  # (a FloodWait near the end may leave the rest to the other account)
            came_back += 1
            assert min(later) >= flood["created_at"] + timedelta(seconds=5000)
        others = [r for r in log if r["account_id"] != flood["account_id"]]
        resting = (flood["created_at"], flood["created_at"] + timedelta(seconds=5000))
        assert any(resting[0] < r["created_at"] < resting[1] for r in others), "the other account carried on"
    assert came_back > 0, "an account came back by itself after its FloodWait"
    for account_id, rows in by_account.items():
        assert accounts[account_id]["flood_waits"] == sum(r["status"] == "flood_wait" for r in rows)
    assert attempts == 1  # a FloodWait is the account's refusal, not an attempt on the person


async def test_dead_account_is_blocked_everywhere_and_reported(engine_scenario: Scenario) -> None:
    # every account dies after four answers
    engine_scenario.configure(SandboxProfile(death_after=4), breaker_window=100_000)
    provider = SandboxAccounts(3)
    task_id = await engine_scenario.add_task(targets=30)
    other_id = await engine_scenario.add_task(targets=30, prefix="other", group="group-2")
    async with engine_scenario.running(provider):
        await engine_scenario.wait_for_status(task_id, "failed")
        await engine_scenario.wait_for_status(other_id, "failed")
    reason = await engine_scenario.status_reason(task_id)
    accounts = await engine_scenario.pool.fetch("SELECT status, status_reason FROM invite_accounts")
    task_accounts = await engine_scenario.pool.fetch("SELECT task_id, status FROM invite_task_accounts")
    counts = await engine_scenario.pool.fetch("SELECT status, count(*) AS n FROM invite_targets GROUP BY 1")
    log = await engine_scenario.execution_log()
    assert {a["status"] for a in accounts} == {"blocked"}
    assert all("USER_DEACTIVATED" in a["status_reason"] for a in accounts)
    assert len(task_accounts) == 6
    assert {r["status"] for r in task_accounts} == {"blocked"}  # in both tasks
    assert reason is not None
    assert "no account can serve this task" in reason
    assert {r["status"]: r["n"] for r in counts} == {"succeeded": 12, "cancelled": 48}  # 3 × 4 answers
    assert sum(r["status"] == "account_dead" for r in log) == 3
    assert {(r.account_id, r.event) for r in provider.reports} == {
        (a, AccountEvent.USER_DEACTIVATED) for a in ACCOUNT[:3]
    }
    assert all(not r.usage.success for r in provider.releases)


async def test_account_dead_at_start_is_retired_and_others_serve(engine_scenario: Scenario) -> None:
    engine_scenario.configure(SandboxProfile(dead_accounts=frozenset({ACCOUNT[0]})))
    provider = SandboxAccounts(2)
    task_id = await engine_scenario.add_task(targets=6)
    async with engine_scenario.running(provider):
        await engine_scenario.wait_for_status(task_id, "completed")
    log = await engine_scenario.execution_log()
    dead = await engine_scenario.pool.fetchrow(
        "SELECT status, lease_owner FROM invite_accounts WHERE id = $1", ACCOUNT[0]
    )
    assert dead is not None
    assert {r["account_id"] for r in log} == {ACCOUNT[1]}
    assert (dead["status"], dead["lease_owner"]) == ("blocked", None)
    assert [(r.account_id, r.event) for r in provider.reports] == [
        (ACCOUNT[0], AccountEvent.USER_DEACTIVATED)
    ]


async def test_without_the_invite_right_accounts_leave_the_task(engine_scenario: Scenario) -> None:
    engine_scenario.configure(SandboxProfile(groups_without_right=frozenset({"closed-group"})))
    closed_id = await engine_scenario.add_task(targets=10, group="closed-group")
    open_id = await engine_scenario.add_task(targets=10, group="open-group", prefix="open")
    async with engine_scenario.running(2):
        await engine_scenario.wait_for_status(closed_id, "failed")
        await engine_scenario.wait_for_status(open_id, "completed")
    reason = await engine_scenario.status_reason(closed_id)
    excluded = await engine_scenario.pool.fetch(
        "SELECT status, status_reason FROM invite_task_accounts WHERE task_id = $1", closed_id
    )
    log = await engine_scenario.execution_log()
    closed_counts = await engine_scenario.target_counts(closed_id)
    open_counts = await engine_scenario.target_counts(open_id)
    assert {r["status"] for r in excluded} == {"excluded"}
    assert all("no right to invite into closed-group" in r["status_reason"] for r in excluded)
    assert reason is not None
    assert "excluded" in reason
    assert {r["action"] for r in log if r["task_id"] == closed_id} == {"check_invite_right"}
    assert closed_counts == {"cancelled": 10}
    assert open_counts == {"succeeded": 10}


async def test_transient_errors_retry_with_backoff_then_fail_with_the_reason(
    engine_scenario: Scenario,
) -> None:
    engine_scenario.configure(
        SandboxProfile(transient_rate=1.0),
        max_attempts=3,
        retry_backoff_seconds=3000.0,
        retry_backoff_max_seconds=86400.0,
        breaker_window=100_000,
    )
    task_id = await engine_scenario.add_task(targets=3)
    async with engine_scenario.running(3):
        await engine_scenario.wait_for_status(task_id, "completed")
    targets = await engine_scenario.pool.fetch("SELECT status, attempts, error_message FROM invite_targets")
    log = await engine_scenario.execution_log()
    assert {(t["status"], t["attempts"]) for t in targets} == {("failed", 3)}
    assert all(t["error_message"] == "gave up after 3 attempts: RPC_CALL_FAIL" for t in targets)
    tries = defaultdict(list)
    for row in log:
        tries[row["identifier_key"]].append(row["created_at"])
    for stamps in tries.values():
        assert len(stamps) == 3
        assert stamps[1] - stamps[0] >= timedelta(seconds=3000)  # 3,000 s, then twice that
        assert stamps[2] - stamps[1] >= timedelta(seconds=6000)


async def test_breaker_pauses_the_task_on_spam_flags(engine_scenario: Scenario) -> None:
    engine_scenario.configure(SandboxProfile(peer_flood_after=2))
    before = breaker_trips.labels(reason="peer_flood")._value.get()
    task_id = await engine_scenario.add_task(targets=50)
    async with engine_scenario.running(5):
        await engine_scenario.wait_for_status(task_id, "paused")
    reason = await engine_scenario.status_reason(task_id)
    floods = await engine_scenario.pool.fetchval("SELECT sum(peer_floods) FROM invite_accounts")
    pending = await engine_scenario.target_counts(task_id)
    assert reason is not None
    assert "circuit breaker" in reason
    assert "PeerFlood" in reason
    assert floods >= 3
    assert pending.get("in_flight", 0) == 0
    assert breaker_trips.labels(reason="peer_flood")._value.get() == before + 1


async def test_breaker_pauses_the_task_on_a_high_error_rate(engine_scenario: Scenario) -> None:
    engine_scenario.configure(SandboxProfile(transient_rate=0.7), breaker_window=10, breaker_error_rate=0.5)
    task_id = await engine_scenario.add_task(targets=100)
    async with engine_scenario.running(3):
        await engine_scenario.wait_for_status(task_id, "paused")
    reason = await engine_scenario.status_reason(task_id)
    assert reason is not None
    assert "of the last 10 actions failed" in reason
