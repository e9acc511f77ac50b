"""POST /import/file and POST /import/validate with files written by other tools.

pandas (CSV in cp1251 with ';', UTF-8 with BOM and tabs, XLSX through openpyxl), openpyxl
directly, LibreOffice when it is installed, and JSON: the shapes customers really upload.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import openpyxl
import pandas as pd
import pytest
from litestar.testing import AsyncTestClient

from invite.app import create_app
from invite.kernel.settings import Settings
from tests.integration.api import PREFIX, Client, auth_headers, new_tenant
from tests.integration.audience import new_task, problem, targets, upload, written

PARSING_TASK = "6f1c2b3a-0000-4000-8000-000000000001"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The app without its engine: it would complete a 'running' task with no people before the
    upload, and these tests set task states themselves."""
    return msgspec.structs.replace(settings, engine_enabled=False)


def parsing_rows() -> list[dict[str, Any]]:
    """People as the Parsing Service exports them (its CSV column names)."""
    base = {"created_at": "2026-01-05T10:00:00", "platform": "telegram", "task_id": PARSING_TASK}
    return [
        {
            **base,
            "id": 1001,
            "author_phone": "",
            "display_name": "Алиса Петрова",
            "platform_id": "111111111",
            "username": "alice_p",
            "specific_user_id": 111111111,
            "specific_first_name": "Алиса",
            "specific_last_name": "Петрова",
            "specific_is_bot": False,
            "specific_user_type": "user",
        },
        {
            **base,
            "id": 1002,
            "author_phone": "",
            "display_name": "Без Ника",
            "platform_id": "222222222",
            "username": "",
            "specific_user_id": 222222222,
            "specific_first_name": "Без",
            "specific_last_name": "Ника",
            "specific_is_bot": False,
            "specific_user_type": "user",
        },
        {
            **base,
            "id": 1003,
            "author_phone": "",
            "display_name": "Helper",
            "platform_id": "333333333",
            "username": "helper_bot",
            "specific_user_id": 333333333,
            "specific_first_name": "Helper",
            "specific_last_name": "",
            "specific_is_bot": True,
            "specific_user_type": "bot",
        },
        {
            **base,
            "id": 1004,
            "author_phone": "8 (912) 345-67-89",
            "display_name": "Телефон Только",
            "platform_id": "",
            "username": "",
            "specific_user_id": "",
            "specific_first_name": "",
            "specific_last_name": "",
            "specific_is_bot": False,
            "specific_user_type": "user",
        },
    ]


def expect_parsing_people(rows: list[asyncpg.Record]) -> None:
    assert [(r["user_identifier"], r["identifier_key"]) for r in rows] == [
        ("alice_p", "u:alice_p"),
        ("222222222", "id:222222222"),
        ("+79123456789", "p:+79123456789"),
    ]
    assert rows[0]["user_data"] == {
        "username": "alice_p",
        "user_id": "111111111",
        "first_name": "Алиса",
        "last_name": "Петрова",
    }
    # the export's own row ids (1001...) never became people
    assert not any(r["identifier_key"].startswith("id:100") for r in rows)


