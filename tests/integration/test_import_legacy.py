"""``invite import-legacy`` copies the old invite service's tasks and people into ours, once.

The old tables are made as the old service's SQLAlchemy models make them (content-factory's
backend/invite-service/app/models: integer ids; ``taskstatus`` and ``taskpriority`` enums of
their values, ``targetstatus`` of its member names), in ``public`` of a database that also
holds ours in ``invite`` -- the platform's invite_db. The command runs as a process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from invite.kernel.db import migrate
from invite.kernel.settings import ROOT
from invite.legacy import BLOCKED_REASON, PAUSED_REASON
from tests.conftest import ADMIN_URL, SQL_DIR, with_database
from tests.integration.test_platform_slot import old_service_database

OLD_MODELS = """
DROP TABLE invite_execution_logs, invite_task_accounts, invite_targets, invite_tasks;
DROP TYPE taskstatus, targetstatus;
CREATE TYPE taskstatus AS ENUM ('pending', 'running', 'completed', 'failed', 'cancelled', 'paused');
CREATE TYPE taskpriority AS ENUM ('low', 'normal', 'high', 'urgent');
CREATE TYPE targetstatus AS ENUM ('PENDING', 'INVITED', 'ACCEPTED', 'REJECTED', 'FAILED', 'BLOCKED', 'INVALID');
CREATE TABLE invite_tasks (
    id serial PRIMARY KEY, created_at timestamp NOT NULL DEFAULT now(), updated_at timestamp NOT NULL DEFAULT now(),
    user_id integer NOT NULL, name varchar(255) NOT NULL, description text,
    status taskstatus NOT NULL DEFAULT 'pending', priority taskpriority NOT NULL DEFAULT 'normal',
    platform varchar(50) NOT NULL, target_count integer DEFAULT 0, completed_count integer DEFAULT 0,
    failed_count integer DEFAULT 0, delay_between_invites integer DEFAULT 60,
    max_invites_per_account integer DEFAULT 50, start_time timestamp, end_time timestamp,
    scheduled_start timestamp, invite_message text, settings json, error_message text, results json);
CREATE TABLE invite_targets (
    id serial PRIMARY KEY, created_at timestamp NOT NULL DEFAULT now(), updated_at timestamp NOT NULL DEFAULT now(),
    task_id integer NOT NULL REFERENCES invite_tasks (id), username varchar(255), phone_number varchar(20),
    user_id_platform varchar(100), email varchar(255), full_name varchar(255),
    status targetstatus NOT NULL DEFAULT 'PENDING', invite_sent_at timestamp, error_message text,
    attempt_count integer DEFAULT 0, last_attempt_at timestamp, metadata json);
INSERT INTO invite_tasks (user_id, name, status, priority, platform, delay_between_invites,
                          max_invites_per_account, start_time, end_time, settings)
VALUES (42, 'Old invites', 'running', 'urgent', 'telegram', 30, 20, '2026-11-01 10:00', NULL,
        '{"group_id": "@old_group", "invite_type": "group_invite", "allowed_account_ids": [],
          "batch_size": 5}'),
       (42, 'Old messages', 'completed', 'normal', 'telegram', 60, 50, '2026-11-02 10:00',
        '2026-11-03 18:30', '{"invite_type": "message"}'),
       (42, 'No message', 'pending', 'normal', 'telegram', 60, 50, NULL, NULL, '{"invite_type": "message"}');
UPDATE invite_tasks SET invite_message = 'Hello {first_name}!' WHERE id = 2;
INSERT INTO invite_targets (task_id, username, phone_number, full_name, status) VALUES
    (1, 'alice_old', NULL, 'Alice A', 'INVITED'),
    (1, '@bob_old', NULL, NULL, 'ACCEPTED'),
    (1, 'carol_old', NULL, NULL, 'FAILED'),
    (1, 'dave_old', NULL, NULL, 'BLOCKED'),
    (1, 'eve_old', NULL, 'Eve E', 'PENDING'),
    (1, NULL, '+79123456789', NULL, 'PENDING'),
    (1, 'x', NULL, NULL, 'INVALID'),
    (2, 'gina_old', NULL, 'Gina G', 'INVITED'),
    (2, 'hank_old', NULL, NULL, 'PENDING'),
    (3, 'ivan_old', NULL, NULL, 'PENDING');
