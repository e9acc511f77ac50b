"""Helpers for the audience import and suppression tests: tasks, uploads, what got written."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import httpx

from tests.integration.api import PREFIX, Client, invite_task


async def new_task(client: Client, headers: dict[str, str], **overrides: Any) -> str:
    response = await client.post(f"{PREFIX}/tasks", json=invite_task(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


async def upload(
    client: Client,
    headers: dict[str, str],
    data: bytes,
    name: str,
    *,
    task_id: str | None = None,
    mapping: Mapping[str, str | None] | None = None,
    path: str = "/import/file",
    content_type: str = "application/octet-stream",
    fields: dict[str, str] | None = None,
) -> httpx.Response:
    form = dict(fields or {})
    if task_id is not None:
        form["task_id"] = task_id
    if mapping is not None:
        form["mapping"] = json.dumps(mapping)
    return await client.post(
        f"{PREFIX}{path}", files={"file": (name, data, content_type)}, data=form, headers=headers
    )


async def targets(pool: asyncpg.Pool, task_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT user_identifier, identifier_key, user_data, status, outcome FROM invite_targets "
        "WHERE task_id = $1 ORDER BY seq",
        uuid.UUID(task_id),
    )


async def written(pool: asyncpg.Pool, task_id: str) -> tuple[int, int, int]:
    """(targets, import records, audit rows) of a task: all zero when an import wrote nothing."""
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM invite_targets WHERE task_id = $1),
                  (SELECT count(*) FROM invite_imports WHERE task_id = $1),
                  (SELECT count(*) FROM invite_audit_log WHERE resource_id = $1::text AND action = 'import')""",
        uuid.UUID(task_id),
    )
    assert row is not None
    return row[0], row[1], row[2]


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body
