"""The trial's claim (sql/queries/trials.claim) on a real database: the safety net behind the
account coroutine's bucket, across replicas -- each rule refuses with its name and changes
nothing, and a claim that passes them all puts the one target in flight with the quota
reserved, in one commit. A +phone target (reached by importing the number as a contact) also
needs room in the account's contacts window, as in the campaign's claim, and takes one import
there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from invite.engine.repository import Repository
from invite.kernel.clock import Clock, RealClock
from invite.kernel.db import DbConnection, create_pool
from invite.kernel.events import TaskEvent
from invite.kernel.settings import Settings
from invite.platforms.sandbox import SandboxAccounts
from invite.tasks.states import FINISHED
from tests.integration.api import new_tenant
from tests.integration.engine.harness import Scenario, make_task

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOLDER = "replica-a"
CAP, PAUSE = 10, 15.0
CONTACTS = 3  # our cap on the +phone targets an account reaches a day (DAILY_CONTACTS_QUOTA)
PHONE = "+79990001234"


@pytest.fixture
def repo(pool: asyncpg.Pool, settings: Settings) -> Repository:
    return Repository.open(pool, RealClock(), settings.sql_dir)


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, settings)
    try:
        yield pool
    finally:
        await pool.close()


async def _trial(
    pool: asyncpg.Pool, repo: Repository, *, phone: bool = False, **account: Any
) -> tuple[uuid.UUID, uuid.UUID, str]:
    """A draft task of a new tenant with one person (``phone``: a +phone target, reached by
    importing the number as a contact), its account leased by HOLDER (``account`` overrides
    the row), and a trial of the two; (trial, target, account)."""
    tenant = new_tenant()
    task_id = await make_task(pool, targets=1, user_id=tenant, status="draft")
    account_id = f"acc-{tenant}"
    row = {"lease_owner": HOLDER, "lease_expires_at": NOW + timedelta(minutes=5), **account}
    columns = ", ".join(row)
    values = ", ".join(f"${n}" for n in range(3, 3 + len(row)))
    async with pool.acquire() as conn:
        await conn.execute(
            f"INSERT INTO invite_accounts (id, user_id, {columns}) VALUES ($1, $2, {values})",
            account_id,
            tenant,
            *row.values(),
        )
        target_id = await conn.fetchval("SELECT id FROM invite_targets WHERE task_id = $1", task_id)
        if phone:  # as the import keys a phone number (audience/normalise.py)
            await conn.execute(
                """UPDATE invite_targets SET user_identifier = $2::text, identifier_key = 'p:' || $2::text,
                          user_data = jsonb_build_object('phone', $2::text)
                   WHERE id = $1""",
                target_id,
                PHONE,
            )
    trial_id = await repo.request_trial(
        user_id=tenant,
        task_id=task_id,
        target_id=target_id,
        account_id=account_id,
        now=NOW,
        wait_seconds=30.0,
        event=TaskEvent(task_id=str(task_id), type="trial").encode(),
    )
    assert trial_id is not None
    return trial_id, target_id, account_id


async def _claim(repo: Repository, trial_id: uuid.UUID, *, replica: str = HOLDER, at: datetime = NOW) -> Any:
    return await repo.claim_trial(
        trial_id=trial_id,
        now=at,
        replica=replica,
        cap=CAP,
        pause=PAUSE,
        lease_seconds=300.0,
        recontact_days=0,
        contacts_cap=CONTACTS,
        event="{}",
    )


async def _row(conn: DbConnection, query: str, *args: Any) -> asyncpg.Record:
    row = await conn.fetchrow(query, *args)
    assert row is not None
    return row


REFUSALS = [
    ("another replica holds the account", {}, {"replica": "replica-b"}, "account_elsewhere", None),
    ("the lease ran out", {"lease_expires_at": NOW}, {}, "account_elsewhere", None),
    ("the pause since the last action", {"last_action_at": NOW - timedelta(seconds=5)}, {}, "pause", 10.0),
    (
        "the day's quota",
        {"daily_count": CAP, "daily_window_start": NOW - timedelta(hours=1)},
        {},
        "quota",
        23 * 3600.0,
    ),
    ("a cooldown", {"cooldown_until": NOW + timedelta(minutes=2)}, {}, "cooldown", 120.0),
    ("a blocked account", {"status": "blocked"}, {}, "account_blocked", None),
    ("the trial's time is over", {}, {"at": NOW + timedelta(seconds=30)}, "expired", None),
]


@pytest.mark.parametrize(
    ("case", "account", "claim", "rule", "retry_in"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
async def test_each_rule_refuses_by_name_and_nothing_changes(
    pool: asyncpg.Pool,
    repo: Repository,
    case: str,
    account: dict[str, Any],
    claim: dict[str, Any],
    rule: str,
    retry_in: float | None,
) -> None:
    trial_id, target_id, account_id = await _trial(pool, repo, **account)
    async with pool.acquire() as conn:
        before = await _row(
            conn, "SELECT daily_count, last_action_at FROM invite_accounts WHERE id = $1", account_id
        )
        decided = await _claim(repo, trial_id, **claim)
        assert decided.refused == rule
        assert decided.id is None
        target = await _row(
            conn, "SELECT status, attempts, account_id FROM invite_targets WHERE id = $1", target_id
        )
        after = await _row(
            conn, "SELECT daily_count, last_action_at FROM invite_accounts WHERE id = $1", account_id
        )
        trial = await _row(conn, "SELECT state, outcome, retry_at FROM invite_trials WHERE id = $1", trial_id)
    assert tuple(target) == ("pending", 0, None)
    assert tuple(after) == tuple(before)
    assert trial["state"] == ("expired" if rule == "expired" else "refused")
    assert trial["outcome"] == rule
    if retry_in is None:
        assert trial["retry_at"] is None
    else:
        assert trial["retry_at"] == NOW + timedelta(seconds=retry_in)
    assert await _claim(repo, trial_id) is None  # decided once: it no longer waits


@pytest.mark.parametrize("closed", sorted(FINISHED))
async def test_a_finished_task_is_closed_to_trials(pool: asyncpg.Pool, repo: Repository, closed: str) -> None:
    trial_id, target_id, _ = await _trial(pool, repo)
    await pool.execute(
        "UPDATE invite_tasks SET status = $2::text WHERE id = (SELECT task_id FROM invite_trials WHERE id = $1)",
        trial_id,
        closed,
    )
    decided = await _claim(repo, trial_id)
    assert (decided.refused, decided.id) == ("task_closed", None)
    assert await pool.fetchval("SELECT status FROM invite_targets WHERE id = $1", target_id) == "pending"


async def test_a_claim_that_passes_puts_the_one_target_in_flight_with_its_quota(
    pool: asyncpg.Pool, repo: Repository
) -> None:
    trial_id, target_id, account_id = await _trial(
        pool,
        repo,
        last_action_at=NOW - timedelta(seconds=PAUSE),
        daily_count=CAP - 1,
        daily_window_start=NOW - timedelta(hours=1),
    )
    decided = await _claim(repo, trial_id)
    assert decided.refused is None
    assert (decided.id, decided.attempts) == (target_id, 1)
    async with pool.acquire() as conn:
        target = await _row(
            conn,
            "SELECT status, attempts, account_id, lease_owner FROM invite_targets WHERE id = $1",
            target_id,
        )
        account = await _row(
            conn, "SELECT daily_count, last_action_at FROM invite_accounts WHERE id = $1", account_id
        )
        trial = await _row(conn, "SELECT state, attempt, taken_by FROM invite_trials WHERE id = $1", trial_id)
    assert tuple(target) == ("in_flight", 1, account_id, HOLDER)
    assert tuple(account) == (CAP, NOW)
    assert tuple(trial) == ("taken", 1, HOLDER)
    # nobody twice: a second trial of the person waits for nothing while this one is open...
    again = await repo.request_trial(
        user_id=(await pool.fetchval("SELECT user_id FROM invite_trials WHERE id = $1", trial_id)),
        task_id=await pool.fetchval("SELECT task_id FROM invite_trials WHERE id = $1", trial_id),
        target_id=target_id,
        account_id=account_id,
        now=NOW,
        wait_seconds=30.0,
        event="{}",
    )
    assert again is None
    assert await repo.open_trial(target_id=target_id) == trial_id


ACCOUNT_COLUMNS = "daily_count, contacts_count, contacts_window_start, last_action_at"
CONTACTS_FULL = [
    ("our cap", {"contacts_count": CONTACTS}),
    ("the provider's lower limit", {"contacts_count": 2, "contacts_limit": 2}),
]


@pytest.mark.parametrize(("case", "full"), CONTACTS_FULL, ids=[c[0] for c in CONTACTS_FULL])
async def test_a_phone_target_is_refused_when_the_contacts_window_is_full(
    pool: asyncpg.Pool, repo: Repository, case: str, full: dict[str, Any]
) -> None:
    opened = NOW - timedelta(hours=1)
    trial_id, target_id, account_id = await _trial(
        pool, repo, phone=True, contacts_window_start=opened, **full
    )
    async with pool.acquire() as conn:
        before = await _row(conn, f"SELECT {ACCOUNT_COLUMNS} FROM invite_accounts WHERE id = $1", account_id)
        decided = await _claim(repo, trial_id)
        after = await _row(conn, f"SELECT {ACCOUNT_COLUMNS} FROM invite_accounts WHERE id = $1", account_id)
        target = await _row(conn, "SELECT status, attempts FROM invite_targets WHERE id = $1", target_id)
        trial = await _row(conn, "SELECT state, outcome, retry_at FROM invite_trials WHERE id = $1", trial_id)
    assert (decided.refused, decided.id) == ("contacts", None)
    assert tuple(after) == tuple(before)
    assert tuple(target) == ("pending", 0)
    assert tuple(trial) == ("refused", "contacts", opened + timedelta(hours=24))  # when the window closes


@pytest.mark.parametrize(
    ("case", "window", "counted"),
    [
        ("room left in the window", {"contacts_count": CONTACTS - 1, "contacts_window_start": NOW}, CONTACTS),
        (
            "the full window closed",
            {"contacts_count": CONTACTS, "contacts_window_start": NOW - timedelta(hours=24)},
            1,
        ),
    ],
    ids=["room left in the window", "the full window closed"],
)
async def test_a_phone_target_with_room_is_taken_and_its_import_reserved(
    pool: asyncpg.Pool, repo: Repository, case: str, window: dict[str, Any], counted: int
) -> None:
    trial_id, target_id, account_id = await _trial(pool, repo, phone=True, **window)
    decided = await _claim(repo, trial_id)
    assert (decided.refused, decided.id, decided.identifier_key) == (None, target_id, f"p:{PHONE}")
    async with pool.acquire() as conn:
        account = await _row(conn, f"SELECT {ACCOUNT_COLUMNS} FROM invite_accounts WHERE id = $1", account_id)
        status = await conn.fetchval("SELECT status FROM invite_targets WHERE id = $1", target_id)
    opened = window["contacts_window_start"] if counted > 1 else NOW  # a closed window opens anew
    assert tuple(account) == (1, counted, opened, NOW)
    assert status == "in_flight"


async def test_a_username_target_needs_no_contact_room(pool: asyncpg.Pool, repo: Repository) -> None:
    opened = NOW - timedelta(hours=1)
    trial_id, target_id, account_id = await _trial(
        pool, repo, contacts_count=CONTACTS, contacts_window_start=opened
    )
    decided = await _claim(repo, trial_id)
    assert (decided.refused, decided.id) == (None, target_id)
    row = await pool.fetchrow(
        "SELECT contacts_count, contacts_window_start FROM invite_accounts WHERE id = $1", account_id
    )
    assert row is not None
    assert tuple(row) == (CONTACTS, opened)  # nothing imported: the window is as it was


# -- the engine serving trials (a virtual clock, the sandbox driver) ------------------------


async def _ask(
    pool: asyncpg.Pool, clock: Clock, sql_dir: str, task_id: uuid.UUID, account_id: str
) -> uuid.UUID:
    """A trial of the task's one target with ``account_id``, as the request commits it; its target."""
    user_id = await pool.fetchval("SELECT user_id FROM invite_tasks WHERE id = $1", task_id)
    target_id: uuid.UUID = await pool.fetchval("SELECT id FROM invite_targets WHERE task_id = $1", task_id)
    trial_id = await Repository.open(pool, clock, sql_dir).request_trial(
        user_id=user_id,
        task_id=task_id,
        target_id=target_id,
        account_id=account_id,
        now=clock.now(),
        wait_seconds=7200.0,  # beyond the heartbeats (1200 s) that look for it
        event=TaskEvent(task_id=str(task_id), type="trial").encode(),
    )
    assert trial_id is not None
    return target_id


