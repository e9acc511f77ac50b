"""Hostile strings in every string field the API reads: never a 500, never a changed schema.

Each payload goes into every string field of task create and update, every filter and
cursor, every suppression field, every column (and the mapping) of an imported file and
the Parsing Service task id. The answer must be a 2xx or a 4xx problem; a value that is
accepted must come back exactly as sent (it was a parameter, not SQL); and afterwards every
table is still there with another tenant's rows untouched.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import jwt
import pytest

from invite.kernel.settings import Settings
from tests.integration.api import (
    PREFIX,
    Client,
    auth_headers,
    insert_targets,
    invite_task,
    message_task,
    new_tenant,
)
from tests.integration.audience import upload

PAYLOADS = {
    "drop-table": "'; DROP TABLE invite_tasks; --",
    "or-true": "' OR '1'='1",
    "placeholder": "$1",
    "stacked-sleep": "1; SELECT pg_sleep(30); --",
    "comment-quote": "x' /* \" */ --",
    "nul-byte": "abc\x00def",
    "only-nul": "\x00",
    "backslashes": "\\\\'\\x00\\u0000",
    "format-tricks": "%s %(x)s {0} {__class__} ${x}",
    "long": "A" * 100_000,
    "unicode": "\u041f\u0440\u0438\u0432\u0435\u0442 \U0001f44b \u202eRTL\u202c e\u0301 \u200b \u4f60\u597d \U0001f9d1\u200d\U0001f4bb",
    "control": "\r\n\t\x1b[31m\x7f",
    "json-ish": '{"user_id": "1"}',
}
each_payload = pytest.mark.parametrize(
    "value", [PAYLOADS[name] for name in sorted(PAYLOADS)], ids=sorted(PAYLOADS)
)


def _tables_query() -> str:
    return "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"


@dataclass
class Bystander:
    """Another tenant's task, counted before the attack and compared after."""

    task_id: str
    rows: tuple[Any, ...]


async def bystander_state(pool: asyncpg.Pool, task_id: str) -> tuple[Any, ...]:
    task = uuid.UUID(task_id)
    return (
        await pool.fetchval("SELECT row_to_json(t)::text FROM invite_tasks t WHERE id = $1", task),
        await pool.fetchval("SELECT count(*) FROM invite_targets WHERE task_id = $1", task),
        [r[0] for r in await pool.fetch(_tables_query())],
    )


@pytest.fixture
async def bystander(client: Client, pool: asyncpg.Pool) -> Bystander:
    headers = auth_headers(client, new_tenant())
    created = await client.post(f"{PREFIX}/tasks", json=invite_task(), headers=headers)
    task_id = created.json()["id"]
    await insert_targets(pool, task_id, 5)
    return Bystander(task_id, await bystander_state(pool, task_id))


def no_500(response: httpx.Response) -> httpx.Response:
    where = f"{response.request.method} {str(response.request.url)[:200]}"
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), where
    return response


async def draft(client: Client, headers: dict[str, str], pool: asyncpg.Pool) -> str:
    created = await client.post(f"{PREFIX}/tasks", json=message_task(), headers=headers)
    task_id: str = created.json()["id"]
    await insert_targets(pool, task_id, 2)
    return task_id


def task_bodies(value: str) -> list[dict[str, Any]]:
    """A create body per string field, that field holding ``value``."""
    return [
        message_task(title=value),
        message_task(description=value),
        message_task(message_template=value),
        invite_task(target_group_id=value),
        invite_task(platform=value),
        invite_task(task_type=value),
        invite_task(priority=value),
        invite_task(scheduled_at=value),
        invite_task(settings={"account_ids": [value]}),
        invite_task(settings={"send_window": {"start": value, "end": "18:00"}}),
        invite_task(settings={"send_window": {"start": "09:00", "end": "18:00", "timezone": value}}),
        {**invite_task(), value[:200]: "unknown field"},
    ]


STORED_FIELDS = ("title", "description", "message_template", "target_group_id")


