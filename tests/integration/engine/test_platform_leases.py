"""The platform's leases on accounts, as the engine keeps them: leased for the right purpose,
renewed before they run out, and an account whose lease the platform will not renew is let go.

The engine runs on a virtual clock with the sandbox driver for the actions, and the real
Integration Service client against the contract tests' Integration Service on loopback HTTP
(it answers allocate with a 30-minute lease and refreshes its holder's lock on a renewal, as
the platform does), on the engine's clock. This stand-in also notes when each allocate came
and whether it came from the holder (a renewal), and can refuse an account.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import asyncpg

from invite.integrations.cache import MemoryCache
from invite.integrations.integration import integration_from_settings
from invite.kernel.clock import VirtualClock
from invite.platforms.base import AccountEvent
from tests.fakeserver import FakeServer, Reply, Request
from tests.integration.engine.harness import Scenario
from tests.integration.test_integration_client import A1, A2, TENANT, IntegrationService, secret

PLATFORM_LEASE = timedelta(minutes=30)  # integration_lease_minutes, as the engine asks for it


@dataclass(frozen=True)
class Allocate:
    at: datetime  # on the engine's clock
    account_id: str
    purpose: str
    renewing: bool  # asked by the service that holds the account
    status: int


class Platform(IntegrationService):
    def __init__(self, server: FakeServer, clock: VirtualClock) -> None:
        super().__init__(server, clock)
        self.allocates: list[Allocate] = []
        self.refused: set[str] = set()  # accounts the platform no longer hands out (resting, say)

    def allocate(self, request: Request) -> Reply:
        body = request.json()
        account = self.accounts[body["preferred_account_id"]]
        renewing = account.locked_by == body["service_name"]
        if account.id in self.refused:
            reply = Reply(404, json={"detail": "No available accounts found for the specified criteria"})
        else:
            reply = super().allocate(request)
        at = self.now().replace(tzinfo=UTC)
        self.allocates.append(Allocate(at, account.id, body["purpose"], renewing, reply.status))
        return reply

    def of(self, account_id: str) -> list[Allocate]:
        return [a for a in self.allocates if a.account_id == account_id]


@contextmanager
def platform_of(scenario: Scenario, **overrides: Any) -> Iterator[Platform]:
    """A fresh platform on loopback, whose accounts the scenario's engines lease (its settings
    ``engine_settings``'s with these overrides)."""
    with FakeServer() as server:
        scenario.configure(integration_service_url=server.url, **overrides)
        yield Platform(server, scenario.clock)


@asynccontextmanager
async def running(scenario: Scenario) -> AsyncIterator[None]:
    """The scenario's engine, its accounts leased from the platform by the real client."""
    accounts = integration_from_settings(scenario.settings, secret, MemoryCache())
    assert accounts is not None
    try:
        async with scenario.running(accounts):
            yield
    finally:
        await accounts.aclose()


async def test_the_platform_lease_is_renewed_before_it_runs_out_and_the_account_keeps_working(
    engine_scenario: Scenario,
) -> None:
    # the engine's own heartbeat (a third of 2 h) would come after the platform's lease ran out
    with platform_of(engine_scenario, account_lease_seconds=7200.0) as platform:
        task = await engine_scenario.add_task(targets=6, user_id=TENANT, settings={"account_ids": [A1]})
        async with running(engine_scenario):
            await engine_scenario.wait_for_status(task, "completed")
        log = await engine_scenario.execution_log()

    allocates = platform.of(A1)
    held = [a for a in allocates if a.status == 200]  # the first lease, then each renewal
    assert held == allocates
    assert not allocates[0].renewing
    assert all(a.purpose == "invite_campaign" for a in allocates)
    assert [a.renewing for a in allocates[1:]] == [True] * (len(held) - 1)
    assert len(held) >= 5  # hours of pacing: renewed again and again
    for before, after in pairwise(held):
        # when a third of the lease is left, never after it ran out
        assert PLATFORM_LEASE * 2 / 3 <= after.at - before.at < PLATFORM_LEASE
    # driven all along, long after the first lease would have run out
    assert {row["account_id"] for row in log} == {A1}
    assert [row["status"] for row in log] == ["success"] * 6
    assert max(row["created_at"] for row in log) > held[0].at + 3 * PLATFORM_LEASE
    # never let go in between: the one release has it all
    usage = [stats["usage_stats"]["invites_sent"] for account_id, stats in platform.releases]
    assert usage == [6]
    assert platform.accounts[A1].locked_by is None