async def test_parsing_service_csv_export_written_by_pandas(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    data = pd.DataFrame(parsing_rows()).to_csv(index=False).encode()
    response = await upload(client, headers, data, "parsing_export.csv", task_id=task_id)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["counts"] == {
        "rows": 4,
        "imported": 3,
        "rejected": 1,
        "invalid": 0,
        "no_identifier": 0,
        "bots": 1,
        "channels": 0,
        "duplicates": 0,
        "suppressed": 0,
        "already_in_task": 0,
        "over_limit": 0,
    }
    assert body["columns"]["user_id"] == "platform_id"
    assert body["rejected_rows"] == [
        {"row": 4, "code": "bot", "reason": "'helper_bot' is a bot", "value": "helper_bot"}
    ]
    expect_parsing_people(await targets(pool, task_id))


async def test_parsing_service_xlsx_export_written_by_pandas(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    frame = pd.DataFrame(parsing_rows()).rename(
        columns={
            "id": "ID",
            "task_id": "Task ID",
            "platform": "Platform",
            "platform_id": "Platform ID",
            "username": "Username",
            "display_name": "Display Name",
            "author_phone": "Phone",
            "created_at": "Created At",
            "specific_user_id": "Extra user_id",
            "specific_first_name": "Extra first_name",
            "specific_last_name": "Extra last_name",
            "specific_is_bot": "Extra is_bot",
            "specific_user_type": "Extra user_type",
        }
    )
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False, engine="openpyxl")
    response = await upload(client, headers, buffer.getvalue(), "parsing_export.xlsx", task_id=task_id)
    assert response.status_code == 201, response.text
    assert response.json()["columns"]["user_id"] == "Platform ID"
    assert response.json()["counts"]["bots"] == 1
    expect_parsing_people(await targets(pool, task_id))


async def test_russian_excel_csv_in_cp1251_with_semicolons_and_a_title_row(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    frame = pd.DataFrame(
        {
            "Логин": ["@ivan_petrov", "https://t.me/Maria_S", "", "кириллица"],
            "Телефон": ["", "", "8 (912) 345-67-89", ""],
            "Имя": ["Иван", "Мария", "Пётр", "Ошибка"],
            "Фамилия": ["Петров", "Смирнова", "Иванов", ""],
        }
    )
    data = "Выгрузка участников группы\n".encode("cp1251") + frame.to_csv(
        sep=";", index=False, encoding="cp1251"
    ).encode("cp1251")
    response = await upload(client, headers, data, "участники.csv", task_id=task_id, content_type="text/csv")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["source"]["encoding"], body["source"]["delimiter"]) == ("cp1251", ";")
    assert body["columns"] == {
        "header_row": 2,
        "username": "Логин",
        "phone": "Телефон",
        "first_name": "Имя",
        "last_name": "Фамилия",
    }
    assert body["rejected_rows"] == [
        {
            "row": 6,
            "code": "invalid",
            "reason": "'кириллица' is not a Telegram username: only Latin letters, digits and _ are allowed",
            "value": "кириллица",
        }
    ]
    rows = await targets(pool, task_id)
    assert [r["identifier_key"] for r in rows] == ["u:ivan_petrov", "u:maria_s", "p:+79123456789"]
    assert (rows[1]["user_identifier"], rows[1]["user_data"]["first_name"]) == ("Maria_S", "Мария")


async def test_member_scraper_export_with_bom_and_tabs(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    frame = pd.DataFrame(
        {
            "username": ["john_smith", "", "anna_k"],
            "user id": [123456789, 987654321, 555555555],
            "access hash": [-4411, 5522, 6633],
            "name": ["John Smith", "Олег", "Anna K"],
            "group": ["Клуб", "Клуб", "Клуб"],
            "group id": [1001234567, 1001234567, 1001234567],
        }
    )
    data = frame.to_csv(sep="\t", index=False, encoding="utf-8-sig").encode("utf-8-sig")
    assert data.startswith(b"\xef\xbb\xbf")
    response = await upload(client, headers, data, "members.tsv", task_id=task_id)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["source"]["encoding"], body["source"]["delimiter"]) == ("utf-8-sig", "\t")
    assert body["columns"] == {
        "header_row": 1,
        "username": "username",
        "user_id": "user id",
        "full_name": "name",
    }
    rows = await targets(pool, task_id)
    assert [r["identifier_key"] for r in rows] == ["u:john_smith", "id:987654321", "u:anna_k"]
    assert rows[0]["user_data"] == {
        "username": "john_smith",
        "user_id": "123456789",
        "first_name": "John",
        "last_name": "Smith",
    }


async def test_json_array_with_nested_platform_data(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    people = [
        {
            "id": 1,
            "platform_id": "42424242",
            "username": None,
            "platform_specific_data": {"user_id": 42424242, "first_name": "Ann", "is_bot": False},
        },
        {"id": 2, "platform_id": "7", "username": "bot_father_b", "platform_specific_data": {"is_bot": True}},
        {"id": 3, "platform_id": "9", "username": "Zed_Z", "platform_specific_data": {"last_name": "Zed"}},
    ]
    data = json.dumps(people, ensure_ascii=False).encode()
    response = await upload(
        client, headers, data, "people.json", task_id=task_id, content_type="application/json"
    )
    assert response.status_code == 201, response.text
    assert response.json()["counts"]["bots"] == 1
    rows = await targets(pool, task_id)
    assert [r["identifier_key"] for r in rows] == ["id:42424242", "u:zed_z"]
    assert rows[0]["user_data"]["first_name"] == "Ann"


async def test_openpyxl_sheet_row_numbers_in_rejections_match_the_sheet(
    client: Client, headers: dict[str, str]
) -> None:
    task_id = await new_task(client, headers)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Список на приглашение"])
    sheet.append([])
    sheet.append(["Ник", "ID", "Телефон"])
    sheet.append(["good_name", 1, None])
    sheet.append([])
    sheet.append(["x", None, None])  # row 6
    sheet.append([None, -1001234567890, None])  # row 7: a channel
    sheet.append([None, None, "+7 000"])  # row 8
    sheet.append(["GOOD_NAME", None, None])  # row 9: row 4 again
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = await upload(client, headers, buffer.getvalue(), "list.xlsx", task_id=task_id)
    assert response.status_code == 201, response.text
    rejected = {(r["row"], r["code"]) for r in response.json()["rejected_rows"]}
    assert rejected == {(6, "invalid"), (7, "invalid"), (8, "invalid"), (9, "duplicate")}
    assert response.json()["counts"]["rows"] == 5


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed here")
async def test_libreoffice_xlsx(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool, tmp_path: Path
) -> None:
    source = tmp_path / "people.csv"
    source.write_text("username,phone\nlibre_office_user,\n,+79123456789\n", encoding="utf-8")
    convert = await asyncio.create_subprocess_exec(
        "soffice", "--headless", "--convert-to", "xlsx", "--outdir", str(tmp_path), str(source)
    )
    assert await asyncio.wait_for(convert.wait(), timeout=120) == 0
    task_id = await new_task(client, headers)
    data = (tmp_path / "people.xlsx").read_bytes()
    response = await upload(client, headers, data, "people.xlsx", task_id=task_id)
    assert response.status_code == 201, response.text
    assert [r["identifier_key"] for r in await targets(pool, task_id)] == [
        "u:libre_office_user",
        "p:+79123456789",
    ]


async def test_a_lone_column_of_identifiers(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    data = b"@alice_b\n\nhttps://t.me/bob_the_b\n123456789\n+44 20 7946 0958\n"
    response = await upload(client, headers, data, "list.txt", task_id=task_id, content_type="text/plain")
    assert response.status_code == 201, response.text
    assert response.json()["columns"] == {"identifier": "column 1"}
    assert [r["identifier_key"] for r in await targets(pool, task_id)] == [
        "u:alice_b",
        "u:bob_the_b",
        "id:123456789",
        "p:+442079460958",
    ]


async def test_a_header_naming_a_role_is_never_a_person(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    """``identifier`` is the documented name of a lone column of identifiers: a one-column
    file headed with it imports the people under it, not ``@identifier``."""
    task_id = await new_task(client, headers)
    data = b"identifier\n@alice_b\n123456789\n"
    response = await upload(client, headers, data, "list.csv", task_id=task_id, content_type="text/csv")
    assert response.status_code == 201, response.text
    assert response.json()["columns"] == {"header_row": 1, "identifier": "identifier"}
    assert [r["identifier_key"] for r in await targets(pool, task_id)] == ["u:alice_b", "id:123456789"]
    for header in ("identifier", "username", "user_id", "Имя"):
        alone = await upload(client, headers, f"{header}\n".encode(), "h.csv", path="/import/validate")
        assert problem(alone, 422)["invalid-params"][0]["name"] == "file", header


async def test_a_column_no_alias_names_is_found_by_its_header_word_and_values(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    """The customer's export that had its 60 people rejected: ``Ник в Telegram`` holding
    @nicks and t.me links. The dry run says what it guessed and why; the import takes them."""
    task_id = await new_task(client, headers)
    nicks = [f"@person_{n:03}" if n % 2 else f"https://t.me/person_{n:03}" for n in range(60)]
    data = ("№;Ник в Telegram;Имя\n" + "".join(f"{n};{nick};Вера\n" for n, nick in enumerate(nicks))).encode()
    dry = await upload(client, headers, data, "export.csv", task_id=task_id, path="/import/validate")
    assert dry.status_code == 200, dry.text
    columns = dry.json()["columns"]
    assert (columns["username"], columns["first_name"], dry.json()["counts"]["imported"]) == (
        "Ник в Telegram",
        "Имя",
        60,
    )
    assert columns["guessed"] == [
        {
            "role": "username",
            "column": "Ник в Telegram",
            "reason": "header 'Ник в Telegram' contains 'ник'; 60 of 60 values are usernames or t.me links",
        }
    ]
    response = await upload(client, headers, data, "export.csv", task_id=task_id)
    assert response.status_code == 201, response.text
    assert response.json()["columns"]["guessed"] == columns["guessed"]
    keys = [r["identifier_key"] for r in await targets(pool, task_id)]
    assert keys == [f"u:person_{n:03}" for n in range(60)]
    stored = await client.get(f"{PREFIX}/imports/{response.json()['import_id']}", headers=headers)
    assert stored.json()["columns"]["guessed"] == columns["guessed"]


async def test_an_explicit_mapping_overrides_detection(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    data = "Контакт,Логин,Имя\nreal_person,decoy_name,Вера\n".encode()
    mapping = {"username": "Контакт", "first_name": "Имя"}
    response = await upload(client, headers, data, "m.csv", task_id=task_id, mapping=mapping)
    assert response.status_code == 201, response.text
    rows = await targets(pool, task_id)
    assert [(r["identifier_key"], r["user_data"]["first_name"]) for r in rows] == [("u:real_person", "Вера")]

    bad = await upload(client, headers, data, "m.csv", task_id=task_id, mapping={"username": "Нет"})
    assert problem(bad, 422)["invalid-params"][0]["name"] == "mapping.username"


async def test_people_already_in_the_task_are_left_out_whatever_identifier_names_them(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    first = b"username,user id\nalice_b,42\n"
    assert (await upload(client, headers, first, "a.csv", task_id=task_id)).status_code == 201
    again = b"username,user id,phone\nALICE_B,,\n,42,\nnew_person,,\n"
    response = await upload(client, headers, again, "b.csv", task_id=task_id)
    body = response.json()
    assert (body["targets_before"], body["counts"]["already_in_task"], body["counts"]["imported"]) == (
        1,
        2,
        1,
    )
    assert [r["identifier_key"] for r in await targets(pool, task_id)] == ["u:alice_b", "u:new_person"]


async def test_suppressed_people_are_left_out(
    client: Client, tenant: str, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    await pool.execute(
        "INSERT INTO invite_suppressions (user_id, identifier_key, user_identifier) VALUES ($1, 'id:42', '42')",
        tenant,
    )
    task_id = await new_task(client, headers)
    data = b"username,user id\nalice_b,42\nbob_the_b,43\n"
    response = await upload(client, headers, data, "a.csv", task_id=task_id)
    assert response.json()["counts"]["suppressed"] == 1
    assert response.json()["rejected_rows"][0]["reason"] == "on your suppression list"
    assert [r["identifier_key"] for r in await targets(pool, task_id)] == ["u:bob_the_b"]


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Client]:
    tuned = msgspec.structs.replace(settings, max_targets_per_task=3)
    async with AsyncTestClient(app=create_app(tuned)) as test_client:
        yield test_client


async def test_the_task_limit_imports_up_to_it_and_reports_the_excess(
    limited: Client, pool: asyncpg.Pool
) -> None:
    headers = auth_headers(limited, new_tenant())
    task_id = await new_task(limited, headers)
    assert (
        await upload(limited, headers, b"username\nfirst_one\n", "a.csv", task_id=task_id)
    ).status_code == 201
    data = b"username\n" + b"".join(f"person_{i:03d}\n".encode() for i in range(5))
    response = await upload(limited, headers, data, "b.csv", task_id=task_id)
    body = response.json()
    assert (body["counts"]["imported"], body["counts"]["over_limit"], body["target_limit"]) == (2, 3, 3)
    assert body["rejected_rows"][0] == {
        "row": 4,
        "code": "over_limit",
        "reason": "over the task's limit of 3 targets",
        "value": "person_002",
    }
    assert len(await targets(pool, task_id)) == 3


async def test_a_dry_run_writes_nothing_and_previews(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    data = "username,имя\nalice_b,Алиса\nbad name,\n".encode()
    response = await upload(client, headers, data, "a.csv", task_id=task_id, path="/import/validate")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["dry_run"], body["import_id"], body["counts"]["imported"], body["counts"]["invalid"]) == (
        True,
        None,
        1,
        1,
    )
    assert body["preview"] == [
        {
            "row": 2,
            "kind": "username",
            "value": "alice_b",
            "key": "u:alice_b",
            "data": {"username": "alice_b", "first_name": "Алиса"},
        }
    ]
    assert await written(pool, task_id) == (0, 0, 0)
    # without a task: the file on its own
    alone = await upload(client, headers, data, "a.csv", path="/import/validate")
    assert (alone.status_code, alone.json()["task_id"], alone.json()["counts"]["imported"]) == (200, None, 1)


async def test_a_dry_run_into_a_task_says_when_it_would_be_done(
    client: Client, headers: dict[str, str], settings: Settings
) -> None:
    task_id = await new_task(client, headers)
    data = b"username\nalice_b\nbob_the_b\ncarol_c\n"
    first = await upload(client, headers, data, "a.csv", task_id=task_id)
    assert first.status_code == 201, first.text
    more = b"username\ndave_d\neve_the_e\n"
    dry = (await upload(client, headers, more, "b.csv", task_id=task_id, path="/import/validate")).json()
    forecast = dry["forecast"]
    # the three the task holds and the two the import would add, over the accounts it would get
    assert (forecast["remaining"], forecast["accounts"]) == (5, settings.sandbox_accounts_per_tenant)
    # fresh accounts, on the first day of their warm-up
    today = min(
        settings.warmup_start_per_day if settings.warmup_days else settings.daily_quota, settings.daily_quota
    )
    assert forecast["people_per_day"] == settings.sandbox_accounts_per_tenant * today
    assert forecast["finish_at"] is not None
    alone = (await upload(client, headers, more, "b.csv", path="/import/validate")).json()
    assert alone["forecast"] is None  # no task: no accounts to plan with


async def test_rejected_rows_are_kept_and_paged(client: Client, headers: dict[str, str]) -> None:
    task_id = await new_task(client, headers)
    data = b"username\n" + b"".join(f"{i}x\n".encode() for i in range(250)) + b"good_person\n"
    response = await client.post(
        f"{PREFIX}/import/file?rejected_limit=10",
        files={"file": ("a.csv", data, "text/csv")},
        data={"task_id": task_id},
        headers=headers,
    )
    body = response.json()
    assert (body["counts"]["rejected"], body["rejected_kept"], len(body["rejected_rows"])) == (250, 250, 10)
    page = await client.get(
        f"{PREFIX}/imports/{body['import_id']}",
        params={"rejected_offset": 245, "rejected_limit": 100},
        headers=headers,
    )
    assert page.status_code == 200, page.text
    assert [r["row"] for r in page.json()["rejected_rows"]] == [247, 248, 249, 250, 251]
    assert page.json()["counts"] == body["counts"]
    stranger = auth_headers(client, new_tenant())
    problem(await client.get(f"{PREFIX}/imports/{body['import_id']}", headers=stranger), 404)


async def test_an_import_is_audited(
    client: Client, tenant: str, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    response = await upload(client, headers, b"username\nalice_b\n", "a.csv", task_id=task_id)
    row = await pool.fetchrow(
        "SELECT user_id, resource, details FROM invite_audit_log WHERE action = 'import' AND resource_id = $1",
        task_id,
    )
    assert row is not None
    assert (row["user_id"], row["resource"]) == (tenant, "task")
    assert row["details"]["import_id"] == response.json()["import_id"]
    assert row["details"]["counts"]["imported"] == 1


async def test_only_the_tenants_own_task(client: Client, headers: dict[str, str], pool: asyncpg.Pool) -> None:
    task_id = await new_task(client, headers)
    stranger = auth_headers(client, new_tenant())
    response = await upload(client, stranger, b"username\nalice_b\n", "a.csv", task_id=task_id)
    problem(response, 404)
    missing = await upload(client, headers, b"username\nalice_b\n", "a.csv", task_id=str(uuid.uuid4()))
    problem(missing, 404)
    assert await written(pool, task_id) == (0, 0, 0)


@pytest.mark.parametrize("status", ["running", "completed", "cancelled"])
async def test_only_while_the_task_can_change(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool, status: str
) -> None:
    task_id = await new_task(client, headers)
    await pool.execute("UPDATE invite_tasks SET status = $2 WHERE id = $1", uuid.UUID(task_id), status)
    response = await upload(client, headers, b"username\nalice_b\n", "a.csv", task_id=task_id)
    assert status in problem(response, 409)["detail"]
    assert await written(pool, task_id) == (0, 0, 0)


async def test_a_paused_task_takes_more_people(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    await pool.execute("UPDATE invite_tasks SET status = 'paused' WHERE id = $1", uuid.UUID(task_id))
    response = await upload(client, headers, b"username\nalice_b\n", "a.csv", task_id=task_id)
    assert response.status_code == 201, response.text
    counts = await pool.fetchval(
        "SELECT n FROM invite_task_counts WHERE task_id = $1 AND status = 'pending'", uuid.UUID(task_id)
    )
    assert counts == 1
