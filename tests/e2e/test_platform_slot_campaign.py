"""The service started as the platform starts its invite service, through a campaign with FloodWaits.

The settings come from the platform's compose environment (POSTGRES_*, PLATFORM=content-factory,
no DATABASE_URL); the database already holds the old service's tables, and the service's
start-up migration and engine run against it (the engine and GET /accounts' service in the
test's own loop, so that one virtual clock drives them); the Integration Service is
the contract tests' stand-in answering as the platform does when run (its accounts list
breaks after the first FloodWait time, its preferred allocation hands out resting accounts,
a release with an error is handled as a new one); the sandbox driver answers FloodWaits of
an hour. Everything runs on one virtual clock, the platform's too: days pass in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from invite.accounts.service import AccountsService
from invite.kernel.clock import VirtualClock
from invite.kernel.db import migrate
from invite.kernel.settings import load_settings
from invite.wiring import build_engine, open_accounts, strategies_from_settings
from tests.conftest import ADMIN_URL
from tests.fakeserver import FakeServer, Reply, Request
from tests.integration.engine.harness import engine_pool, make_task, task_status, wait_until
from tests.integration.test_integration_client import (
    A1,
    A2,
    SECRET,
    TENANT,
    Account,
    IntegrationService,
    secret,
)
from tests.integration.test_platform_slot import old_service_database

pytestmark = pytest.mark.slow

FLOOD_SECONDS = 3600
GROUP = "https://t.me/Interop_Grp"
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class Rest:
    account_id: str
    start: datetime  # naive UTC, the platform's
    until: datetime


class Platform(IntegrationService):
    """Notes every rest the platform puts on an account, and when each account was allocated."""

    def __init__(self, server: FakeServer, clock: VirtualClock) -> None:
        super().__init__(server, clock)
        self.rested: list[Rest] = []
        self.allocated: list[tuple[str, datetime]] = []
        self.purposes: list[tuple[str, datetime]] = []  # each allocation's purpose, and when

    def allocate(self, request: Request) -> Reply:
        body = request.json()
        self.allocated.append((body["preferred_account_id"], self.now()))
        self.purposes.append((body["purpose"], self.now()))
        return super().allocate(request)

    def _handle(self, account: Account, error_type: str, message: str, context: Any = None) -> None:
        super()._handle(account, error_type, message, context)
        until = account.flood_wait_until if error_type == "flood_wait" else account.blocked_until
        if until is not None:
            self.rested.append(Rest(account.id, self.now(), until))


def platform_environment(database: str, integration_url: str) -> dict[str, str]:
    admin = urlsplit(ADMIN_URL)
    return {
        "POSTGRES_SERVER": admin.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(admin.port or 5432),
        "POSTGRES_USER": admin.username or "postgres",
        **({"POSTGRES_PASSWORD": admin.password} if admin.password else {}),
        "POSTGRES_DB": database,
        "PLATFORM": "content-factory",
        "INTEGRATION_SERVICE_URL": integration_url,  # the stand-in, not http://integration-service:8000
        "JWT_SECRET": SECRET,
        "TELEGRAM_DRIVER": "sandbox",
        "SANDBOX_PROFILE": f'{{"flood_wait_rate": 0.12, "flood_wait_seconds": [{FLOOD_SECONDS}]}}',
        "SANDBOX_SEED": "3",
        "LOG_JSON": "false",
        "DB_POOL_MIN": "2",
        # beats every few hours of simulated time, so that days pass in seconds
        "POLL_INTERVAL_SECONDS": "600",
        "ACCOUNT_LEASE_SECONDS": "14400",
        "INTEGRATION_LEASE_MINUTES": "240",
    }


async def test_a_campaign_in_the_platforms_slot_keeps_its_limits_and_its_rests() -> None:
    clock = VirtualClock()
    async with old_service_database() as database:
        with FakeServer() as server:
            platform = Platform(server, clock)
            settings = load_settings(platform_environment(database, server.url))
            assert settings.database_url is not None
            assert not settings.embedded_database
            # what the service does at start-up: migrate (into its own schema), then run
            conn = await asyncpg.connect(settings.database_url)
            try:
                await migrate(conn, settings.sql_dir, settings.db_schema)
            finally:
                await conn.close()
            async with (
                engine_pool(settings) as pool,
                open_accounts(settings, secret) as accounts,
            ):
                service = AccountsService(pool, accounts, settings, clock, TENANT)
                listed: list[set[str]] = []

                async def accounts_listed() -> None:  # what GET /accounts answers
                    with clock.busy():
                        listed.append({view.id for view in (await service.list_accounts()).accounts})

                strategies = await strategies_from_settings(settings, clock)
                engine = build_engine(pool, settings, clock, strategies=strategies, accounts=accounts)
                invites = await make_task(pool, targets=60, user_id=TENANT, group=GROUP)
                await engine.start()
                try:

                    async def flood_waited() -> bool:
                        await accounts_listed()
                        return bool(platform.rested)

                    await wait_until(clock, flood_waited, step=1800, real_timeout=120)
                    # the platform's own list is broken now; a new campaign starts all the same
                    assert any(a.flood_wait_until for a in platform.accounts.values())
                    messages = await make_task(
                        pool, targets=5, user_id=TENANT, task_type="send_messages", template="Hi {first_name}"
                    )

                    async def both_done() -> bool:
                        await accounts_listed()
                        done = [await task_status(pool, clock, task) for task in (invites, messages)]
                        return done == ["completed", "completed"]

                    await wait_until(clock, both_done, step=3600, real_timeout=240)

                    # a last message task: once it ended and its accounts were let go of, their
                    # replies are read for a day after, each under an allocation of its own
                    last = await make_task(
                        pool,
                        targets=2,
                        user_id=TENANT,
                        task_type="send_messages",
                        template="Hi {first_name}",
                        prefix="last",
                    )

                    async def last_ended_and_let_go() -> bool:
                        return await task_status(pool, clock, last) == "completed" and not engine.keeper.held

                    await wait_until(clock, last_ended_and_let_go, step=600, real_timeout=120)
                    reads_from = (len(platform.purposes), len(platform.releases))
                    await clock.sleep(4 * 3600)
                finally:
                    await engine.stop()
                log = await pool.fetch(
                    "SELECT account_id, task_id, status, created_at FROM invite_execution_logs ORDER BY created_at"
                )
                old_rows = await pool.fetchval("SELECT count(*) FROM public.invite_tasks")

    acted = [r for r in log if r["status"] in ("success", "flood_wait")]
    assert {r["account_id"] for r in acted} == {A1, A2}
    assert all(ids >= {A1, A2} for ids in listed)  # the accounts list kept working
    assert old_rows == 1  # the old service's tables untouched
    # no account past the allocation's 30 a day, nor 15 a day into the one channel
    for account in (A1, A2):
        times = [r["created_at"] for r in acted if r["account_id"] == account]
        invited = [r["created_at"] for r in acted if r["account_id"] == account and r["task_id"] == invites]
        for start in times:
            assert sum(start <= t < start + DAY for t in times) <= 30
        for start in invited:
            assert sum(start <= t < start + DAY for t in invited) <= 15
    # the platform's rests are as long as the FloodWait and its minute, never cut short by a
    # release repeating the event; nobody was driven while the platform rested them
    flood_waits = [r for r in platform.errors if r["error_type"] == "flood_wait"]
    assert flood_waits
    assert len(platform.errors) == len(flood_waits)  # each reported once, by handle-error
    assert all(rest.until - rest.start == timedelta(seconds=FLOOD_SECONDS + 60) for rest in platform.rested)
    assert all(stats["usage_stats"]["success"] for _, stats in platform.releases)
    assert sum(a.error_count for a in platform.accounts.values()) == len(flood_waits)
    for rest in platform.rested:
        start, until = (moment.replace(tzinfo=UTC) for moment in (rest.start, rest.until))
        during = [r for r in log if r["account_id"] == rest.account_id and start < r["created_at"] < until]
        asked = [
            at
            for account, at in platform.allocated
            if account == rest.account_id and rest.start < at < rest.until
        ]
        assert len(asked) <= 1, f"{rest.account_id} asked for {len(asked)} times while resting"  # a renewal
        assert during == [], f"{rest.account_id} driven while the platform rested it: {rest} {during}"
    # the reads after the last task: message-campaign allocations (counted above among those
    # asked for while the platform rested an account), released with nothing used, none left
    reads = platform.purposes[reads_from[0] :]
    assert reads, "no account read after the last task ended"
    assert {purpose for purpose, _ in reads} == {"message_campaign"}
    assert all(
        stats["usage_stats"]["success"]
        and stats["usage_stats"]["invites_sent"] == stats["usage_stats"]["messages_sent"] == 0
        for _, stats in platform.releases[reads_from[1] :]
    )
    assert all(account.locked_by is None for account in platform.accounts.values())