async def test_an_account_whose_lease_the_platform_refuses_to_renew_stops_and_is_released(
    engine_scenario: Scenario,
) -> None:
    with platform_of(engine_scenario) as platform:
        task = await engine_scenario.add_task(targets=8, user_id=TENANT)  # both usable accounts serve it
        async with running(engine_scenario):

            async def a1_acted() -> bool:
                return any(row["account_id"] == A1 for row in await engine_scenario.execution_log())

            await engine_scenario.wait_until(a1_acted, step=60)
            platform.refused.add(A1)  # e.g. the platform rests it: no renewal
            await engine_scenario.wait_for_status(task, "completed")
        log = await engine_scenario.execution_log()

    [refusal] = [a for a in platform.of(A1) if a.renewing]
    assert refusal.status == 404
    assert refusal.at - platform.of(A1)[0].at >= PLATFORM_LEASE * 2 / 3
    # not driven after the refusal; the other account finished the campaign
    a1_actions = [row for row in log if row["account_id"] == A1]
    assert a1_actions
    assert all(row["created_at"] <= refusal.at for row in a1_actions)
    assert any(row["account_id"] == A2 and row["created_at"] > refusal.at for row in log)
    assert [row["status"] for row in log] == ["success"] * 8
    # released, with what it did under the lease
    a1_releases = [
        stats["usage_stats"]["invites_sent"] for account_id, stats in platform.releases if account_id == A1
    ]
    assert a1_releases == [len(a1_actions)]
    # a later heartbeat asked for it again, as a new lease
    later = [a for a in platform.of(A1) if a.at > refusal.at and not a.renewing]
    assert later
    assert all(a.status == 404 for a in later)


async def test_the_lease_purpose_is_an_invite_campaign_when_the_account_serves_an_invite_task(
    engine_scenario: Scenario,
) -> None:
    with platform_of(engine_scenario) as platform:
        invites = await engine_scenario.add_task(targets=5, user_id=TENANT, settings={"account_ids": [A1]})
        messages = await engine_scenario.add_task(
            targets=5,
            user_id=TENANT,
            task_type="send_messages",
            template="Hello {first_name}!",
            prefix="msg",
            settings={"account_ids": [A1, A2]},
        )
        async with running(engine_scenario):
            await engine_scenario.wait_for_status(invites, "completed")
            await engine_scenario.wait_for_status(messages, "completed")
        log = await engine_scenario.execution_log()

    # A2 serves messages only; A1 serves both, so it invites under an invite campaign's lease
    # (the tasks start one after the other: it may have been leased for messages first; after
    # they end, the replies poller's short reads lease it for messages again: followup.py)
    assert {a.purpose for a in platform.of(A2)} == {"message_campaign"}
    done = max(row["created_at"] for row in log)
    assert [a for a in platform.of(A1) if a.at <= done][-1].purpose == "invite_campaign"
    _invites_only_under_an_invite_lease(platform, log, invites)
    assert [row["status"] for row in log] == ["success"] * 10