@each_payload
async def test_task_fields(
    client: Client, owner: dict[str, str], pool: asyncpg.Pool, bystander: Bystander, value: str
) -> None:
    task_id = await draft(client, owner, pool)
    for body in task_bodies(value):
        created = no_500(await client.post(f"{PREFIX}/tasks", json=body, headers=owner))
        if created.status_code == 201:
            for key in STORED_FIELDS:  # what was accepted is stored as sent, byte for byte
                if body.get(key) == value:
                    read = await client.get(f"{PREFIX}/tasks/{created.json()['id']}", headers=owner)
                    assert read.json()[key] in (value, value.strip())  # titles are trimmed
        update = {k: v for k, v in body.items() if k not in ("platform", "task_type")}
        no_500(await client.put(f"{PREFIX}/tasks/{task_id}", json=update, headers=owner))
    assert await bystander_state(pool, bystander.task_id) == bystander.rows


@each_payload
async def test_filters_cursors_and_paths(
    client: Client, owner: dict[str, str], pool: asyncpg.Pool, bystander: Bystander, value: str
) -> None:
    value = quote(value[:8000], safe="")  # a URL stays under httpx's 64 KB
    task_id = await draft(client, owner, pool)
    task = f"{PREFIX}/tasks/{task_id}"
    urls = [
        *(
            f"{PREFIX}/tasks?{param}={value}"
            for param in ("status", "task_type", "platform", "priority", "cursor")
        ),
        *(
            f"{task}/logs?{param}={value}"
            for param in ("status", "account_id", "action", "cursor", "since", "until")
        ),
        *(f"{task}/stats?{param}={value}" for param in ("since", "until")),
        f"{task}/report?format={value}",
        f"{PREFIX}/suppressions?cursor={value}",
        f"{PREFIX}/suppressions?identifier={value}",
        f"{PREFIX}/import/validate?parsing_task_id={value}",
        f"{PREFIX}/imports/{value}",
        f"{PREFIX}/tasks/{value}",
        f"{PREFIX}/tasks/{value}/status",
    ]
    for url in urls:
        no_500(await client.get(url, headers=owner))
    no_500(await client.delete(f"{PREFIX}/suppressions/{value}", headers=owner))
    no_500(await client.delete(f"{PREFIX}/tasks/{value}", headers=owner))
    assert await bystander_state(pool, bystander.task_id) == bystander.rows


@each_payload
async def test_suppression_fields(
    client: Client, owner: dict[str, str], pool: asyncpg.Pool, bystander: Bystander, value: str
) -> None:
    bodies: list[dict[str, Any]] = [
        {"identifiers": [value]},
        {"identifiers": ["alice_b", value], "reason": value},
        {"identifiers": ["alice_b"], "reason": value},
    ]
    for body in bodies:
        no_500(await client.post(f"{PREFIX}/suppressions", json=body, headers=owner))
    listed = no_500(await client.get(f"{PREFIX}/suppressions?limit=500", headers=owner)).json()["items"]
    reasons = {item["reason"] for item in listed}
    assert reasons <= {None, value}
    assert await bystander_state(pool, bystander.task_id) == bystander.rows


def csv_with(value: str) -> bytes:
    """Every column a file may have, each row putting ``value`` in one of them."""
    header = ["username", "user_id", "phone", "first_name", "last_name", "full_name", "is_bot", "user_type"]
    good = ["alice_b", "42", "+79123456789", "Alice", "B", "Alice B", "false", "member"]
    rows = [header, good]
    for column in range(len(header)):
        row = [f"person_{column:02d}x", "", "", "", "", "", "", ""]
        row[column] = value.replace('"', '""')
        rows.append(row)
    return "\n".join(",".join(f'"{cell}"' for cell in row) for row in rows).encode("utf-8", "surrogatepass")


