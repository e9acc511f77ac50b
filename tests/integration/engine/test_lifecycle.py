"""Task lifecycle on a virtual clock: scheduled starts, pause/resume/cancel, completion, send
windows, activation (accounts, suppression list, recontact cap) and graceful shutdown."""

from __future__ import annotations

import itertools
from contextlib import AsyncExitStack
from datetime import datetime, timedelta

from invite.observability.metrics import tasks_total
from invite.platforms.sandbox import SandboxAccounts
from tests.integration.engine.harness import TENANT, Scenario


def _count(status: str) -> float:
    value: float = tasks_total.labels(platform="telegram", status=status)._value.get()
    return value


async def test_scheduled_task_starts_on_time_once_across_replicas_and_completes_once(
    engine_scenario: Scenario,
) -> None:
    due = engine_scenario.clock.now() + timedelta(hours=2, minutes=17)
    started, completed = _count("running"), _count("completed")
    task_id = await engine_scenario.add_task(targets=10, status="scheduled", scheduled_at=due)
    async with AsyncExitStack() as stack:
        for replica in ("replica-a", "replica-b"):
            await stack.enter_async_context(engine_scenario.replica(2, replica_id=replica))
        await engine_scenario.wait_for_status(task_id, "completed")
    task = await engine_scenario.pool.fetchrow(
        "SELECT started_at, completed_at FROM invite_tasks WHERE id = $1", task_id
    )
    log = await engine_scenario.execution_log()
    assert task is not None
    assert task["started_at"] == due
    assert min(row["created_at"] for row in log) >= due
    assert task["completed_at"] >= max(row["created_at"] for row in log)
    assert _count("running") == started + 1
    assert _count("completed") == completed + 1


async def test_pause_resume_and_cancel_take_effect_before_the_next_action(engine_scenario: Scenario) -> None:
    paused_id = await engine_scenario.add_task(targets=40)
    cancelled_id = await engine_scenario.add_task(targets=40, prefix="other", group="group-2")

    async def progressed() -> bool:
        return (await engine_scenario.target_counts(paused_id)).get("succeeded", 0) >= 6

    async with engine_scenario.running(2):
        await engine_scenario.wait_until(progressed, step=60)
        await engine_scenario.set_status(paused_id, "paused")
        await engine_scenario.set_status(cancelled_id, "cancelled")
        stopped_at = engine_scenario.clock.now()
        await engine_scenario.clock.sleep(2 * 86400)
        frozen = await engine_scenario.target_counts(paused_id)
        await engine_scenario.set_status(paused_id, "running")
        await engine_scenario.wait_for_status(paused_id, "completed")
    log = await engine_scenario.execution_log()
    cancelled = await engine_scenario.target_counts(cancelled_id)
    status = await engine_scenario.task_status(cancelled_id)
    quiet = [r for r in log if stopped_at < r["created_at"] < stopped_at + timedelta(days=2)]
    assert quiet == []
    assert set(frozen) == {"succeeded", "pending"}
    assert status == "cancelled"
    assert set(cancelled) == {"succeeded", "cancelled"}
    assert not [r for r in log if r["task_id"] == cancelled_id and r["created_at"] > stopped_at]


async def test_send_window_is_kept_and_the_quota_paced_across_it(engine_scenario: Scenario) -> None:
    # the clock starts on Monday 09:00 UTC
    window = {"send_window": {"start": "13:00", "end": "15:00", "timezone": "Europe/Moscow"}}  # 10–12 UTC
    task_id = await engine_scenario.add_task(targets=100, settings=window)
    async with engine_scenario.running(2):
        await engine_scenario.wait_for_status(task_id, "completed")
    log = await engine_scenario.execution_log()
    hours = {(r["created_at"].date(), r["created_at"].hour) for r in log}
    assert {hour for _, hour in hours} == {10, 11}  # never outside 13:00–15:00 Moscow time
    days = sorted({day for day, _ in hours})
    assert len(days) == 2  # 2 accounts × 40 a day: the rest waits for tomorrow's window
    per_account: dict[str, list[datetime]] = {}
    for row in log:
        per_account.setdefault(row["account_id"], []).append(row["created_at"])
    for stamps in per_account.values():
        first_day = [t for t in stamps if t.date() == days[0]]
        assert len(first_day) == 40  # the day's quota, paced over the 2 h window: 3 min apart
        assert all((b - a) >= timedelta(minutes=3) for a, b in itertools.pairwise(first_day))