async def test_an_account_leased_for_messages_is_leased_anew_before_it_invites(
    engine_scenario: Scenario,
) -> None:
    with platform_of(engine_scenario) as platform:
        messages = await engine_scenario.add_task(
            targets=6,
            user_id=TENANT,
            task_type="send_messages",
            template="Hello {first_name}!",
            prefix="msg",
            settings={"account_ids": [A1]},
        )
        async with running(engine_scenario):

            async def a1_sent() -> bool:
                return any(row["account_id"] == A1 for row in await engine_scenario.execution_log())

            await engine_scenario.wait_until(a1_sent, step=60)
            with engine_scenario.clock.busy():  # time holds while the engine hears of the new task
                invites = await engine_scenario.add_task(
                    targets=3, user_id=TENANT, settings={"account_ids": [A1]}
                )
                added = engine_scenario.clock.now()
                await engine_scenario.notify(invites, "running")
                await asyncio.sleep(0.3)
            await engine_scenario.wait_for_status(invites, "completed")
            await engine_scenario.wait_for_status(messages, "completed")
        log = await engine_scenario.execution_log()

    allocates = [a for a in platform.of(A1) if a.status == 200]
    assert allocates[0].purpose == "message_campaign"
    anew = next(a for a in allocates if a.purpose == "invite_campaign")
    assert anew.renewing  # the same holder's lease, not let go in between
    # at once, not when the lease is next due (a third of it left)
    assert anew.at - added < timedelta(minutes=1)
    assert anew.at < allocates[0].at + PLATFORM_LEASE * 2 / 3
    _invites_only_under_an_invite_lease(platform, log, invites)
    assert sum(row["task_id"] == invites for row in log) == 3
    assert [row["status"] for row in log] == ["success"] * 9


def _invites_only_under_an_invite_lease(
    platform: Platform, log: list[asyncpg.Record], invites: uuid.UUID
) -> None:
    """Every invite by A1 came after the platform leased it for an invite campaign."""
    leased = min(a.at for a in platform.of(A1) if a.status == 200 and a.purpose == "invite_campaign")
    invited = [row for row in log if row["task_id"] == invites]
    assert invited
    assert all(row["created_at"] >= leased for row in invited)


async def test_no_read_asks_the_platform_for_an_account_it_rests(engine_scenario: Scenario) -> None:
    """A1's message task has ended and A1 was let go of; its replies are read under short
    leases (followup.py). A FloodWait rests it now, at the platform and in our row: no read
    asks for it while the rest lasts -- the platform would hand it out anyway, the preferred
    allocation ignores the status (PLATFORM-AS-RUN.md) -- and the reads go on after."""
    poll = 300.0
    with platform_of(engine_scenario, replies_poll_seconds=poll) as platform:
        task = await engine_scenario.add_task(
            targets=2,
            user_id=TENANT,
            task_type="send_messages",
            template="Hello {first_name}!",
            prefix="msg",
            settings={"account_ids": [A1]},
        )
        async with running(engine_scenario):
            await engine_scenario.wait_for_status(task, "completed")

            async def let_go() -> bool:
                with engine_scenario.clock.busy():
                    owner = await engine_scenario.pool.fetchval(
                        "SELECT lease_owner FROM invite_accounts WHERE id = $1", A1
                    )
                return owner is None and platform.accounts[A1].locked_by is None

            await engine_scenario.wait_until(let_go, step=60)
            campaign = len(platform.of(A1))

            async def read() -> bool:  # under a short lease of its own, once let go of
                return any(a.status == 200 for a in platform.of(A1)[campaign:])

            await engine_scenario.wait_until(read, step=poll)
            reporter = integration_from_settings(engine_scenario.settings, secret, MemoryCache())
            assert reporter is not None
            try:  # the FloodWait, as the platform hears of it and our outcome keeps it
                with engine_scenario.clock.busy():
                    await reporter.report(
                        A1, TENANT, AccountEvent.FLOOD_WAIT, "flood_wait: FLOOD_WAIT_X (7200 s)"
                    )
            finally:
                await reporter.aclose()
            with engine_scenario.clock.busy():
                until = platform.accounts[A1].flood_wait_until
                assert until is not None
                await engine_scenario.pool.execute(
                    "UPDATE invite_accounts SET cooldown_until = $2 WHERE id = $1",
                    A1,
                    until.replace(tzinfo=UTC),
                )
            asked = len(platform.of(A1))
            rest = (until - platform.now()).total_seconds()
            await engine_scenario.clock.sleep(rest - poll)
            assert len(platform.of(A1)) == asked  # not asked for while it rests
            await engine_scenario.clock.sleep(3 * poll)
            after = platform.of(A1)[asked:]
        assert after, "not read again once the rest was over"
        assert {(a.purpose, a.status) for a in after} == {("message_campaign", 200)}
        assert platform.accounts[A1].locked_by is None
