"""Delivery semantics after a worker died mid-action: its leases expire, an invite (idempotent)
is retried, and a message is settled by asking the platform — the account's next holder finds it
sent (delivered), not sent (sent now, once) or cannot tell: then, within the random_id window,
the message is sent again under its own random_id (the platform delivers it at most once) and
settled by the answer; past the window it stays uncertain, never re-sent."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from datetime import datetime, timedelta

import asyncpg
import pytest

from invite.platforms.base import AccountData, OutcomeKind, Target
from invite.platforms.sandbox import ActionKind, SandboxProfile, SandboxRecord
from tests.integration.engine.harness import TENANT, Scenario, sandbox

ACCOUNT = f"sandbox-{TENANT}-1"
ORPHAN = """UPDATE invite_targets SET status = $4, outcome = $5, lease_owner = 'dead-replica', attempts = 1,
                  lease_expires_at = $2, account_id = $6
           WHERE task_id = $1 AND identifier_key = ANY($3::text[])"""

RANDOM_IDS = itertools.count(1)  # a fresh random_id for every message these tests send


async def orphan(
    pool: asyncpg.Pool,
    task_id: uuid.UUID,
    keys: list[str],
    lease_expires_at: datetime,
    *,
    status: str = "in_flight",
    account: str = ACCOUNT,
) -> None:
    """What a worker that died after claiming these leaves behind (``uncertain``: and was recovered)."""
    outcome = "lease_expired" if status == "uncertain" else None
    await pool.execute(ORPHAN, task_id, lease_expires_at, keys, status, outcome, account)


def messages_to(record: SandboxRecord) -> Counter[str]:
    """How many messages each person really got."""
    actions = record.read_since(0)[0]
    return Counter(
        a.target_key for a in actions if a.action is ActionKind.MESSAGE and a.outcome is OutcomeKind.SUCCESS
    )


async def test_expired_invites_are_retried(engine_scenario: Scenario) -> None:
    invites = await engine_scenario.add_task(targets=5, prefix="inv", group="group-2")
    await orphan(
        engine_scenario.pool, invites, ["u:inv1"], engine_scenario.clock.now() - timedelta(seconds=1)
    )
    async with engine_scenario.running(2):
        await engine_scenario.wait_for_status(invites, "completed")
    row = await engine_scenario.pool.fetchrow(
        "SELECT status, attempts FROM invite_targets WHERE identifier_key = 'u:inv1'"
    )
    assert row is not None
    assert (row["status"], row["attempts"]) == ("succeeded", 2)


@pytest.mark.parametrize("window", [3600.0, 0.0], ids=["within-the-random_id-window", "past-it"])
async def test_messages_left_in_doubt_are_settled_by_asking_the_platform(
    engine_scenario: Scenario, window: float
) -> None:
    clock, pool = engine_scenario.clock, engine_scenario.pool
    profile = SandboxProfile(not_found_rate=0.5)
    engine_scenario.configure(profile, random_id_window_seconds=window)
    settings, factory = engine_scenario.settings, engine_scenario.factory
    # who the simulated Telegram finds: asked of a world of its own, so the campaign's stays clean
    probe = sandbox(clock, settings, profile).for_account(AccountData(ACCOUNT, TENANT))
    found: list[str] = []
    lost: list[str] = []
    for n in range(1, 41):
        key = f"u:user{n}"
        answer = await probe.send_message(Target.from_key(key), "probe", next(RANDOM_IDS))
        (found if answer.kind is OutcomeKind.SUCCESS else lost).append(key)
    delivered, unsent, unknown = found[0], found[1], lost[0]
    for n in range(20):  # someone to have been left in doubt in a task that completed since
        prefix = f"earlier{n}_"
        earlier = f"u:{prefix}1"
        if (
            await probe.send_message(Target.from_key(earlier), "probe", next(RANDOM_IDS))
        ).kind is OutcomeKind.SUCCESS:
            break
    expired = clock.now() - timedelta(seconds=1)
    attempt_began = expired - timedelta(seconds=settings.target_lease_seconds)
    running = await engine_scenario.add_task(
        targets=40, task_type="send_messages", template="Hi {first_name}"
    )
    done = await engine_scenario.add_task(
        targets=1,
        task_type="send_messages",
        template="Hi",
        status="completed",
        prefix=prefix,
    )
    await orphan(pool, running, [delivered, unknown], expired)
    await orphan(pool, running, [unsent], expired, status="uncertain")  # the sweep got there first
    await orphan(pool, done, [earlier], expired, status="uncertain")
    await pool.execute(
        "INSERT INTO invite_task_accounts (task_id, account_id, platform) VALUES ($1, $2, 'telegram')",
        done,
        ACCOUNT,
    )
    # the dead worker's quota reservations: the window opened before its first claim
    await pool.execute(
        """INSERT INTO invite_accounts (id, user_id, platform, daily_window_start, daily_count,
                                        last_action_at, created_at, updated_at)
           VALUES ($1, $2, 'telegram', $3, 4, $4, $3, $3)""",
        ACCOUNT,
        TENANT,
        attempt_began - timedelta(seconds=60),
        attempt_began,
    )
    # it did send one of them before it died: the record (Telegram) knows, the database does not
    sender = factory.for_account(AccountData(ACCOUNT, TENANT))
    assert (
        await sender.send_message(Target.from_key(delivered), "Hi there", next(RANDOM_IDS))
    ).kind is OutcomeKind.SUCCESS
    before = len(engine_scenario.record.actions)

    async with engine_scenario.running(2):
        await engine_scenario.wait_for_status(running, "completed")
    rows = await pool.fetch(
        "SELECT identifier_key, status, outcome, error_message, attempts FROM invite_targets"
    )
    log = await pool.fetch(
        """SELECT g.identifier_key, l.account_id, l.status FROM invite_execution_logs l
           JOIN invite_targets g ON g.id = l.target_id WHERE l.action = 'check_delivery'"""
    )
    count = await pool.fetchval("SELECT daily_count FROM invite_accounts WHERE id = $1", ACCOUNT)
    counters = {
        (r["task_id"], r["status"]): r["n"]
        for r in await pool.fetch("SELECT task_id, status, n FROM invite_task_counts WHERE n <> 0")
    }
    targets = {r["identifier_key"]: r for r in rows}
    got = messages_to(engine_scenario.record)

    assert (targets[delivered]["status"], targets[delivered]["outcome"]) == (
        "succeeded",
        "delivered_confirmed",
    )
    assert got[delivered] == 1  # not sent again

    assert (targets[unsent]["status"], targets[unsent]["outcome"]) == ("succeeded", "success")
    assert targets[unsent]["attempts"] == 1  # the attempt that never went out does not count
    assert got[unsent] == 1

    if window:  # sent again under its random_id: the platform finds no such person, nothing went out
        assert (targets[unknown]["status"], targets[unknown]["outcome"]) == ("skipped", "not_found")
    else:
        assert (targets[unknown]["status"], targets[unknown]["outcome"]) == ("uncertain", "delivery_unknown")
        assert "not re-sent" in targets[unknown]["error_message"]
    assert got[unknown] == 0

    assert (targets[earlier]["status"], targets[earlier]["outcome"]) == ("failed", "not_sent")
    assert "task had completed" in targets[earlier]["error_message"]
    assert got[earlier] == 0

    asked = [
        (delivered, ACCOUNT, "delivered_confirmed"),
        (unsent, ACCOUNT, "not_sent"),
        (earlier, ACCOUNT, "not_sent"),
    ]
    if not window:
        asked.append((unknown, ACCOUNT, "delivery_unknown"))
    assert sorted((r["identifier_key"], r["account_id"], r["status"]) for r in log) == sorted(asked)
    # the two reservations that bought nothing were given back; every send since reserved its
    # own, but the one sent again under the reservation of the attempt in doubt
    sent_since = [a for a in engine_scenario.record.actions[before:] if a.account_id == ACCOUNT]
    assert count == 4 - 2 + len(sent_since) - (1 if window else 0)
    final = {s: n for (task_id, s), n in counters.items() if task_id == running}
    assert sum(final.values()) == 40
    assert set(final) <= {"succeeded", "skipped", "uncertain"}
    assert counters[(done, "failed")] == 1


async def test_a_previous_holders_live_lease_is_waited_out_before_the_account_acts(
    engine_scenario: Scenario,
) -> None:
    engine_scenario.configure(min_pause_seconds=1.0)
    live_until = engine_scenario.clock.now() + timedelta(seconds=120)
    task_id = await engine_scenario.add_task(targets=3, task_type="send_messages", template="Hi {first_name}")
    await orphan(engine_scenario.pool, task_id, ["u:user1"], live_until)  # its holder may still be sending it
    async with engine_scenario.running(1):
        await engine_scenario.wait_for_status(task_id, "completed", step=10.0)
    rows = await engine_scenario.pool.fetch("SELECT identifier_key, status FROM invite_targets")
    actions = engine_scenario.record.actions
    assert {r["status"] for r in rows} == {"succeeded"}
    assert min(a.at for a in actions) >= live_until  # nothing went out on the account before
    assert messages_to(engine_scenario.record) == Counter({"u:user1": 1, "u:user2": 1, "u:user3": 1})
