"""+phone targets a day: each is reached by importing the number as a contact first, and the
platform's allocations cap that at contacts_daily_limit 15 (PLATFORM-AS-RUN.md); our own
``DAILY_CONTACTS_QUOTA`` caps it where no provider does. The claim reserves one import per
+phone target in the account's row, so the cap holds on every replica; usernames behind a
full contacts window are still served.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

from tests.integration.engine.harness import Scenario
from tests.integration.engine.test_platform_leases import platform_of, running
from tests.integration.test_integration_client import A1, TENANT

DAY = timedelta(hours=24)
SLOW_BEATS = {"integration_lease_minutes": 240, "account_lease_seconds": 14400.0}


async def _add_phones(pool: asyncpg.Pool, task_id: uuid.UUID, count: int) -> None:
    await pool.execute(
        """INSERT INTO invite_targets (task_id, user_identifier, identifier_key, user_data)
           SELECT $1, '+7999000' || lpad(g::text, 4, '0'), 'p:+7999000' || lpad(g::text, 4, '0'),
                  jsonb_build_object('phone', '+7999000' || lpad(g::text, 4, '0'))
           FROM generate_series(1, $2) g""",
        task_id,
        count,
    )


async def _actions(scenario: Scenario, task_id: uuid.UUID) -> list[asyncpg.Record]:
    """The task's successful actions: who acted, on whom, when."""
    with scenario.clock.busy():
        return await scenario.pool.fetch(
            """SELECT l.account_id, g.identifier_key, l.created_at
               FROM invite_execution_logs l JOIN invite_targets g ON g.id = l.target_id
               WHERE l.task_id = $1 AND l.status = 'success' ORDER BY l.created_at""",
            task_id,
        )


def _most_in_a_day(times: list[datetime]) -> int:
    return max((sum(start <= t < start + DAY for t in times) for start in times), default=0)


async def test_the_allocations_contacts_limit_holds_and_usernames_go_on(engine_scenario: Scenario) -> None:
    with platform_of(engine_scenario, **SLOW_BEATS) as platform:
        task = await engine_scenario.add_task(
            targets=10,
            user_id=TENANT,
            task_type="send_messages",
            template="Hello {first_name}",
            settings={"account_ids": [A1]},
        )
        await _add_phones(engine_scenario.pool, task, 30)
        async with running(engine_scenario):

            async def a_day_and_more() -> bool:  # the 16th +phone only in the next 24 h window
                done = await _actions(engine_scenario, task)
                return sum(str(r["identifier_key"]).startswith("p:") for r in done) >= 16

            await engine_scenario.wait_until(a_day_and_more, step=3600)
            row = await engine_scenario.pool.fetchrow(
                "SELECT contacts_limit, contacts_count FROM invite_accounts WHERE id = $1", A1
            )
        done = await _actions(engine_scenario, task)

    assert row is not None
    assert row["contacts_limit"] == 15  # the allocation's contacts_daily_limit
    phones = [r["created_at"] for r in done if r["identifier_key"].startswith("p:")]
    usernames = [r["created_at"] for r in done if r["identifier_key"].startswith("u:")]
    assert _most_in_a_day(phones) == 15
    # the ten usernames were not held back behind the full contacts window of the first day
    assert len(usernames) == 10
    assert max(usernames) < phones[0] + DAY
    # the platform hears of every number imported, in the releases' usage
    assert sum(body["usage_stats"]["contacts_added"] for _, body in platform.releases) == len(phones)


async def test_our_own_cap_holds_across_two_replicas(engine_scenario: Scenario) -> None:
    engine_scenario.configure(daily_contacts_quota=3, account_lease_seconds=600.0)
    task = await engine_scenario.add_task(targets=0, task_type="send_messages", template="Hello")
    await _add_phones(engine_scenario.pool, task, 24)
    async with (
        engine_scenario.replica(2, replica_id="replica-a"),
        engine_scenario.replica(2, replica_id="replica-b"),
    ):

        async def two_days() -> bool:
            return len(await _actions(engine_scenario, task)) >= 8

        await engine_scenario.wait_until(two_days, step=3600)
    done = await _actions(engine_scenario, task)

    by_account: dict[str, list[datetime]] = {}
    for r in done:
        by_account.setdefault(r["account_id"], []).append(r["created_at"])
    assert by_account
    for times in by_account.values():  # never more than 3 imports in any 24 h, whichever replica
        assert _most_in_a_day(times) <= 3
    assert len({r["identifier_key"] for r in done}) == len(done)  # nobody twice
