"""Replies to message tasks, read back from the sandbox on the virtual clock: a reply is marked on
its target (the time, never the text), a reply that says stop suppresses the person for every
task, /stats shows the rates, and a task too many recipients say no to pauses with the reason."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

from invite.engine.replies import OPT_OUT_REASON
from invite.kernel.auth import Tenant
from invite.platforms.sandbox import ActionKind, SandboxProfile
from invite.reports.service import ReportService
from tests.integration.engine.harness import TENANT, Scenario

REPLY_AFTER = 600.0
POLL = 300.0
MESSAGE = {"task_type": "send_messages", "template": "Hello {first_name}"}


async def replied(scenario: Scenario, task_id: uuid.UUID) -> list[dict[str, object]]:
    with scenario.clock.busy():
        rows = await scenario.pool.fetch(
            """SELECT identifier_key, account_id, processed_at, replied_at, opted_out_at
               FROM invite_targets WHERE task_id = $1 ORDER BY seq""",
            task_id,
        )
    return [dict(r) for r in rows]


async def everyone_answered(scenario: Scenario, task_id: uuid.UUID, column: str = "replied_at") -> None:
    async def done() -> bool:
        return all(r[column] is not None for r in await replied(scenario, task_id))

    await scenario.wait_until(done, step=POLL)


async def test_a_reply_is_marked_on_its_target_with_its_time_and_without_its_text(
    engine_scenario: Scenario,
) -> None:
    profile = SandboxProfile(
        reply_rate=1.0, reply_after_seconds=REPLY_AFTER, reply_text="Sounds good, tell me more"
    )
    engine_scenario.configure(profile, replies_poll_seconds=POLL)
    task = await engine_scenario.add_task(targets=4, priority=1, **MESSAGE)
    # a long task of lower priority keeps the account leased (and polled) after the first ends
    await engine_scenario.add_task(targets=200, priority=3, prefix="later", **MESSAGE)
    async with engine_scenario.running(1):
        await everyone_answered(engine_scenario, task)

    rows = await replied(engine_scenario, task)
    assert all(r["replied_at"] == r["processed_at"] + timedelta(seconds=REPLY_AFTER) for r in rows)  # type: ignore[operator]
    assert all(r["opted_out_at"] is None for r in rows)
    with engine_scenario.clock.busy():
        stored = "\n".join(
            [
                *(str(r) for r in await engine_scenario.pool.fetch("SELECT t.* FROM invite_targets t")),
                *(
                    str(r)
                    for r in await engine_scenario.pool.fetch("SELECT l.* FROM invite_execution_logs l")
                ),
            ]
        )
        suppressed = await engine_scenario.pool.fetchval("SELECT count(*) FROM invite_suppressions")
    assert "tell me more" not in stored  # what they wrote is read, never kept
    assert suppressed == 0  # a reply without a stop word opts nobody out


async def test_a_reply_that_says_stop_keeps_every_other_task_away_from_the_person(
    engine_scenario: Scenario,
) -> None:
    profile = SandboxProfile(opt_out_reply_rate=1.0, reply_after_seconds=REPLY_AFTER)
    engine_scenario.configure(profile, replies_poll_seconds=POLL)
    first = await engine_scenario.add_task(targets=5, priority=1, **MESSAGE)
    second = await engine_scenario.add_task(
        targets=5, priority=3, template="Hi again", task_type="send_messages"
    )
    async with engine_scenario.running(1):
        await engine_scenario.wait_for_status(second, "completed")

    messages = [a for a in engine_scenario.record.actions if a.action is ActionKind.MESSAGE]
    assert Counter(a.target_key for a in messages) == {f"u:user{n}": 1 for n in range(1, 6)}  # once each
    rows = await replied(engine_scenario, first)
    assert all(r["opted_out_at"] is not None and r["replied_at"] == r["opted_out_at"] for r in rows)
    suppressions = await engine_scenario.pool.fetch(
        "SELECT identifier_key, reason FROM invite_suppressions WHERE user_id = $1", TENANT
    )
    assert {s["identifier_key"]: s["reason"] for s in suppressions} == {
        f"u:user{n}": OPT_OUT_REASON for n in range(1, 6)
    }
    assert await engine_scenario.target_counts(second) == {"skipped": 5}
    assert await engine_scenario.status_reason(first) is None  # 5 people: too few to judge the task


async def test_stats_show_reply_and_opt_out_rates_per_task_and_per_account(engine_scenario: Scenario) -> None:
    profile = SandboxProfile(reply_rate=0.4, opt_out_reply_rate=0.2, reply_after_seconds=REPLY_AFTER)
    engine_scenario.configure(profile, replies_poll_seconds=POLL)
    task = await engine_scenario.add_task(targets=20, priority=1, **MESSAGE)
    await engine_scenario.add_task(targets=200, priority=3, prefix="later", **MESSAGE)
    async with engine_scenario.running(2):

        async def all_read() -> bool:
            rows = await replied(engine_scenario, task)
            sent = [r for r in rows if r["processed_at"] is not None]
            horizon = engine_scenario.clock.now() - timedelta(seconds=REPLY_AFTER + 2 * POLL)
            return len(sent) == 20 and all(r["processed_at"] < horizon for r in sent)  # type: ignore[operator]

        await engine_scenario.wait_until(all_read, step=POLL)
        rows = await replied(engine_scenario, task)
        with engine_scenario.clock.busy():
            stats = await ReportService(
                engine_scenario.pool, engine_scenario.settings, engine_scenario.clock, Tenant(TENANT)
            ).stats(task, None, None)

    answered = [r for r in rows if r["replied_at"] is not None]
    stopped = [r for r in rows if r["opted_out_at"] is not None]
    assert 0 < len(stopped) < len(answered) < 20
    assert (stats.replies.reached, stats.replies.replied, stats.replies.opted_out) == (
        20,
        len(answered),
        len(stopped),
    )
    assert stats.replies.reply_rate == round(len(answered) / 20, 4)
    assert stats.replies.opt_out_rate == round(len(stopped) / 20, 4)
    per_account = {a.account_id: a.replies for a in stats.by_account}
    for account_id in {r["account_id"] for r in rows}:
        mine = [r for r in rows if r["account_id"] == account_id]
        got = per_account[str(account_id)]
        assert (got.reached, got.replied, got.opted_out) == (
            len(mine),
            sum(r["replied_at"] is not None for r in mine),
            sum(r["opted_out_at"] is not None for r in mine),
        )
    assert sum(a.replies.reached for a in stats.by_account) == 20


async def test_a_task_too_many_people_ask_to_stop_pauses_with_the_reason(engine_scenario: Scenario) -> None:
    profile = SandboxProfile(opt_out_reply_rate=0.5, reply_after_seconds=REPLY_AFTER)
    engine_scenario.configure(
        profile, replies_poll_seconds=POLL, opt_out_pause_rate=0.3, opt_out_pause_min_people=6
    )
    task = await engine_scenario.add_task(targets=60, **MESSAGE)
    async with engine_scenario.running(1):
        await engine_scenario.wait_for_status(task, "paused")
    reason = await engine_scenario.status_reason(task)
    assert reason is not None
    assert "replied asking not to be written to again" in reason
    rows = await replied(engine_scenario, task)
    sent = sum(r["processed_at"] is not None for r in rows)
    stopped = sum(r["opted_out_at"] is not None for r in rows)
    assert sent < 60  # it stopped early
    assert stopped >= 0.3 * 6


async def test_a_task_too_many_people_block_pauses_with_the_reason(engine_scenario: Scenario) -> None:
    engine_scenario.configure(
        SandboxProfile(blocked_rate=0.5), opt_out_pause_rate=0.3, opt_out_pause_min_people=6
    )
    task = await engine_scenario.add_task(targets=60, **MESSAGE)
    async with engine_scenario.running(1):
        await engine_scenario.wait_for_status(task, "paused")
    reason = await engine_scenario.status_reason(task)
    assert reason is not None
    assert "blocked the account" in reason
    assert (await engine_scenario.target_counts(task)).get("pending", 0) > 0


async def test_replies_refused_during_a_flood_wait_are_read_once_it_is_over(
    engine_scenario: Scenario,
) -> None:
    # FloodWaits of an hour on a third of the sends: the sandbox refuses the polls as long
    profile = SandboxProfile(
        reply_rate=1.0, reply_after_seconds=REPLY_AFTER, flood_wait_rate=0.3, flood_wait_seconds=(3600.0,)
    )
    engine_scenario.configure(profile, replies_poll_seconds=POLL)
    task = await engine_scenario.add_task(targets=8, priority=1, **MESSAGE)
    await engine_scenario.add_task(targets=200, priority=3, prefix="later", **MESSAGE)
    async with engine_scenario.running(1):
        await everyone_answered(engine_scenario, task)

    floods = [a for a in engine_scenario.record.actions if a.outcome.value == "flood_wait"]
    assert floods, "the profile makes FloodWaits"
    rows = await replied(engine_scenario, task)
    assert all(r["replied_at"] == r["processed_at"] + timedelta(seconds=REPLY_AFTER) for r in rows)  # type: ignore[operator]
