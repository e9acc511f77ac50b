"""One-use invite links on the virtual clock, with the sandbox (which makes links, lets people
join through them, and revokes them as Telegram does): a person whose privacy refuses a direct
add and who accepts messages gets one personal message with a link only they can use, under
every message rule and within the account's link quota; joins come back as ``joined_via_link``,
and links that run out unused are revoked."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from datetime import timedelta

import openpyxl

from invite.engine.actions import message_random_id
from invite.engine.links import link_text
from invite.kernel.auth import Tenant
from invite.platforms.base import AccountData, OutcomeKind, Target
from invite.platforms.sandbox import ActionKind, SandboxAction, SandboxProfile
from invite.reports.export import xlsx_stream
from invite.reports.service import ReportService
from tests.integration.engine.harness import TENANT, Scenario
from tests.integration.test_reports import cells_at, chart_series

ACCOUNT = f"sandbox-{TENANT}-1"
WATCH = 600.0
OFFER = {"privacy_fallback": "invite_link"}
TEMPLATE = "Hi {first_name}, join us here: {invite_link}"


async def targets(scenario: Scenario, task_id: uuid.UUID) -> list[dict[str, object]]:
    with scenario.clock.busy():
        rows = await scenario.pool.fetch(
            """SELECT g.identifier_key, g.status, g.outcome, g.link_state, g.processed_at, g.error_message,
                      l.url, l.expires_at, l.joined_at, l.revoked_at, l.account_id AS maker
               FROM invite_targets g LEFT JOIN invite_links l ON l.target_id = g.id
               WHERE g.task_id = $1 ORDER BY g.seq""",
            task_id,
        )
    return [dict(r) for r in rows]


def actions(scenario: Scenario, kind: ActionKind) -> list[SandboxAction]:
    return [a for a in scenario.record.read_since(0)[0] if a.action is kind]


async def test_people_privacy_keeps_out_get_one_link_each_and_joins_come_back(
    engine_scenario: Scenario,
) -> None:
    profile = SandboxProfile(
        invite_privacy_rate=0.5, link_join_rate=0.5, link_join_after_seconds=(600.0, 3600.0)
    )
    engine_scenario.configure(profile, invite_link_poll_seconds=WATCH, invite_link_hours=48)
    task = await engine_scenario.add_task(targets=40, priority=1, template=TEMPLATE, settings=OFFER)
    # a long task of lower priority keeps the account held (and watched) after the first ends
    await engine_scenario.add_task(targets=400, priority=3, prefix="later")
    async with engine_scenario.running(2):
        await engine_scenario.wait_for_status(task, "completed", step=WATCH)

        async def joins_read() -> bool:
            rows = await targets(engine_scenario, task)
            return all(r["link_state"] != "sent" or r["joined_at"] is None for r in rows) and any(
                r["link_state"] == "joined" for r in rows
            )

        await engine_scenario.wait_until(joins_read, step=WATCH, limit=86400.0)
    rows = await targets(engine_scenario, task)

    offered = [r for r in rows if r["link_state"] is not None]
    assert offered, "the profile refuses half the adds for privacy"
    # everyone else was invited as usual
    assert all(r["status"] == "succeeded" and r["outcome"] == "success" for r in rows if r not in offered)
    messages = actions(engine_scenario, ActionKind.MESSAGE)
    links = actions(engine_scenario, ActionKind.LINK)
    # one message and one link per person offered, nobody twice; each message carries its own link
    assert Counter(m.target_key for m in messages) == Counter(str(r["identifier_key"]) for r in offered)
    assert len(links) == len(offered) == len({r["url"] for r in offered})
    assert {m.target_key: m.link_url for m in messages} == {r["identifier_key"]: r["url"] for r in offered}
    for link in links:  # one use, the expiry asked for
        assert link.expires_at == link.at + timedelta(hours=48)
    joined = [r for r in offered if r["link_state"] == "joined"]
    assert joined
    assert all(r["status"] == "succeeded" and r["outcome"] == "joined_via_link" for r in joined)
    assert all(r["processed_at"] < r["joined_at"] for r in joined)  # type: ignore[operator]  # the message's time
    waiting = [r for r in offered if r["link_state"] == "sent"]
    assert all(r["status"] == "skipped" and r["outcome"] == "link_sent" for r in waiting)
    assert len(joined) + len(waiting) == len(offered)

    with engine_scenario.clock.busy():
        stats = await ReportService(
            engine_scenario.pool, engine_scenario.settings, engine_scenario.clock, Tenant(TENANT)
        ).stats(task, None, None)
    assert stats.links.offered == stats.links.sent == len(offered)
    assert (stats.links.joined, stats.links.expired) == (len(joined), 0)
    assert stats.by_action["send_invite_link"] == len(offered)
    assert stats.by_outcome["joined_via_link"] == len(joined)
    # the report's summary sheet draws the funnel from its own table
    with engine_scenario.clock.busy():
        reports = ReportService(
            engine_scenario.pool, engine_scenario.settings, engine_scenario.clock, Tenant(TENANT)
        )
        book = b"".join([chunk async for chunk in xlsx_stream(await reports.export_pages(task), stats)])
    summary = openpyxl.load_workbook(io.BytesIO(book))["Summary"]
    funnel = next(series for _, kind, series in chart_series(book) if kind == "barChart" and len(series) == 1)
    name, values = funnel[0]
    assert cells_at(summary, name) == ["people"]
    assert cells_at(summary, values) == [len(offered), len(offered), len(joined), 0]


async def test_a_link_unused_runs_out_and_is_revoked(engine_scenario: Scenario) -> None:
    profile = SandboxProfile(invite_privacy_rate=1.0)  # nobody uses their link
    engine_scenario.configure(profile, invite_link_poll_seconds=WATCH, invite_link_hours=2)
    task = await engine_scenario.add_task(targets=3, priority=1, template=TEMPLATE, settings=OFFER)
    await engine_scenario.add_task(targets=400, priority=3, prefix="later")
    async with engine_scenario.running(1):

        async def revoked() -> bool:
            return all(r["revoked_at"] is not None for r in await targets(engine_scenario, task))

        await engine_scenario.wait_until(revoked, step=WATCH, limit=86400.0)
    rows = await targets(engine_scenario, task)
    assert all(
        (r["status"], r["outcome"], r["link_state"], r["error_message"])
        == ("skipped", "link_expired", "expired", "the one-use invite link ran out unused: revoked")
        for r in rows
    )
    revokes = actions(engine_scenario, ActionKind.REVOKE_LINK)
    assert sorted(str(a.link_url) for a in revokes) == sorted(str(r["url"]) for r in rows)
    for row in rows:  # not before it ran out
        assert row["revoked_at"] >= row["expires_at"]  # type: ignore[operator]


async def test_without_the_setting_nobody_gets_a_message(engine_scenario: Scenario) -> None:
    engine_scenario.configure(SandboxProfile(invite_privacy_rate=1.0))
    task = await engine_scenario.add_task(
        targets=5, priority=1, template=TEMPLATE.replace("{invite_link}", "")
    )
    async with engine_scenario.running(1):
        await engine_scenario.wait_for_status(task, "completed")
    rows = await targets(engine_scenario, task)
    assert {(r["status"], r["outcome"], r["link_state"]) for r in rows} == {
        ("skipped", "privacy_restricted", None)
    }
    assert actions(engine_scenario, ActionKind.MESSAGE) == actions(engine_scenario, ActionKind.LINK) == []


async def test_links_wait_for_the_accounts_link_quota_and_suppressions_hold(
    engine_scenario: Scenario,
) -> None:
    # the link quota (3) below the invite quota (10): after three actions in its 24 h window an
    # account sends no link until the window reopens; a person suppressed meanwhile gets none
    profile = SandboxProfile(invite_privacy_rate=1.0)
    engine_scenario.configure(
        profile, daily_quota=10, daily_quota_with_link=3, invite_link_poll_seconds=WATCH
    )
    task = await engine_scenario.add_task(targets=6, priority=1, template=TEMPLATE, settings=OFFER)
    with engine_scenario.clock.busy():
        await engine_scenario.pool.execute(
            "INSERT INTO invite_suppressions (user_id, identifier_key, user_identifier, reason)"
            " VALUES ($1, 'u:user6', '@user6', 'asked')",
            TENANT,
        )
    async with engine_scenario.running(1):
        await engine_scenario.wait_for_status(task, "completed", step=WATCH, limit=5 * 86400.0)
    rows = await targets(engine_scenario, task)
    messages = actions(engine_scenario, ActionKind.MESSAGE)
    assert "u:user6" not in {m.target_key for m in messages}
    assert {r["identifier_key"] for r in rows if r["outcome"] == "suppressed"} == {"u:user6"}
    assert sorted(m.target_key for m in messages) == [f"u:user{i}" for i in range(1, 6)]
    # the account's 24 h window opens with its first action and reopens with the first one 24 h
    # later: a link's message goes out only as the window's 1st, 2nd or 3rd action (the link
    # quota), the invites around them up to 10 -- so the links spread over three windows
    acted = sorted(
        (a.at, a.action)
        for a in engine_scenario.record.read_since(0)[0]
        if a.action in (ActionKind.INVITE, ActionKind.MESSAGE)
    )
    start, count, windows = acted[0][0], 0, []
    for at, action in acted:
        if at >= start + timedelta(hours=24):
            start, count = at, 0
        count += 1
        if action is ActionKind.MESSAGE:
            assert count <= 3, (at, count)
            windows.append(start)
    assert len(acted) == 10  # 5 invites (user6 suppressed), 5 links
    assert len(set(windows)) == 3
    assert messages[0].at < acted[2][0]  # the first link goes before the third invite: ahead of the queue


async def test_a_links_message_a_dead_worker_left_in_doubt_is_settled_and_never_sent_twice(
    engine_scenario: Scenario,
) -> None:
    """A worker died after saving the links of user1 and user2 and sending user1's message: the
    next holder finds user1's in its dialog (link sent, nothing sent again), sends user2's with
    the link saved for it (no second link), and goes on with user3 as usual."""
    engine_scenario.configure(SandboxProfile(invite_privacy_rate=1.0), invite_link_hours=48)
    clock, pool = engine_scenario.clock, engine_scenario.pool
    task = await engine_scenario.add_task(targets=3, template=TEMPLATE, settings=OFFER)
    maker = engine_scenario.factory.for_account(AccountData(ACCOUNT, TENANT))
    ids = {
        r["identifier_key"]: r["id"]
        for r in await pool.fetch("SELECT id, identifier_key FROM invite_targets")
    }
    saved = {}
    for key in ("u:user1", "u:user2"):
        made = await maker.create_invite_link("group-1", clock.now() + timedelta(hours=48))
        assert made.link is not None
        saved[key] = made.link.url
        await pool.execute(
            """INSERT INTO invite_links (target_id, task_id, account_id, url, expires_at, created_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            ids[key],
            task,
            ACCOUNT,
            made.link.url,
            made.link.expires_at,
            clock.now(),
        )
    sent = await maker.send_message(
        Target.from_key("u:user1"),
        link_text(TEMPLATE, {"first_name": "Name1"}, saved["u:user1"]),
        message_random_id(task, ids["u:user1"]),
    )
    assert sent.kind is OutcomeKind.SUCCESS
    expired = clock.now() - timedelta(seconds=1)
    await pool.execute(
        """UPDATE invite_targets SET status = 'in_flight', link_state = 'due', lease_owner = 'dead-replica',
                  lease_expires_at = $2, account_id = $3, attempts = 1
           WHERE task_id = $1 AND identifier_key IN ('u:user1', 'u:user2')""",
        task,
        expired,
        ACCOUNT,
    )
    async with engine_scenario.running(1):
        await engine_scenario.wait_for_status(task, "completed")
    rows = {r["identifier_key"]: r for r in await targets(engine_scenario, task)}
    assert {k: (r["status"], r["outcome"], r["link_state"]) for k, r in rows.items()} == {
        key: ("skipped", "link_sent", "sent") for key in ("u:user1", "u:user2", "u:user3")
    }
    messages = [m for m in actions(engine_scenario, ActionKind.MESSAGE) if m.outcome is OutcomeKind.SUCCESS]
    assert Counter(m.target_key for m in messages) == {"u:user1": 1, "u:user2": 1, "u:user3": 1}
    assert {m.target_key: m.link_url for m in messages if m.target_key != "u:user3"} == saved
    assert len(actions(engine_scenario, ActionKind.LINK)) == 3  # the two saved, and user3's
    checked = await pool.fetch(
        """SELECT g.identifier_key, l.status FROM invite_execution_logs l JOIN invite_targets g ON g.id = l.target_id
           WHERE l.action = 'check_delivery'"""
    )
    assert {(r["identifier_key"], r["status"]) for r in checked} == {
        ("u:user1", "delivered_confirmed"),
        ("u:user2", "not_sent"),
    }