async def _status(pool: asyncpg.Pool, clock: Clock, target_id: uuid.UUID) -> str:
    with clock.busy():
        status: str = await pool.fetchval("SELECT status FROM invite_targets WHERE id = $1", target_id)
    return status


async def _succeeded(pool: asyncpg.Pool, clock: Clock, task_id: uuid.UUID) -> int:
    with clock.busy():
        query = "SELECT count(*) FROM invite_targets WHERE task_id = $1 AND status = 'succeeded'"
        return int(await pool.fetchval(query, task_id))


async def _waiting_claim(pool: asyncpg.Pool) -> int:
    """The backend of the trial's claim once it waits for a lock (in real time: the virtual
    clock stands still while the engine waits on the database). Known by its ``-- args:``
    line: pg_stat_activity keeps only the text's first kilobyte."""
    query = """SELECT pid FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock'
                 AND query LIKE '-- args: $1 trial_id, $2 now, $3 replica,%'"""
    async with asyncio.timeout(30):
        while True:
            pid = await pool.fetchval(query)
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.05)


async def test_a_database_error_serving_a_trial_leaves_the_account_to_its_campaign(
    engine_scenario: Scenario,
) -> None:
    """The trial's claim dies with its connection (the database terminates it): the account's
    coroutine goes on with the campaign, keeps its lease, and serves the trial later."""
    s = engine_scenario
    campaign = await s.add_task(targets=40)
    draft = await s.add_task(targets=1, status="draft", prefix="trial")
    account = "sandbox-tenant-1-1"
    provider = SandboxAccounts(1)
    async with s.running(provider):
        await s.wait_until(lambda: _has_acted(s, campaign), step=5.0)
        async with s.pool.acquire() as blocker, blocker.transaction():
            # the claim locks the trial's target after the trial: it waits here until its backend is gone
            await blocker.execute("SELECT 1 FROM invite_targets WHERE task_id = $1 FOR NO KEY UPDATE", draft)
            target = await _ask(s.pool, s.clock, s.settings.sql_dir, draft, account)
            await s.pool.execute("SELECT pg_terminate_backend($1)", await _waiting_claim(s.pool))
        acted = await _succeeded(s.pool, s.clock, campaign)
        await s.wait_until(lambda: _served(s, target), step=10.0, limit=4 * 3600.0)
        await s.wait_until(lambda: _more(s, campaign, acted), step=10.0, limit=86400.0)
        releases = list(provider.releases)
    assert [lease[0] for lease in provider.leases] == [account]  # driven throughout: never let go
    assert releases == []
    trial = await s.pool.fetchrow("SELECT state, taken_by FROM invite_trials WHERE target_id = $1", target)
    assert trial is not None
    assert tuple(trial) == ("taken", "replica-a")


