"""Replies read after the task ends, on the virtual clock: once a message task's last target is
done its account is let go of, and the replies poller reads it under a short lease of its own
(followup.py) for REPLIES_WATCH_HOURS after -- never an account another replica holds, one the
accounts provider will not lease, or one cooling down; and a read gives way to a campaign."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from invite.engine.followup import OWNER_SUFFIX
from invite.engine.repository import Repository
from invite.engine.service import Engine
from invite.platforms.base import AccountData, LeasePurpose, UsageStats
from invite.platforms.sandbox import SandboxAccounts, SandboxProfile
from tests.integration.engine.harness import TENANT, Scenario
from tests.integration.engine.test_replies import MESSAGE, POLL, replied

REPLY_AFTER = 3 * 3600.0  # people answer three hours after the message
ACCOUNT = f"sandbox-{TENANT}-1"
REPLYING = SandboxProfile(reply_rate=1.0, reply_after_seconds=REPLY_AFTER)  # everybody answers


class Provider(SandboxAccounts):
    """The sandbox's accounts provider, which can be told to refuse leases (busy elsewhere)."""

    def __init__(self) -> None:
        super().__init__(1)
        self.busy = False
        self.refused = 0

    async def lease(
        self, account_id: str, user_id: str, purpose: LeasePurpose, channel: str | None = None
    ) -> AccountData | None:
        if self.busy:
            self.refused += 1
            return None
        return await super().lease(account_id, user_id, purpose, channel)


async def lease_row(scenario: Scenario) -> tuple[str | None, datetime | None]:
    with scenario.clock.busy():
        row = await scenario.pool.fetchrow(
            "SELECT lease_owner, lease_expires_at FROM invite_accounts WHERE id = $1", ACCOUNT
        )
    assert row is not None
    return row["lease_owner"], row["lease_expires_at"]


async def finished_and_let_go(
    scenario: Scenario, task: uuid.UUID, provider: Provider, engine: Engine
) -> None:
    """The task completes and the lease keeper releases its account (nothing left to serve)."""
    await scenario.wait_for_status(task, "completed", step=60.0)

    async def released() -> bool:
        return await lease_row(scenario) == (None, None) and not engine.keeper.held

    await scenario.wait_until(released, step=60.0)
    assert [r.account_id for r in provider.releases] == [ACCOUNT]  # the campaign's lease, given back


@asynccontextmanager
async def after_the_task(
    scenario: Scenario, *, targets: int = 3, profile: SandboxProfile = REPLYING, **overrides: Any
) -> AsyncIterator[tuple[uuid.UUID, Provider, Engine]]:
    """A message task of ``targets`` people run to its end on a single sandbox account, and the
    account let go of; the engine still running (``overrides``: its settings)."""
    scenario.configure(profile, replies_poll_seconds=POLL, **overrides)
    provider = Provider()
    task = await scenario.add_task(targets=targets, **MESSAGE)
    async with scenario.running(provider) as engine:
        await finished_and_let_go(scenario, task, provider, engine)
        yield task, provider, engine


def all_answered(scenario: Scenario, task: uuid.UUID) -> Callable[[], Awaitable[bool]]:
    async def answered() -> bool:
        return all(r["replied_at"] is not None for r in await replied(scenario, task))

    return answered


async def sent_times(scenario: Scenario, task: uuid.UUID) -> list[datetime]:
    rows = await replied(scenario, task)
    times = [r["processed_at"] for r in rows]
    assert all(isinstance(t, datetime) for t in times)
    return times  # type: ignore[return-value]


async def test_a_reply_three_hours_after_the_task_ended_is_still_marked(engine_scenario: Scenario) -> None:
    async with after_the_task(engine_scenario) as (task, provider, engine):
        let_go = engine_scenario.clock.now()
        leases = len(provider.leases)

        await engine_scenario.wait_until(all_answered(engine_scenario, task), step=POLL)
        assert not engine.keeper.held  # read, never leased again for the campaign

    rows = await replied(engine_scenario, task)
    sent = await sent_times(engine_scenario, task)
    assert [r["replied_at"] for r in rows] == [t + timedelta(seconds=REPLY_AFTER) for t in sent]
    assert all(t + timedelta(seconds=REPLY_AFTER) > let_go for t in sent)  # they came after the release
    # each read under the platform's lease for a message campaign, given back with nothing used
    reads = provider.leases[leases:]
    assert reads
    assert {(a, purpose) for a, _, purpose in reads} == {(ACCOUNT, LeasePurpose.MESSAGE_CAMPAIGN)}
    given_back = provider.releases[1:]
    assert len(given_back) == len(reads)
    assert all(r.usage == UsageStats() for r in given_back)
    assert await lease_row(engine_scenario) == (None, None)  # and our lease put back as found
    assert engine_scenario.record.actions  # (the campaign's messages, nothing since)
    assert {a.at < let_go for a in engine_scenario.record.actions} == {True}


