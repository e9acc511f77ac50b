"""Property test through the endpoint: any bytes uploaded as a file are imported whole or not at all.

Each example uploads hostile bytes (the generators of ``tests/unit/test_import_properties.py``)
into a fresh task. The answer is a 201 whose report accounts for every row and matches what
the database now holds, or a 4xx problem after which the task holds nothing — never a 5xx,
never a partial write. A dry run writes nothing either way; a suppression import of the
same bytes is a 201 or a 4xx.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from invite.app import create_app
from invite.kernel.auth import issue_token
from invite.kernel.settings import Settings
from tests.integration.api import PREFIX, invite_task, new_tenant
from tests.unit.test_import_properties import NAMES, any_file

CONTENT_TYPES = [None, "text/csv", "application/json", "application/octet-stream", "image/png"]


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient[Litestar]]:
    configured = Settings(
        database_url=database_url,
        jwt_secret="hostile-secret-" + "h" * 32,
        log_json=False,
        log_level="WARNING",
        engine_enabled=False,
        max_targets_per_task=20,  # small: the over-limit path is taken too
    )
    with TestClient(app=create_app(configured)) as test_client:
        test_client.headers["Authorization"] = "Bearer " + issue_token(
            "hostile-secret-" + "h" * 32, new_tenant(), timedelta(minutes=30)
        )
        yield test_client


def held(url: str, task_id: str) -> tuple[int, int]:
    """(targets, import records) of the task, straight from the database."""

    async def count() -> tuple[int, int]:
        conn = await asyncpg.connect(url)
        try:
            row = await conn.fetchrow(
                """SELECT (SELECT count(*) FROM invite_targets WHERE task_id = $1),
                          (SELECT count(*) FROM invite_imports WHERE task_id = $1)""",
                uuid.UUID(task_id),
            )
            assert row is not None
            return row[0], row[1]
        finally:
            await conn.close()

    return asyncio.run(count())


def send(
    client: TestClient[Litestar], path: str, data: bytes, name: str, ctype: str | None, **form: str
) -> httpx.Response:
    file = (name, data) if ctype is None else (name, data, ctype)
    response = client.post(f"{PREFIX}{path}", files={"file": file}, data=form)
    assert response.status_code < 500, f"{path} {name} {ctype}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
    return response


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=any_file, name=st.sampled_from(NAMES), ctype=st.sampled_from(CONTENT_TYPES))
def test_an_upload_is_imported_whole_or_not_at_all(
    client: TestClient[Litestar], database_url: str, data: bytes, name: str, ctype: str | None
) -> None:
    task_id = client.post(f"{PREFIX}/tasks", json=invite_task()).json()["id"]

    dry = send(client, "/import/validate", data, name, ctype, task_id=task_id)
    assert held(database_url, task_id) == (0, 0), "a dry run wrote something"

    response = send(client, "/import/file", data, name, ctype, task_id=task_id)
    targets, imports = held(database_url, task_id)
    event(f"import {response.status_code}")
    if response.status_code != 201:
        assert (targets, imports) == (0, 0), "a refused import wrote something"
        assert dry.status_code == response.status_code  # the dry run says what the import does
        return
    report = response.json()
    counts = report["counts"]
    assert (targets, imports) == (counts["imported"], 1)
    assert counts["imported"] + counts["rejected"] == counts["rows"]
    assert counts["rejected"] == sum(
        counts[k]
        for k in (
            "invalid",
            "no_identifier",
            "bots",
            "channels",
            "duplicates",
            "suppressed",
            "already_in_task",
            "over_limit",
        )
    )
    assert counts["imported"] <= 20
    assert dry.json()["counts"] == counts
    again = client.get(f"{PREFIX}/imports/{report['import_id']}")
    assert again.status_code == 200
    assert again.json()["counts"] == counts

    send(client, "/suppressions/import", data, name, ctype)