async def test_activation_screens_the_audience_and_picks_the_tenants_accounts(
    engine_scenario: Scenario,
) -> None:
    await engine_scenario.pool.execute(
        "INSERT INTO invite_accounts (id, user_id) VALUES ($1, 'another-tenant')", f"sandbox-{TENANT}-1"
    )
    await engine_scenario.pool.execute(
        "INSERT INTO invite_suppressions (user_id, identifier_key, user_identifier) VALUES ($1, 'u:user5', '@user5')",
        TENANT,
    )
    earlier = await engine_scenario.add_task(targets=3, status="completed")
    await engine_scenario.pool.execute(
        "UPDATE invite_targets SET status = 'succeeded', processed_at = $2 WHERE task_id = $1",
        earlier,
        engine_scenario.clock.now() - timedelta(days=2),
    )
    task_id = await engine_scenario.add_task(targets=10, settings={"recontact_days": 7})
    async with engine_scenario.running(3):
        await engine_scenario.wait_for_status(task_id, "completed")
    rows = await engine_scenario.pool.fetch("SELECT * FROM invite_targets WHERE task_id = $1", task_id)
    targets = {r["identifier_key"]: (r["status"], r["outcome"]) for r in rows}
    reasons = {r["identifier_key"]: r["error_message"] for r in rows}
    log = await engine_scenario.execution_log()
    attached = {
        r["account_id"]
        for r in await engine_scenario.pool.fetch("SELECT account_id FROM invite_task_accounts")
    }
    assert targets["u:user5"] == ("skipped", "suppressed")
    assert [targets[f"u:user{n}"] for n in (1, 2, 3)] == [("skipped", "recently_contacted")] * 3
    assert reasons["u:user5"] == "on the suppression list"
    assert reasons["u:user1"] == "contacted by another of your tasks within the last 7 days"
    assert sum(status == "succeeded" for status, _ in targets.values()) == 6
    assert attached == {f"sandbox-{TENANT}-2", f"sandbox-{TENANT}-3"}  # -1 belongs to someone else
    assert {r["account_id"] for r in log} <= attached


async def test_no_connected_account_fails_the_task_with_a_reason(engine_scenario: Scenario) -> None:
    task_id = await engine_scenario.add_task(targets=3)
    async with engine_scenario.running(0):
        await engine_scenario.wait_for_status(task_id, "failed")
    reason = await engine_scenario.status_reason(task_id)
    counts = await engine_scenario.target_counts(task_id)
    assert reason is not None
    assert reason.startswith("no account is connected")
    assert counts == {"cancelled": 3}


async def test_only_the_chosen_accounts_serve_and_none_connected_fails(engine_scenario: Scenario) -> None:
    chosen_id = await engine_scenario.add_task(targets=4, settings={"account_ids": [f"sandbox-{TENANT}-2"]})
    missing_id = await engine_scenario.add_task(
        targets=3, settings={"account_ids": ["not-connected"]}, prefix="x"
    )
    async with engine_scenario.running(3):
        await engine_scenario.wait_for_status(chosen_id, "completed")
        await engine_scenario.wait_for_status(missing_id, "failed")
    reason = await engine_scenario.status_reason(missing_id)
    log = await engine_scenario.execution_log()
    assert reason is not None
    assert "account_ids" in reason
    assert {r["account_id"] for r in log} == {f"sandbox-{TENANT}-2"}


async def test_graceful_stop_finishes_in_flight_work_and_releases_everything(
    engine_scenario: Scenario,
) -> None:
    provider = SandboxAccounts(3)
    task_id = await engine_scenario.add_task(targets=60)

    async def progressed() -> bool:
        return (await engine_scenario.target_counts(task_id)).get("succeeded", 0) >= 9

    async with engine_scenario.running(provider):
        await engine_scenario.wait_until(progressed, step=60)
    counts = await engine_scenario.target_counts(task_id)
    leases = await engine_scenario.pool.fetch("SELECT lease_owner FROM invite_accounts")
    stats = await engine_scenario.pool.fetch("SELECT account_id, stats FROM invite_task_accounts")
    assert "in_flight" not in counts
    assert {r["lease_owner"] for r in leases} == {None}
    released = {r.account_id: r.usage.invites_sent for r in provider.releases}
    assert sum(released.values()) == counts["succeeded"]
    assert {r["account_id"]: r["stats"].get("success", 0) for r in stats} == released