async def test_a_reply_after_the_watch_window_is_not_read(engine_scenario: Scenario) -> None:
    watch_hours = 1.0  # the task ends some 80 minutes after its first message: every reply comes later
    async with after_the_task(engine_scenario, replies_watch_hours=watch_hours) as (task, provider, _):
        await engine_scenario.clock.sleep(watch_hours * 3600 + 2 * POLL)  # the window is over
        reads = len(provider.leases)
        assert reads > 1  # it was read while the window lasted (nobody had answered yet)
        await engine_scenario.clock.sleep(REPLY_AFTER + 10 * POLL)
        assert len(provider.leases) == reads  # and never after
    rows = await replied(engine_scenario, task)
    with engine_scenario.clock.busy():
        ended = await engine_scenario.pool.fetchval(
            "SELECT completed_at FROM invite_tasks WHERE id = $1", task
        )
    window = timedelta(hours=watch_hours)
    assert all(
        t + timedelta(seconds=REPLY_AFTER) > ended + window for t in await sent_times(engine_scenario, task)
    )
    assert all(r["replied_at"] is None for r in rows)


async def test_an_account_another_replica_holds_is_left_alone(engine_scenario: Scenario) -> None:
    async with after_the_task(engine_scenario) as (task, provider, _):
        leases = len(provider.leases)
        far = engine_scenario.clock.now() + timedelta(days=30)
        with (
            engine_scenario.clock.busy()
        ):  # as replica-b's lease keeper writes it while it drives the account
            await engine_scenario.pool.execute(
                "UPDATE invite_accounts SET lease_owner = 'replica-b', lease_expires_at = $2 WHERE id = $1",
                ACCOUNT,
                far,
            )
        await engine_scenario.clock.sleep(REPLY_AFTER + 4 * POLL)
        assert len(provider.leases) == leases  # not even asked for
        assert all(r["replied_at"] is None for r in await replied(engine_scenario, task))
        assert await lease_row(engine_scenario) == ("replica-b", far)

        # replica-b dies: its lease runs out, and the account is nobody's -- read, and the lease
        # put back as found (its next holder still sees replica-b did not let go of it)
        expired = engine_scenario.clock.now()
        with engine_scenario.clock.busy():
            await engine_scenario.pool.execute(
                "UPDATE invite_accounts SET lease_expires_at = $2 WHERE id = $1", ACCOUNT, expired
            )

        await engine_scenario.wait_until(all_answered(engine_scenario, task), step=POLL)
        assert await lease_row(engine_scenario) == ("replica-b", expired)


async def test_an_account_the_provider_will_not_lease_is_skipped_until_it_will(
    engine_scenario: Scenario,
) -> None:
    async with after_the_task(engine_scenario) as (task, provider, _):
        provider.busy = True  # another service of the platform uses the session
        await engine_scenario.clock.sleep(REPLY_AFTER + 4 * POLL)
        assert all(r["replied_at"] is None for r in await replied(engine_scenario, task))
        assert await lease_row(engine_scenario) == (None, None)  # our lease given back each time
        provider.busy = False

        await engine_scenario.wait_until(all_answered(engine_scenario, task), step=POLL)
    assert await lease_row(engine_scenario) == (None, None)


async def test_an_account_cooling_down_is_not_asked_for_until_its_cooldown_ends(
    engine_scenario: Scenario,
) -> None:
    """A FloodWait left the account cooling down as its task ended: the provider rests it as
    long, so no read asks for it before the cooldown is over -- then its replies are read."""
    async with after_the_task(engine_scenario) as (task, provider, _):
        leases = len(provider.leases)
        until = engine_scenario.clock.now() + timedelta(seconds=REPLY_AFTER + 4 * POLL)
        with engine_scenario.clock.busy():  # as the FloodWait's outcome wrote it
            await engine_scenario.pool.execute(
                "UPDATE invite_accounts SET cooldown_until = $2 WHERE id = $1", ACCOUNT, until
            )
        await engine_scenario.clock.sleep(REPLY_AFTER + 3 * POLL)
        assert len(provider.leases) == leases  # not asked for while it rests
        assert all(r["replied_at"] is None for r in await replied(engine_scenario, task))

        await engine_scenario.wait_until(all_answered(engine_scenario, task), step=POLL)
        assert engine_scenario.clock.now() >= until
        assert len(provider.leases) > leases
    assert await lease_row(engine_scenario) == (None, None)