async def test_joins_after_the_task_ended_are_read_under_a_short_lease(engine_scenario: Scenario) -> None:
    """Once its task completes, the account is let go of; the people who join hours later still
    come back as joined_via_link, each read under a short lease given back at once."""
    profile = SandboxProfile(
        invite_privacy_rate=1.0, link_join_rate=1.0, link_join_after_seconds=(4 * 3600.0, 5 * 3600.0)
    )
    engine_scenario.configure(profile, invite_link_poll_seconds=WATCH)
    task = await engine_scenario.add_task(targets=3, template=TEMPLATE, settings=OFFER)
    async with engine_scenario.running(1):
        await engine_scenario.wait_for_status(task, "completed")
        assert {r["link_state"] for r in await targets(engine_scenario, task)} == {"sent"}

        async def joined() -> bool:
            return {r["link_state"] for r in await targets(engine_scenario, task)} == {"joined"}

        await engine_scenario.wait_until(joined, step=WATCH, limit=86400.0)
        with engine_scenario.clock.busy():
            lease = await engine_scenario.pool.fetchrow(
                "SELECT lease_owner, lease_expires_at FROM invite_accounts WHERE id = $1", ACCOUNT
            )
    assert lease is not None
    assert lease["lease_owner"] is None  # given back as found: let go of
    rows = await targets(engine_scenario, task)
    assert all(r["outcome"] == "joined_via_link" and r["joined_at"] is not None for r in rows)


