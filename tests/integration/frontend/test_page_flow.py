"""The Mailing page's whole flow, call by call as the page makes them, to a completed sandbox
campaign: check the group's admin rights, create the task with the ready accounts, import a
file, start it, poll its status and log, pause it (nothing goes out meanwhile), resume it, and
read the finished campaign back."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.frontend.conftest import (
    GROUP,
    World,
    create_body,
    engine_replica,
    ok,
    people_csv,
    until,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

PEOPLE = ["ann_flow", "bob_flow", "cid_flow"]


async def test_the_page_runs_a_campaign_to_the_end(world: World) -> None:
    page = world.page
    rights = ok(await page.call("POST", "/tasks/check-admin-rights", {"group_link": GROUP}))
    assert rights["can_proceed"] is True  # else the page refuses to create the task
    ready = [a["account_id"] for a in rights["ready_accounts"]]
    assert len(ready) == 3

    task = ok(await page.call("POST", "/tasks/", create_body(ready)))
    task_id = task["id"]
    assert task["status"] == "pending"
    assert task["settings"]["allowed_account_ids"] == ready
    imported = ok(
        await page.upload(f"/tasks/{task_id}/import/file", "audience.csv", people_csv(PEOPLE), "file_1")
    )
    assert imported["imported_count"] == 3

    started = ok(await page.call("POST", f"/tasks/{task_id}/execute"))
    assert started["status"] == "running"
    paused = ok(await page.call("POST", f"/tasks/{task_id}/pause"))  # before any engine took it
    assert paused["status"] == "paused"

    async with engine_replica(world.settings):
        await asyncio.sleep(1.0)  # an engine at work, a paused task: nobody is contacted
        status = ok(await page.call("GET", f"/tasks/{task_id}/status"))
        assert status["status"] == "paused"
        assert status["targets"] == {"total": 3, "pending": 3, "invited": 0, "failed": 0, "cancelled": 0}
        assert ok(await page.call("GET", f"/tasks/{task_id}/logs?limit=50")) == []

        resumed = ok(await page.call("POST", f"/tasks/{task_id}/execute"))
        assert resumed["status"] == "running"
        done = await until(page, task_id, lambda s: s["status"] == "completed")

    assert done["progress_percentage"] == 100.0
    targets = done["targets"]
    assert targets["total"] == 3
    assert targets["pending"] == 0
    assert targets["invited"] + targets["failed"] == 3
    assert done["timing"]["ended_at"] is not None
    logs = ok(await page.call("GET", f"/tasks/{task_id}/logs?limit=50"))
    invites = [entry for entry in logs if entry["target_id"] is not None]
    assert {entry["details"]["target_username"].lstrip("@") for entry in invites} == set(PEOPLE)
    succeeded = [e for e in invites if e["action_type"] == "INVITE_SUCCESSFUL"]
    assert len(succeeded) == targets["invited"]
    assert {entry["account_id"] for entry in invites} <= set(ready)  # only the accounts it was given

    listed = ok(await page.call("GET", "/tasks/?platform=telegram&status=completed&page=1&page_size=20"))
    (item,) = [i for i in listed["items"] if i["id"] == task_id]
    assert item["completed_count"] == targets["invited"]
    assert item["completed_count"] + item["failed_count"] == item["target_count"] == 3
    accounts = ok(await page.call("GET", f"/tasks/{task_id}/accounts"))
    assert sum(a["actions"] for a in accounts["accounts"]) == 3
    # a finished campaign is not started again
    again = await page.call("POST", f"/tasks/{task_id}/execute")
    assert again.status_code == 409
    assert "completed" in again.json()["detail"]
