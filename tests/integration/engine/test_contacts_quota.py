"""+phone targets a day: each is reached by importing the number as a contact first, and the
platform's allocations cap that at contacts_daily_limit 15 (PLATFORM-AS-RUN.md); our own
``DAILY_CONTACTS_QUOTA`` caps it where no provider does. The claim reserves one import per
+phone target in the account's row, so the cap holds on every replica; usernames behind a
full contacts window are still served.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from invite.engine.repository import ClaimingAccount, Repository
from invite.kernel.clock import RealClock
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


NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def _queue(scenario: Scenario, keys: list[str], full: list[str], room: list[str]) -> uuid.UUID:
    """A running task whose queue holds ``keys`` in that order, and its accounts leased by
    replica-a: those in ``full`` have used their contacts window (3 of 3), those in ``room`` not."""
    pool = scenario.pool
    task = await scenario.add_task(targets=0, task_type="send_messages", template="Hi")
    await pool.execute(
        """INSERT INTO invite_targets (task_id, user_identifier, identifier_key, next_attempt_at)
           SELECT $1, k, k, $3::timestamptz - interval '1 hour' + n * interval '1 second'
           FROM unnest($2::text[]) WITH ORDINALITY AS q(k, n)""",
        task,
        keys,
        NOW,
    )
    await pool.execute(
        """INSERT INTO invite_accounts (id, user_id, lease_owner, lease_expires_at, contacts_window_start, contacts_count)
           SELECT id, 'tenant-1', 'replica-a', $2::timestamptz + interval '1 hour',
                  CASE WHEN id = ANY($3::text[]) THEN $2::timestamptz - interval '1 hour' END,
                  CASE WHEN id = ANY($3::text[]) THEN 3 ELSE 0 END
           FROM unnest($1::text[]) id""",
        full + room,
        NOW,
        full,
    )
    await pool.execute(
        "INSERT INTO invite_task_accounts (task_id, account_id, platform) SELECT $1, id, 'telegram' FROM unnest($2::text[]) id",
        task,
        full + room,
    )
    return task


async def _claim(scenario: Scenario, task: uuid.UUID, accounts: list[str]) -> dict[str, str]:
    repo = Repository.open(scenario.pool, RealClock(), scenario.settings.sql_dir)
    result = await repo.claim(
        task_id=task,
        now=NOW,
        replica="replica-a",
        accounts=[ClaimingAccount(a, 40, 0.0) for a in accounts],
        expires_at=NOW + timedelta(seconds=300),
        recontact_days=0,
        contacts_cap=3,
        claim_id=uuid.uuid4(),
    )
    return {row.account_id: row.identifier_key for row in result.claimed}


@pytest.mark.parametrize(
    ("keys", "full", "room", "claimed"),
    [
        # +phone targets at the head do not hold back the usernames behind them
        (["p:+1", "p:+2", "u:a", "u:b", "u:c"], ["acc-a", "acc-b"], [], {"acc-a": "u:a", "acc-b": "u:b"}),
        # the account with room takes the +phone, the full one the username: both act
        (["u:a", "p:+1"], ["acc-b"], ["acc-a"], {"acc-a": "p:+1", "acc-b": "u:a"}),
        # with room and no +phone left for it, an account takes a username
        (["u:a", "u:b"], [], ["acc-a", "acc-b"], {"acc-a": "u:a", "acc-b": "u:b"}),
        # only +phone targets and no room: nothing, and nothing reserved
        (["p:+1", "p:+2"], ["acc-a"], [], {}),
    ],
    ids=["phones-first", "mixed", "room-usernames", "nothing-to-take"],
)
async def test_a_claim_pairs_phones_with_contact_room_and_the_rest_with_the_rest(
    engine_scenario: Scenario, keys: list[str], full: list[str], room: list[str], claimed: dict[str, str]
) -> None:
    task = await _queue(engine_scenario, keys, full, room)
    assert await _claim(engine_scenario, task, sorted(full + room)) == claimed
    rows = await engine_scenario.pool.fetch("SELECT id, contacts_count FROM invite_accounts")
    counts = {row["id"]: row["contacts_count"] for row in rows}
    # one import reserved per +phone target claimed, nothing else counted
    imports = {a: int(claimed.get(a, "").startswith("p:")) for a in room}
    assert counts == {**dict.fromkeys(full, 3), **imports}