async def _has_acted(s: Scenario, task_id: uuid.UUID) -> bool:
    return await _succeeded(s.pool, s.clock, task_id) > 0


async def _more(s: Scenario, task_id: uuid.UUID, than: int) -> bool:
    return await _succeeded(s.pool, s.clock, task_id) > than


async def _served(s: Scenario, target_id: uuid.UUID) -> bool:
    return await _status(s.pool, s.clock, target_id) == "succeeded"


async def test_the_account_a_trial_waits_for_is_leased_before_the_campaign_fills_the_replica(
    engine_scenario: Scenario,
) -> None:
    """A replica that may drive two accounts, a campaign with three free ones, and a test
    invite waiting for an account nobody holds (another tenant's): that one is leased first
    and served, the campaign's take the room left."""
    s = engine_scenario
    campaign = await s.add_task(targets=40)
    async with s.running(3):  # the campaign's accounts attached (activation), then let go
        await s.wait_until(lambda: _has_acted(s, campaign), step=5.0)
    draft = await s.add_task(targets=1, user_id="tenant-2", status="draft", prefix="trial")
    account = "sandbox-tenant-2-1"
    await s.pool.execute("INSERT INTO invite_accounts (id, user_id) VALUES ($1, 'tenant-2')", account)
    target = await _ask(s.pool, s.clock, s.settings.sql_dir, draft, account)
    s.configure(max_accounts_per_replica=2)
    async with s.running(3):
        await s.wait_until(lambda: _served(s, target), step=10.0, limit=4 * 3600.0)
        held = await s.pool.fetchval("SELECT count(*) FROM invite_accounts WHERE lease_owner = 'replica-a'")
    assert held <= 2
    trial = await s.pool.fetchrow("SELECT state, taken_by FROM invite_trials WHERE target_id = $1", target)
    assert trial is not None
    assert tuple(trial) == ("taken", "replica-a")