@each_payload
async def test_import_rows_and_form_fields(
    client: Client, owner: dict[str, str], pool: asyncpg.Pool, bystander: Bystander, value: str
) -> None:
    task_id = await draft(client, owner, pool)
    data = csv_with(value)
    as_json = json.dumps([{"username": value, "first_name": value}, {"username": "bob_the_b"}]).encode()
    for path in ("/import/file", "/import/validate"):
        for name, payload in (("people.csv", data), ("people.json", as_json), (value[:200] + ".csv", data)):
            no_500(await upload(client, owner, payload, name, task_id=task_id, path=path))
        no_500(
            await upload(
                client, owner, data, "p.csv", task_id=task_id, path=path, mapping={"username": value}
            )
        )
        no_500(
            await upload(client, owner, data, "p.csv", task_id=task_id, path=path, mapping={value[:200]: "x"})
        )
        no_500(await upload(client, owner, data, "p.csv", path=path, fields={"task_id": value}))
    no_500(await upload(client, owner, data, "s.csv", path="/suppressions/import", fields={"reason": value}))
    parsing = {"task_id": task_id, "parsing_task_id": value}
    no_500(await client.post(f"{PREFIX}/import/parsing", json=parsing, headers=owner))
    no_500(
        await client.post(
            f"{PREFIX}/import/parsing", json={"task_id": value, "parsing_task_id": value}, headers=owner
        )
    )
    assert await bystander_state(pool, bystander.task_id) == bystander.rows


async def test_an_injected_tenant_id_is_only_an_opaque_name(
    client: Client, app_settings: Settings, pool: asyncpg.Pool, bystander: Bystander
) -> None:
    """A validly signed service token whose ``user_id`` is SQL sees no one's tasks but its own."""
    assert app_settings.jwt_secret is not None
    for user_id in ("1' OR '1'='1", "'; DROP TABLE invite_tasks; --", "%", "*", "$1"):
        token = jwt.encode(
            {"service": "x", "user_id": user_id, "exp": int(time.time()) + 60}, app_settings.jwt_secret
        )
        headers = {"Authorization": f"Bearer {token}"}
        assert no_500(await client.get(f"{PREFIX}/tasks?limit=200", headers=headers)).json()["items"] == []
        created = no_500(await client.post(f"{PREFIX}/tasks", json=invite_task(), headers=headers))
        assert created.status_code == 201
        seen = (await client.get(f"{PREFIX}/tasks", headers=headers)).json()["items"]
        assert [task["id"] for task in seen] == [created.json()["id"]]
    assert await bystander_state(pool, bystander.task_id) == bystander.rows


async def test_nul_characters_are_named_or_dropped(
    client: Client, owner: dict[str, str], pool: asyncpg.Pool
) -> None:
    """What the database cannot store: a field holding a NUL is a 422 naming it; a NUL in an
    imported cell is dropped like the invisible characters around identifiers."""
    for field in ("title", "description", "message_template"):
        refused = await client.post(f"{PREFIX}/tasks", json=message_task(**{field: "a\x00b"}), headers=owner)
        assert refused.status_code == 422
        assert [p["name"] for p in refused.json()["invalid-params"]] == [field]
    refused = await client.post(
        f"{PREFIX}/tasks", json=invite_task(settings={"account_ids": ["acc\x00"]}), headers=owner
    )
    assert [p["name"] for p in refused.json()["invalid-params"]] == ["settings.account_ids[0]"]
    refused = await client.post(
        f"{PREFIX}/suppressions", json={"identifiers": ["alice_b"], "reason": "\x00"}, headers=owner
    )
    assert [p["name"] for p in refused.json()["invalid-params"]] == ["reason"]
    refused = await client.get(
        f"{PREFIX}/tasks/{await draft(client, owner, pool)}/logs?action=%00", headers=owner
    )
    assert refused.status_code == 422
    task_id = await draft(client, owner, pool)
    data = b"username,first_name\nal\x00ice_b,Al\x00ice\n"
    imported = await upload(client, owner, data, "people.csv", task_id=task_id)
    assert imported.status_code == 201, imported.text
    rows = await pool.fetch(
        "SELECT identifier_key, user_data->>'first_name' FROM invite_targets WHERE task_id = $1 "
        "AND identifier_key LIKE 'u:al%'",
        uuid.UUID(task_id),
    )
    assert [tuple(r) for r in rows] == [("u:alice_b", "Alice")]
    header = b"user\x00name,\x00phone\ncarol_c,+79123456789\n"
    checked = await upload(client, owner, header, "p\x00.csv", task_id=task_id, path="/import/validate")
    imported = await upload(client, owner, header, "p\x00.csv", task_id=task_id)
    assert (checked.status_code, imported.status_code) == (200, 201), imported.text
    assert imported.json()["columns"] == {"header_row": 1, "username": "username", "phone": "phone"}
    assert imported.json()["counts"] == checked.json()["counts"]
