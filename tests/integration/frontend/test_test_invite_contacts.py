"""The Mailing page's test-invite of a +phone target: reached by importing the number as a
contact, it needs room in the account's contacts window as a campaign action does
(``DAILY_CONTACTS_QUOTA``, on every replica) -- refused with the rule's name, a 429 and
Retry-After when the window is full, and served with the import counted when it has room.
Through the gateway, on a real database, with the sandbox driver."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.frontend import test_test_invite
from tests.integration.frontend.conftest import create_body, ok
from tests.integration.frontend.test_test_invite import GROUP, Trials, engine, replica

pytestmark = pytest.mark.asyncio(loop_scope="module")

trials = test_test_invite.trials  # the same world, of a tenant of this module's own
PHONE = "+447911123456"


async def _phone_task(trials: Trials) -> tuple[str, str]:
    """A draft invite task whose one person is known by phone number; (task, target)."""
    body = create_body([trials.account(n) for n in (1, 2, 3)], group=GROUP)
    task_id: str = ok(await trials.page.call("POST", "/tasks/", body))["id"]
    csv = f"phone,first_name\n{PHONE},Pat\n".encode()
    imported = await trials.page.upload(f"/tasks/{task_id}/import/file", "people.csv", csv, "f")
    assert ok(imported)["imported_count"] == 1
    (target,) = await trials.targets(task_id)
    key = await trials.db.fetchval(
        "SELECT identifier_key FROM invite_targets WHERE id = $1", uuid.UUID(target)
    )
    assert key == f"p:{PHONE}"
    return task_id, target


async def _contacts(trials: Trials, account: str, count: int | None = None) -> int:
    """The account's imports in its open contacts window (set to ``count``, opened an hour
    ago, first: as the engine leaves it after the day's +phone targets)."""
    if count is not None:
        await trials.db.execute(
            "INSERT INTO invite_accounts (id, user_id, platform, contacts_count, contacts_window_start)"
            " VALUES ($1, $2, 'telegram', $3, now() - interval '1 hour')"
            " ON CONFLICT (id) DO UPDATE SET contacts_count = $3, contacts_window_start = now() - interval '1 hour'",
            account,
            trials.tenant,
            count,
        )
    return int(await trials.db.fetchval("SELECT contacts_count FROM invite_accounts WHERE id = $1", account))


async def test_a_phone_target_waits_for_room_in_the_contacts_window(trials: Trials) -> None:
    task_id, target = await _phone_task(trials)
    account = trials.account(1)
    quota = trials.settings.daily_contacts_quota
    async with engine(trials.settings, replica()):
        ok(await trials.page.call("GET", "/accounts/"))
        await _contacts(trials, account, quota)  # the day's imports are all made
        refused = await trials.trial(task_id, target, account)
        assert refused.status_code == 429, refused.text
        assert refused.json()["rule"] == "contacts"
        assert "contacts" in refused.json()["detail"]
        assert 3600 * 22 < int(refused.headers["Retry-After"]) <= 3600 * 23  # when the window closes
        assert (await trials.target(target))["status"] == "pending"
        assert await trials.logged(target) == 0
        assert await _contacts(trials, account) == quota

        await _contacts(trials, account, quota - 1)  # room for one more
        body = ok(await trials.trial(task_id, target, account))
    assert body["success"] is True
    assert body["outcome"] == "success"
    assert (await trials.target(target))["status"] == "succeeded"
    assert await trials.logged(target) == 1
    assert await _contacts(trials, account) == quota  # the import was counted
