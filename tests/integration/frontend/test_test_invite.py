"""The Mailing page's test-invite: one real action for one target with one account, within every
quota, served by whichever engine replica drives the account -- through the gateway, on a
real database, with the sandbox driver (nobody refuses here: the answer is the rules')."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import httpx
import msgspec
import pytest
import pytest_asyncio

from invite.kernel.auth import issue_token
from invite.kernel.clock import RealClock
from invite.kernel.settings import Settings
from invite.platforms.sandbox import SandboxAccounts, SandboxFactory, SandboxProfile
from tests.integration.api import new_tenant
from tests.integration.engine.harness import running_replica
from tests.integration.frontend.conftest import SECRET, create_body, ok, people_csv
from tests.integration.frontend.page import Page, page_world

pytestmark = pytest.mark.asyncio(loop_scope="module")

GROUP = "https://t.me/Trial_Group"
WAIT = 4.0  # TRIAL_WAIT_SECONDS here: the slow task's 45 s pause is far beyond it


class Trials:
    def __init__(self, page: Page, settings: Settings, tenant: str, db: asyncpg.Connection) -> None:
        self.page, self.settings, self.tenant, self.db = page, settings, tenant, db

    def account(self, n: int) -> str:
        return f"sandbox-{self.tenant}-{n}"

    async def task(self, people: list[str], *, pause: float = 1.0, message: str | None = None) -> str:
        body = create_body(
            [self.account(n) for n in (1, 2, 3)], group=None if message else GROUP, message=message
        )
        body["delay_between_invites"] = body["settings"]["delay_between_invites"] = pause
        task_id: str = ok(await self.page.call("POST", "/tasks/", body))["id"]
        imported = await self.page.upload(
            f"/tasks/{task_id}/import/file", "people.csv", people_csv(people), "f"
        )
        assert ok(imported)["imported_count"] == len(people)
        return task_id

    async def targets(self, task_id: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT id FROM invite_targets WHERE task_id = $1 ORDER BY seq", uuid.UUID(task_id)
        )
        return [str(row["id"]) for row in rows]

    async def trial(self, task_id: str, target: str, account: str | None) -> httpx.Response:
        query = f"target_id={target}" + (f"&account_id={account}" if account else "")
        return await self.page.call("POST", f"/tasks/{task_id}/test-invite?{query}")

    async def target(self, target: str) -> asyncpg.Record:
        row = await self.db.fetchrow(
            "SELECT status, outcome, attempts, account_id, lease_owner FROM invite_targets WHERE id = $1",
            uuid.UUID(target),
        )
        assert row is not None
        return row

    async def logged(self, target: str) -> int:
        return int(
            await self.db.fetchval(
                "SELECT count(*) FROM invite_execution_logs WHERE target_id = $1", uuid.UUID(target)
            )
        )

    async def used(self, account: str) -> int:
        return int(
            await self.db.fetchval("SELECT daily_count FROM invite_accounts WHERE id = $1", account) or 0
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trials(database_url: str) -> AsyncIterator[Trials]:
    tenant = new_tenant()
    settings = Settings(
        database_url=database_url,
        jwt_secret=SECRET,
        log_json=False,
        log_level="WARNING",
        db_pool_min=2,
        engine_enabled=False,  # an API replica: the engines are other processes' (engine below)
        sandbox_accounts_per_tenant=3,
        sandbox_profile=json.dumps({}),
        poll_interval_seconds=0.2,
        min_pause_seconds=1.0,
        trial_wait_seconds=WAIT,
    )
    db = await asyncpg.connect(database_url)
    try:
        async with page_world(settings, tenant) as (page, _app, _url, _gateway):
            yield Trials(page, settings, tenant, db)
    finally:
        await db.close()


@asynccontextmanager
async def engine(
    settings: Settings, replica: str, profile: SandboxProfile | None = None
) -> AsyncIterator[None]:
    """An engine replica on the same database (another process, as in production)."""
    mine = msgspec.structs.replace(settings, engine_enabled=True, replica_id=replica)
    clock = RealClock()
    factory = SandboxFactory.from_settings(mine, clock, profile=profile)
    async with running_replica(mine, clock, factory, SandboxAccounts.from_settings(mine)):
        yield


async def held_by(trials: Trials, owner: str) -> None:
    """Until ``owner``'s lease keeper has leased the tenant's accounts."""
    async with asyncio.timeout(15):
        while True:
            query = "SELECT count(*) FROM invite_accounts WHERE user_id = $1 AND lease_owner = $2"
            if await trials.db.fetchval(query, trials.tenant, owner):
                return
            await asyncio.sleep(0.1)


def replica() -> str:
    return f"engine-{uuid.uuid4().hex[:6]}"


async def test_a_draft_invite_task_invites_one_person_once(trials: Trials) -> None:
    task_id = await trials.task(["ann_trial", "bob_trial"])
    first, second = await trials.targets(task_id)
    account = trials.account(1)
    before = await trials.used(account)
    async with engine(trials.settings, replica()):
        body = ok(await trials.trial(task_id, first, account))
        assert body["success"] is True
        assert body["state"] == "done"
        assert body["outcome"] == "success"
        assert body["result_status"] == "SUCCESS"
        assert body["status"] == "succeeded"
        assert (body["task_id"], body["target_id"], body["account_id"]) == (task_id, first, account)
        assert body["message"]
        again = await trials.trial(task_id, first, account)  # nobody twice
    assert again.status_code == 409, again.text
    assert "already" in again.json()["detail"]
    row = await trials.target(first)
    assert (row["status"], row["outcome"], row["attempts"], row["account_id"]) == (
        "succeeded",
        "success",
        1,
        account,
    )
    assert await trials.logged(first) == 1
    assert await trials.used(account) == before + 1
    assert (await trials.target(second))["status"] == "pending"  # only the one asked for
    status = ok(await trials.page.call("GET", f"/tasks/{task_id}/status"))
    assert status["status"] == "pending"  # a test does not start the task
    assert status["targets"]["invited"] == 1
    assert status["targets"]["pending"] == 1
    (entry,) = ok(await trials.page.call("GET", f"/tasks/{task_id}/logs?limit=50"))
    assert entry["target_id"] == first
    assert entry["action_type"] == "INVITE_SUCCESSFUL"


async def test_a_message_task_sends_one_message_and_the_body_form_works(trials: Trials) -> None:
    task_id = await trials.task(["cid_trial"], message="Hello {first_name}!")
    (target,) = await trials.targets(task_id)
    async with engine(trials.settings, replica()):
        # as the page's api.ts sends it: a JSON body; no account named: the task's first one
        response = await trials.page.call("POST", f"/tasks/{task_id}/test-invite", {"target_id": target})
    body = ok(response)
    assert body["success"] is True
    assert body["outcome"] == "success"
    assert body["account_id"] == trials.account(1)
    row = await trials.target(target)
    assert (row["status"], row["attempts"]) == ("succeeded", 1)
    assert await trials.logged(target) == 1
    action = await trials.db.fetchval(
        "SELECT action FROM invite_execution_logs WHERE target_id = $1", uuid.UUID(target)
    )
    assert action == "send_message"


async def test_the_pause_since_the_last_action_refuses_and_nothing_is_done(trials: Trials) -> None:
    task_id = await trials.task(["dee_trial", "eve_trial"], pause=45.0)
    first, second = await trials.targets(task_id)
    account = trials.account(2)
    async with engine(trials.settings, replica()):
        ok(await trials.trial(task_id, first, account))
        used = await trials.used(account)
        refused = await trials.trial(task_id, second, account)
    assert refused.status_code == 429, refused.text
    problem = refused.json()
    assert problem["rule"] == "pause"
    assert "pause" in problem["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 45
    row = await trials.target(second)
    assert (row["status"], row["attempts"], row["account_id"]) == ("pending", 0, None)
    assert await trials.logged(second) == 0
    assert await trials.used(account) == used


async def test_a_spent_daily_quota_refuses(trials: Trials) -> None:
    task_id = await trials.task(["fay_trial"])
    (target,) = await trials.targets(task_id)
    account = trials.account(3)
    async with engine(trials.settings, replica()):
        ok(await trials.page.call("GET", "/accounts/"))
        # the account acted its whole quota today (as the engine writes it after a day's work)
        await trials.db.execute(
            "INSERT INTO invite_accounts (id, user_id, platform, daily_count, daily_window_start)"
            " VALUES ($1, $2, 'telegram', $3, now() - interval '1 hour')"
            " ON CONFLICT (id) DO UPDATE SET daily_count = $3, daily_window_start = now() - interval '1 hour'",
            account,
            trials.tenant,
            trials.settings.daily_quota,
        )
        refused = await trials.trial(task_id, target, account)
    assert refused.status_code == 429, refused.text
    assert refused.json()["rule"] == "quota"
    assert int(refused.headers["Retry-After"]) > 3600 * 22
    assert (await trials.target(target))["status"] == "pending"
    assert await trials.logged(target) == 0
    assert await trials.used(account) == trials.settings.daily_quota


async def test_a_quota_of_zero_is_refused_for_good_not_as_a_quota_that_passes(trials: Trials) -> None:
    task_id = await trials.task(["kit_trial"])
    (target,) = await trials.targets(task_id)
    account = trials.account(2)
    # the accounts provider allows the account nothing (its row keeps the limit its lease gave)
    await trials.db.execute(
        "INSERT INTO invite_accounts (id, user_id, platform, daily_limit) VALUES ($1, $2, 'telegram', 0)"
        " ON CONFLICT (id) DO UPDATE SET daily_limit = 0",
        account,
        trials.tenant,
    )
    try:
        async with engine(trials.settings, replica()):
            refused = await trials.trial(task_id, target, account)
    finally:
        await trials.db.execute("UPDATE invite_accounts SET daily_limit = NULL WHERE id = $1", account)
    assert refused.status_code == 409, refused.text
    assert "Retry-After" not in refused.headers  # it never passes: nothing to come back for
    problem = refused.json()
    assert problem["rule"] == "no_quota"
    assert "the provider's daily limit of the account: 0" in problem["detail"]
    assert (await trials.target(target))["status"] == "pending"
    assert await trials.logged(target) == 0


async def test_a_suppressed_person_is_refused(trials: Trials) -> None:
    task_id = await trials.task(["gus_trial"])
    (target,) = await trials.targets(task_id)
    await trials.db.execute(
        "INSERT INTO invite_suppressions (user_id, identifier_key, user_identifier, reason) VALUES ($1, 'u:gus_trial', 'gus_trial', 'asked')",
        trials.tenant,
    )
    async with engine(trials.settings, replica()):
        refused = await trials.trial(task_id, target, trials.account(1))
    assert refused.status_code == 409, refused.text
    assert refused.json()["rule"] == "suppressed"
    assert "suppression" in refused.json()["detail"]
    row = await trials.target(target)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert await trials.logged(target) == 0


async def test_the_account_an_engine_drives_is_served_by_that_engine(trials: Trials) -> None:
    """Replica A drives the campaign's accounts; replica B runs beside it; the request reaches the
    API replica: A serves the trial, once, within its quota, and keeps the account."""
    people = [f"run_{n}_trial" for n in range(8)]
    task_id = await trials.task(people)
    ok(await trials.page.call("POST", f"/tasks/{task_id}/execute"))
    a, b = replica(), replica()
    async with engine(trials.settings, a):
        await held_by(trials, a)
        async with engine(trials.settings, b):
            held = await trials.db.fetch(
                "SELECT id FROM invite_accounts WHERE user_id = $1 AND lease_owner = $2 ORDER BY id",
                trials.tenant,
                a,
            )
            account = held[0]["id"]
            (target,) = [
                str(r["id"])
                for r in await trials.db.fetch(
                    "SELECT id FROM invite_targets WHERE task_id = $1 AND status = 'pending' ORDER BY seq DESC LIMIT 1",
                    uuid.UUID(task_id),
                )
            ]
            used = await trials.used(account)
            body = ok(await trials.trial(task_id, target, account))
            assert body["success"] is True
            taken_by = await trials.db.fetchval(
                "SELECT taken_by FROM invite_trials WHERE id = $1", uuid.UUID(body["trial_id"])
            )
            owner = await trials.db.fetchval("SELECT lease_owner FROM invite_accounts WHERE id = $1", account)
            assert await trials.used(account) == used + 1
    assert taken_by == a
    assert owner == a
    row = await trials.target(target)
    assert (row["status"], row["attempts"], row["account_id"]) == ("succeeded", 1, account)
    assert await trials.logged(target) == 1


async def test_nobody_to_take_it_in_time_is_503_and_it_never_happens_later(trials: Trials) -> None:
    task_id = await trials.task(["hal_trial"])
    (target,) = await trials.targets(task_id)
    expired = await trials.trial(task_id, target, trials.account(1))  # no engine runs
    assert expired.status_code == 503, expired.text
    assert expired.json()["rule"] == "expired"
    async with engine(trials.settings, replica()):
        await asyncio.sleep(1.0)  # an engine now: the trial is over, nothing is done for it
    row = await trials.target(target)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert await trials.logged(target) == 0


async def test_an_action_still_under_way_at_the_bound_is_202_and_happens_once(trials: Trials) -> None:
    task_id = await trials.task(["ian_trial"])
    (target,) = await trials.targets(task_id)
    slow = SandboxProfile(latency_seconds=(WAIT + 1.0, WAIT + 1.0))  # Telegram answers after the bound
    async with engine(trials.settings, replica(), slow):
        waiting = await trials.trial(task_id, target, trials.account(1))
        assert waiting.status_code == 202, waiting.text
        body = waiting.json()
        assert body["state"] == "taken"
        assert body["success"] is False
        later = waiting.headers["Location"].removeprefix(trials.settings.frontend_api_prefix)
        assert later == f"/tasks/{task_id}/test-invite/{body['trial_id']}"
        async with asyncio.timeout(15):
            while True:
                done = await trials.page.call("GET", later)
                if done.status_code != 202:
                    break
                await asyncio.sleep(0.2)
    assert ok(done)["success"] is True
    assert ok(done)["trial_id"] == body["trial_id"]
    assert await trials.logged(target) == 1
    assert (await trials.target(target))["attempts"] == 1


@pytest.mark.parametrize(
    ("case", "status", "text"),
    [
        ("unknown task", 404, "task not found"),
        ("unknown target", 404, "target not found"),
        ("target of another task", 422, "another of your tasks"),
        ("another tenant", 404, "task not found"),
        ("unknown account", 404, "account not found"),
        ("no target", 422, "target_id"),
        ("cancelled task", 409, "cancelled"),
        ("failed task", 409, "failed"),
    ],
)
async def test_bad_requests_get_the_detail_the_page_shows(
    trials: Trials, case: str, status: int, text: str
) -> None:
    task_id = await trials.task(["ivy_trial"])
    (target,) = await trials.targets(task_id)
    page, account, path = trials.page, trials.account(1), f"/tasks/{task_id}/test-invite"
    query = f"target_id={target}&account_id={account}"
    if case == "unknown task":
        path = f"/tasks/{uuid.uuid4()}/test-invite"
    elif case == "unknown target":
        query = f"target_id={uuid.uuid4()}&account_id={account}"
    elif case == "target of another task":
        other = await trials.task(["jon_trial"])
        (theirs,) = await trials.targets(other)
        query = f"target_id={theirs}&account_id={account}"
    elif case == "another tenant":
        page = page.other(issue_token(SECRET, new_tenant(), timedelta(minutes=5)))
    elif case == "unknown account":
        query = f"target_id={target}&account_id=sandbox-nobody-1"
    elif case == "no target":
        query = f"account_id={account}"
    elif case in ("cancelled task", "failed task"):
        finished = case.removesuffix(" task")
        await trials.db.execute(
            "UPDATE invite_tasks SET status = $2::text WHERE id = $1", uuid.UUID(task_id), finished
        )
    response = await page.call("POST", f"{path}?{query}")
    assert response.status_code == status, response.text
    assert text in response.json()["detail"]
    assert (
        await trials.db.fetchval("SELECT count(*) FROM invite_trials WHERE task_id = $1", uuid.UUID(task_id))
        == 0
    )