async def test_a_reply_to_a_links_message_that_says_stop_suppresses_the_person(
    engine_scenario: Scenario,
) -> None:
    profile = SandboxProfile(invite_privacy_rate=1.0, opt_out_reply_rate=1.0, reply_after_seconds=600.0)
    engine_scenario.configure(profile, replies_poll_seconds=300.0)
    task = await engine_scenario.add_task(targets=2, template=TEMPLATE, settings=OFFER)
    later = await engine_scenario.add_task(
        targets=2, priority=3, task_type="send_messages", template="Hi again"
    )
    async with engine_scenario.running(1):
        await engine_scenario.wait_for_status(later, "completed", step=300.0)

        async def opted_out() -> bool:
            with engine_scenario.clock.busy():
                n: int = await engine_scenario.pool.fetchval(
                    "SELECT count(*) FROM invite_targets WHERE task_id = $1 AND opted_out_at IS NOT NULL",
                    task,
                )
            return n == 2

        await engine_scenario.wait_until(opted_out, step=300.0)
    with engine_scenario.clock.busy():
        suppressed = {
            r["identifier_key"] for r in await engine_scenario.pool.fetch("SELECT * FROM invite_suppressions")
        }
        counted = await engine_scenario.pool.fetchrow(
            "SELECT sum(replies) AS replies, sum(opt_outs) AS opt_outs FROM invite_reply_counts WHERE task_id = $1",
            task,
        )
    assert suppressed == {"u:user1", "u:user2"}
    assert counted is not None
    assert (counted["replies"], counted["opt_outs"]) == (2, 2)
    # the message task after it finds them on the list: the link's message was their only one
    with engine_scenario.clock.busy():
        after = await engine_scenario.pool.fetch(
            "SELECT status, outcome FROM invite_targets WHERE task_id = $1", later
        )
    assert {(r["status"], r["outcome"]) for r in after} == {("skipped", "suppressed")}
    assert Counter(m.target_key for m in actions(engine_scenario, ActionKind.MESSAGE)) == {
        "u:user1": 1,
        "u:user2": 1,
    }