async def test_a_short_read_holds_the_account_under_an_owner_no_lease_keeper_takes_from(
    engine_scenario: Scenario,
) -> None:
    """While a read holds it, the account's row names the replica's read owner, unexpired."""
    seen: list[tuple[str | None, datetime | None]] = []
    async with after_the_task(engine_scenario, targets=1) as (_, _, engine):

        async def look(strategy: Any) -> str:
            seen.append(await lease_row(engine_scenario))
            return "read"

        assert await engine.short_leases.read(ACCOUNT, look) == "read"
    owner = engine_scenario.settings.replica_id + OWNER_SUFFIX
    ((held_by, until),) = seen
    assert held_by == owner
    assert until is not None
    assert until > engine_scenario.clock.now() - timedelta(seconds=1)


async def test_an_account_a_campaign_wants_is_leased_as_a_read_gives_it_back(
    engine_scenario: Scenario,
) -> None:
    """A new campaign needs the account the replies poller reads (its last task ended). The
    provider would not lease it at first; the lease keeper may ask again a poll later, but its
    next beat is a third of a lease away, and reads hold the account a moment every poll: it
    is leased as the first read after that gives it back -- not at a beat, where a beat keeping
    time with the reads could find it held again and again."""
    quiet = SandboxProfile()
    async with after_the_task(engine_scenario, targets=1, profile=quiet, account_lease_seconds=7200.0) as (
        _,
        provider,
        engine,
    ):
        settings = engine_scenario.settings
        beat = settings.account_lease_seconds / 3
        provider.busy = True
        await engine_scenario.add_task(targets=2, prefix="next", **MESSAGE)

        async def refused() -> bool:  # the keeper knows the task, and was refused its account
            return engine.ctx.registry.serves_anything(ACCOUNT) and provider.refused > 0

        await engine_scenario.wait_until(refused, step=1.0, limit=2 * settings.poll_interval_seconds)
        refused_at = engine_scenario.clock.now()
        provider.busy = False

        async def held() -> bool:
            return ACCOUNT in engine.keeper.held

        await engine_scenario.wait_until(held, step=10.0, limit=beat)
        leased_after = (engine_scenario.clock.now() - refused_at).total_seconds()
        assert settings.poll_interval_seconds <= leased_after <= settings.poll_interval_seconds + POLL + 10


async def test_an_open_invite_link_keeps_its_account_watched(engine_scenario: Scenario) -> None:
    """An account with a one-use invite link neither used nor revoked is worth a poll (held or
    not) whatever its tasks; once the link is used, it is not, and a held one is never unheld."""
    scenario = engine_scenario
    repo = Repository.open(scenario.pool, scenario.clock, scenario.settings.sql_dir)
    now = scenario.clock.now()
    made = now - timedelta(hours=2)
    watch = scenario.settings.replies_watch_hours * 3600
    task = await scenario.add_task(targets=1, status="completed")  # an invite task, long over
    with scenario.clock.busy():
        target = await scenario.pool.fetchval("SELECT id FROM invite_targets WHERE task_id = $1", task)
        await scenario.pool.execute(
            "INSERT INTO invite_accounts (id, user_id, platform) VALUES ($1, $2, 'telegram')", ACCOUNT, TENANT
        )
        await scenario.pool.execute(
            """INSERT INTO invite_links (target_id, task_id, account_id, url, expires_at, created_at)
               VALUES ($1, $2, $3, 'https://t.me/+one', $4, $5)""",
            target,
            task,
            ACCOUNT,
            now + timedelta(days=1),
            made,
        )

        async def watched() -> tuple[list[tuple[str, datetime]], list[tuple[str, str, datetime]]]:
            held = await repo.watched_accounts(account_ids=[ACCOUNT], now=now, watch_seconds=watch)
            unheld = await repo.unheld_watched(driver="sandbox", now=now, watch_seconds=watch, avoid=[])
            return [(w.account_id, w.since) for w in held], [
                (u.account_id, u.user_id, u.since) for u in unheld
            ]

        assert await watched() == ([(ACCOUNT, made)], [(ACCOUNT, TENANT, made)])
        assert await repo.unheld_watched(driver="telegram", now=now, watch_seconds=watch, avoid=[]) == []
        assert (
            await repo.unheld_watched(driver="sandbox", now=now, watch_seconds=watch, avoid=[ACCOUNT]) == []
        )
        await scenario.pool.execute(
            "UPDATE invite_accounts SET lease_owner = 'replica-b', lease_expires_at = $2 WHERE id = $1",
            ACCOUNT,
            now + timedelta(minutes=1),
        )
        assert await watched() == ([(ACCOUNT, made)], [])  # held by replica-b: its poller's
        await scenario.pool.execute(
            "UPDATE invite_links SET joined_at = $2 WHERE target_id = $1", target, now
        )
        assert await watched() == ([], [])