"""


@pytest.fixture
async def invite_db() -> AsyncIterator[str]:
    """The platform's invite_db: the old service's tables in public, ours in invite."""
    async with old_service_database() as name:
        url = with_database(ADMIN_URL, name)
        conn = await asyncpg.connect(url, server_settings={"search_path": "public"})
        try:
            await conn.execute(OLD_MODELS)
            await migrate(conn, SQL_DIR)
        finally:
            await conn.close()
        yield url


def _import_legacy(url: str, *args: str) -> list[dict[str, Any]]:
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    run = subprocess.run(
        [sys.executable, "-m", "invite", "import-legacy", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


async def _ours(url: str) -> tuple[list[asyncpg.Record], dict[str, dict[str, Any]], list[asyncpg.Record]]:
    conn = await asyncpg.connect(url, server_settings={"search_path": "invite"})
    try:
        tasks = await conn.fetch(
            """SELECT id, user_id, title, task_type, target_group_id, message_template, priority, status,
                      status_reason, started_at, completed_at, settings::text AS settings
               FROM invite_tasks ORDER BY title"""
        )
        targets = {
            r["identifier_key"]: dict(r)
            for r in await conn.fetch(
                "SELECT t.title, g.identifier_key, g.status, g.outcome, g.processed_at "
                "FROM invite_targets g JOIN invite_tasks t ON t.id = g.task_id"
            )
        }
        suppressed = await conn.fetch("SELECT user_id, identifier_key, reason FROM invite_suppressions")
    finally:
        await conn.close()
    return tasks, targets, suppressed


async def test_the_old_services_tasks_and_people_are_copied_once(invite_db: str) -> None:
    dry = _import_legacy(invite_db, "--dry-run")
    assert dry[-1] == {"copied": 0, "not_copied": 3, "dry_run": True}
    assert (await _ours(invite_db))[0] == []  # nothing written

    lines = _import_legacy(invite_db)
    tasks, targets, suppressed = await _ours(invite_db)

    assert lines[-1] == {"copied": 2, "not_copied": 1, "dry_run": False}
    invites, messages = (t for t in tasks if t["title"] in ("Old invites", "Old messages"))
    # the Mailing page's mapping: the group, urgent → HIGH, the delay and the per-account limit
    assert (invites["user_id"], invites["task_type"], invites["target_group_id"]) == (
        "42",
        "invite_to_group",
        "@old_group",
    )
    assert invites["priority"] == 1
    settings = json.loads(invites["settings"])
    assert (settings["min_pause_seconds"], settings["daily_limit_per_account"]) == (30, 20)
    assert settings["extra"] == {"batch_size": 5, "legacy_task_id": 1}
    # it ran in the old service: paused here, for a person to resume once the old worker is off
    assert (invites["status"], invites["status_reason"]) == ("paused", PAUSED_REASON)
    assert invites["started_at"] is not None
    assert invites["completed_at"] is None
    assert (messages["task_type"], messages["message_template"], messages["status"]) == (
        "send_messages",
        "Hello {first_name}!",
        "completed",
    )
    # as the old service left them
    assert {k: (v["status"], v["outcome"]) for k, v in targets.items()} == {
        "u:alice_old": ("succeeded", "legacy_invited"),
        "u:bob_old": ("succeeded", "legacy_accepted"),
        "u:carol_old": ("failed", "legacy_failed"),
        "u:dave_old": ("skipped", "legacy_blocked"),
        "u:eve_old": ("pending", None),
        "p:+79123456789": ("pending", None),
        "u:gina_old": ("succeeded", "legacy_invited"),
        "u:hank_old": ("cancelled", "legacy_not_reached"),  # its task ended without them
    }
    # history at the old task's last time, so the recontact cap counts it
    assert targets["u:gina_old"]["processed_at"].isoformat() == "2026-11-03T18:30:00+00:00"
    assert [tuple(r) for r in suppressed] == [("42", "u:dave_old", BLOCKED_REASON)]
    [refused] = [line for line in lines if "skipped" in line and "task_id" not in line]
    assert refused["legacy_task_id"] == 3
    assert "template" in refused["skipped"] or "message" in refused["skipped"]
    [first] = [line for line in lines if line.get("legacy_task_id") == 1]
    assert first["people"]["legacy_invalid"] == 0  # "x" is no username: the import rejects it

    again = _import_legacy(invite_db)
    assert again[-1] == {"copied": 0, "not_copied": 1, "dry_run": False}  # only the one it cannot copy
    assert len((await _ours(invite_db))[0]) == 2
    conn = await asyncpg.connect(invite_db)
    try:  # the old tables are as they were
        assert await conn.fetchval("SELECT count(*) FROM public.invite_targets") == 10
        assert await conn.fetchval("SELECT status::text FROM public.invite_tasks WHERE id = 1") == "running"
    finally:
        await conn.close()
