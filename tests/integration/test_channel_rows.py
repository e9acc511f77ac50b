"""The Parsing Service's row about the parsed channel is not a person: through its API and in
its CSV, XLSX and JSON exports it is rejected with its own code (PLATFORM-AS-RUN.md)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import msgspec
import openpyxl
import pytest
from litestar.testing import AsyncTestClient

from invite.app import create_app
from invite.kernel.settings import Settings
from tests.fakeserver import FakeServer
from tests.integration.api import PREFIX, Client
from tests.integration.audience import new_task, targets, upload
from tests.integration.parsing import ParsingService, channel_row

PARSING_TASK = "0b6f7f2e-9a41-4d55-8d0e-1c2b3a4d5e6f"
CHANNEL = channel_row(PARSING_TASK)


def person(n: int) -> dict[str, Any]:
    return {
        "id": str(n),
        "task_id": PARSING_TASK,
        "platform": "telegram",
        "platform_id": str(100_000 + n),
        "username": f"person_{n:05d}",
        "display_name": f"Person {n}",
        "author_phone": None,
        "created_at": "2026-01-05T09:00:00",
        "platform_specific_data": {"user_id": 100_000 + n, "first_name": f"First{n}", "user_type": "member"},
    }


PEOPLE = [person(n) for n in range(3)]


@pytest.fixture
def parsing() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
async def client(settings: Settings, parsing: FakeServer) -> AsyncIterator[Client]:
    tuned = msgspec.structs.replace(settings, parsing_service_url=parsing.url, http_retries=0)
    async with AsyncTestClient(app=create_app(tuned)) as test_client:
        yield test_client


def _check(body: dict[str, Any], channel_row_number: int) -> None:
    assert body["counts"]["imported"] == 3
    assert body["counts"]["channels"] == 1
    [rejected] = body["rejected_rows"]
    assert (rejected["row"], rejected["code"]) == (channel_row_number, "channel")
    assert "the channel itself" in rejected["reason"]


async def test_the_channel_row_of_a_parsing_result_is_not_imported(
    client: Client, headers: dict[str, str], parsing: FakeServer, settings: Settings, pool: asyncpg.Pool
) -> None:
    assert settings.jwt_secret is not None
    parsing.route("GET", "/results/{task_id}", ParsingService(settings.jwt_secret, PEOPLE, CHANNEL))
    task_id = await new_task(client, headers)

    response = await client.post(
        f"{PREFIX}/import/parsing",
        json={"task_id": task_id, "parsing_task_id": PARSING_TASK},
        headers=headers,
    )

    assert response.status_code == 201, response.text
    _check(response.json(), 4)
    keys = [row["identifier_key"] for row in await targets(pool, task_id)]
    assert keys == [f"u:person_{n:05d}" for n in range(3)]  # no u:interop_grp


def _csv_export() -> bytes:
    """The Parsing Service's CSV export: its columns, ``specific_<key>`` for the platform data."""
    out = io.StringIO()
    names = [
        "author_phone",
        "created_at",
        "display_name",
        "id",
        "platform",
        "platform_id",
        "task_id",
        "username",
    ]
    writer = csv.writer(out)
    writer.writerow([*names, "specific_user_id", "specific_first_name"])
    for row in [*PEOPLE, CHANNEL]:
        specific = row["platform_specific_data"]
        writer.writerow(
            [row[n] or "" for n in names] + [specific.get("user_id", ""), specific.get("first_name", "")]
        )
    return out.getvalue().encode()


def _xlsx_export() -> bytes:
    """Its XLSX export: headers of its own words, ``Extra <key>`` for the platform data."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(
        ["ID", "Task ID", "Platform", "Platform ID", "Username", "Display Name", "Phone", "Created At"]
    )
    for row in [*PEOPLE, CHANNEL]:
        sheet.append(
            [
                row["id"],
                row["task_id"],
                row["platform"],
                row["platform_id"],
                row["username"],
                row["display_name"],
                row["author_phone"],
                row["created_at"],
            ]
        )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "row"),
    [
        ("export.csv", _csv_export(), 5),  # the header is row 1
        ("export.xlsx", _xlsx_export(), 5),
        ("export.json", json.dumps([*PEOPLE, CHANNEL]).encode(), 4),
    ],
)
async def test_the_channel_row_of_a_parsing_export_is_not_imported(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool, name: str, data: bytes, row: int
) -> None:
    task_id = await new_task(client, headers)

    response = await upload(client, headers, data, name, task_id=task_id)

    assert response.status_code == 201, response.text
    _check(response.json(), row)
    assert len(await targets(pool, task_id)) == 3
