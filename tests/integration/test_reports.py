"""Reporting endpoints on rows written as the engine writes them: /stats, /report (JSON, CSV,
XLSX), /logs and /retry-failed, tenant-scoped; plus the plans that keep them fast."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import asyncpg
import msgspec
import openpyxl
import polars as pl
import pytest

from invite.kernel.settings import Settings
from tests.integration.api import PREFIX, Client, auth_headers, invite_task, new_tenant

T0 = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The app without its engine: these tests write the engine's rows themselves."""
    return msgspec.structs.replace(settings, engine_enabled=False)


async def new_task(client: Client, headers: dict[str, str], **overrides: Any) -> str:
    response = await client.post(f"{PREFIX}/tasks", json=invite_task(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


async def insert_targets(pool: asyncpg.Pool, task_id: str, count: int) -> None:
    """Plain rows in invite_targets (the import's job in real use): user1, user2, ..."""
    await pool.execute(
        """INSERT INTO invite_targets (task_id, user_identifier, identifier_key)
           SELECT $1, 'user' || n, 'u:user' || n FROM generate_series(1, $2) AS n""",
        uuid.UUID(task_id),
        count,
    )


async def set_task(pool: asyncpg.Pool, task_id: str, status: str, **times: datetime) -> None:
    await pool.execute(
        "UPDATE invite_tasks SET status = $2, started_at = $3, completed_at = $4 WHERE id = $1",
        uuid.UUID(task_id),
        status,
        times.get("started_at", T0),
        times.get("completed_at"),
    )


async def target_ids(pool: asyncpg.Pool, task_id: str) -> list[uuid.UUID]:
    rows = await pool.fetch(
        "SELECT id FROM invite_targets WHERE task_id = $1 ORDER BY seq", uuid.UUID(task_id)
    )
    return [r["id"] for r in rows]


async def finish_target(
    pool: asyncpg.Pool,
    target_id: uuid.UUID,
    status: str,
    outcome: str,
    account: str,
    at: datetime,
    error: str | None = None,
) -> None:
    """A target's final state and its execution log row, in one statement each, as the engine does."""
    await pool.execute(
        """UPDATE invite_targets SET status = $2, outcome = $3, account_id = $4, processed_at = $5,
                  error_message = $6, attempts = attempts + 1 WHERE id = $1""",
        target_id,
        status,
        outcome,
        account,
        at,
        error,
    )
    await pool.execute(
        """INSERT INTO invite_execution_logs (task_id, target_id, account_id, action, status, details, created_at)
           SELECT task_id, id, $2, 'invite_to_group', $3, $4, $5 FROM invite_targets WHERE id = $1""",
        target_id,
        account,
        status,
        {"outcome": outcome},
        at,
    )


@pytest.fixture
async def campaign(client: Client, headers: dict[str, str], pool: asyncpg.Pool) -> str:
    """A completed task of 6 targets over two accounts, across two hours."""
    pool = pool
    task_id = await new_task(client, headers)
    await insert_targets(pool, task_id, 6)
    ids = await target_ids(pool, task_id)
    await finish_target(pool, ids[0], "succeeded", "success", "acc-a", T0)
    await finish_target(pool, ids[1], "succeeded", "success", "acc-a", T0 + timedelta(minutes=35))
    await finish_target(pool, ids[2], "skipped", "privacy_restricted", "acc-a", T0 + timedelta(minutes=65))
    await finish_target(
        pool, ids[3], "failed", "transient", "acc-b", T0 + timedelta(minutes=70), "RPC timeout"
    )
    await finish_target(pool, ids[4], "skipped", "not_found", "acc-b", T0 + timedelta(minutes=75))
    await finish_target(pool, ids[5], "succeeded", "already_member", "acc-b", T0 + timedelta(minutes=80))
    await pool.execute(
        "INSERT INTO invite_task_accounts (task_id, account_id, platform, status, status_reason) "
        "VALUES ($1, 'acc-a', 'telegram', 'active', NULL), ($1, 'acc-b', 'telegram', 'cooldown', 'FloodWait 600 s'),"
        " ($1, 'acc-c', 'telegram', 'excluded', 'no invite right')",
        uuid.UUID(task_id),
    )
    await set_task(pool, task_id, "completed", completed_at=T0 + timedelta(minutes=85))
    return task_id


# --- /stats ----------------------------------------------------------------------------------


async def test_stats_per_account_per_outcome_per_hour(
    client: Client, headers: dict[str, str], campaign: str
) -> None:
    response = await client.get(f"{PREFIX}/tasks/{campaign}/stats", headers=headers)
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["targets"] == {
        "pending": 0,
        "in_flight": 0,
        "succeeded": 3,
        "skipped": 2,
        "failed": 1,
        "uncertain": 0,
        "cancelled": 0,
    }
    assert stats["actions"] == 6
    assert stats["by_action"] == {"invite_to_group": 6}
    assert stats["by_outcome"] == {
        "success": 2,
        "privacy_restricted": 1,
        "transient": 1,
        "not_found": 1,
        "already_member": 1,
    }
    accounts = {a["account_id"]: a for a in stats["by_account"]}
    assert set(accounts) == {"acc-a", "acc-b", "acc-c"}
    assert accounts["acc-a"]["actions"] == 3
    assert accounts["acc-a"]["by_status"] == {"succeeded": 2, "skipped": 1}
    assert accounts["acc-a"]["first_action_at"] == "2026-03-02T10:05:00Z"
    assert accounts["acc-a"]["last_action_at"] == "2026-03-02T11:10:00Z"
    assert (accounts["acc-b"]["state"], accounts["acc-b"]["state_reason"]) == ("cooldown", "FloodWait 600 s")
    assert accounts["acc-b"]["by_outcome"] == {"transient": 1, "not_found": 1, "already_member": 1}
    assert (accounts["acc-c"]["state"], accounts["acc-c"]["actions"]) == ("excluded", 0)
    hours = [(h["hour"], h["actions"], h["by_status"]) for h in stats["by_hour"]]
    assert hours == [
        ("2026-03-02T10:00:00Z", 2, {"succeeded": 2}),
        ("2026-03-02T11:00:00Z", 4, {"skipped": 2, "failed": 1, "succeeded": 1}),
    ]


async def test_stats_hours_within_a_window(client: Client, headers: dict[str, str], campaign: str) -> None:
    response = await client.get(
        f"{PREFIX}/tasks/{campaign}/stats",
        params={"since": "2026-03-02T11:00:00Z", "until": "2026-03-02T12:00:00+00:00"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert [h["hour"] for h in response.json()["by_hour"]] == ["2026-03-02T11:00:00Z"]
    assert response.json()["actions"] == 6  # the window narrows the hours only


async def test_stats_survive_log_retention(
    client: Client, headers: dict[str, str], campaign: str, pool: asyncpg.Pool
) -> None:
    await pool.execute("DELETE FROM invite_execution_logs WHERE task_id = $1", uuid.UUID(campaign))
    stats = (await client.get(f"{PREFIX}/tasks/{campaign}/stats", headers=headers)).json()
    assert stats["actions"] == 6
    assert sum(h["actions"] for h in stats["by_hour"]) == 6


# --- /report ---------------------------------------------------------------------------------


async def test_report_json(client: Client, headers: dict[str, str], campaign: str) -> None:
    response = await client.get(f"{PREFIX}/tasks/{campaign}/report", headers=headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["final"] is True
    assert report["task"]["id"] == campaign
    assert report["task"]["status"] == "completed"
    assert report["duration_seconds"] == 85 * 60
    assert report["targets"]["total"] == 6
    assert report["targets"]["processed"] == 6
    assert report["targets"]["succeeded"] == 3
    assert report["targets"]["success_rate"] == 0.5
    assert report["actions"] == 6
    assert report["by_outcome"]["privacy_restricted"] == 1
    assert [a["account_id"] for a in report["by_account"]] == ["acc-a", "acc-b", "acc-c"]


async def test_report_of_a_task_still_running_is_not_final(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    await insert_targets(pool, task_id, 3)
    await set_task(pool, task_id, "running")
    report = (await client.get(f"{PREFIX}/tasks/{task_id}/report", headers=headers)).json()
    assert report["final"] is False
    assert report["targets"]["by_status"]["pending"] == 3
    assert report["targets"]["success_rate"] == 0.0


HOSTILE = ['=HYPERLINK("http://evil","x")', "+7 912 345", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "plain"]


async def hostile_task(client: Client, headers: dict[str, str], pool: asyncpg.Pool) -> str:
    """Targets whose every text cell could be read as a formula by a spreadsheet."""
    task_id = await new_task(client, headers)
    await pool.executemany(
        """INSERT INTO invite_targets (task_id, user_identifier, identifier_key, user_data)
           VALUES ($1, $2, $3, $4)""",
        [
            (uuid.UUID(task_id), value, f"u:hostile{n}", {"first_name": value, "username": f"user{n}"})
            for n, value in enumerate(HOSTILE)
        ],
    )
    ids = await target_ids(pool, task_id)
    await finish_target(pool, ids[0], "failed", "transient", "=acc", T0, error="=1+1")
    return task_id


def neutralised(value: str) -> str:
    return value if value == "plain" else "'" + value


async def test_csv_export_one_row_per_target_with_formulas_neutralised(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await hostile_task(client, headers, pool)
    response = await client.get(f"{PREFIX}/tasks/{task_id}/report", params={"format": "csv"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="task-{task_id}.csv"' in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    frame = pl.read_csv(io.BytesIO(response.content), infer_schema=False)
    assert frame.columns[:3] == ["seq", "user_identifier", "username"]
    assert frame["user_identifier"].to_list() == [neutralised(v) for v in HOSTILE]
    assert frame["first_name"].to_list() == [neutralised(v) for v in HOSTILE]
    assert frame["username"].to_list() == [f"user{n}" for n in range(len(HOSTILE))]
    first = frame.row(0, named=True)
    assert (first["status"], first["outcome"], first["account_id"], first["error_message"]) == (
        "failed",
        "transient",
        "'=acc",
        "'=1+1",
    )
    assert first["processed_at_utc"] == T0.isoformat()
    seqs = [int(s) for s in frame["seq"].to_list()]
    assert seqs == sorted(seqs)


SEPARATED = ["a;@SUM(A1)", "b,=1+1", "c\t-2+3", 'd; "=cmd"', "e\n+cmd", "f;\r\n=x", "g;plain,text"]
FORMULA_START = ("=", "+", "-", "@")


async def test_csv_export_is_safe_whichever_separator_the_locale_splits_on(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    """ru-RU Excel splits a .csv on ``;`` and the quotes of ``"a;@SUM(A1)"`` then no longer
    hold it together: no piece, split on any separator or line break, may start a formula."""
    task_id = await new_task(client, headers)
    await pool.executemany(
        "INSERT INTO invite_targets (task_id, user_identifier, identifier_key, user_data) VALUES ($1, $2, $3, $4)",
        [(uuid.UUID(task_id), v, f"u:sep{n}", {"first_name": v}) for n, v in enumerate(SEPARATED)],
    )
    response = await client.get(f"{PREFIX}/tasks/{task_id}/report", params={"format": "csv"}, headers=headers)
    text = response.content.decode("utf-8-sig")
    read = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["user_identifier"] for r in read] == [
        "a;'@SUM(A1)",
        "b,'=1+1",
        "c\t'-2+3",
        'd; "\'=cmd"',
        "e\n'+cmd",
        "f;\r\n'=x",
        "g;plain,text",
    ]
    assert [r["first_name"] for r in read] == [r["user_identifier"] for r in read]
    for delimiter in (",", ";", "\t"):  # the locale's list separator, quotes honoured
        for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            assert not [c for c in record if c.lstrip(' "').startswith(FORMULA_START)], delimiter
    pieces = re.split(r"[,;\t\r\n]", text)  # and with the quotes lost
    assert not [p for p in pieces if p.lstrip(' "').startswith(FORMULA_START)]


async def test_xlsx_export_opens_with_formulas_neutralised(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await hostile_task(client, headers, pool)
    response = await client.get(
        f"{PREFIX}/tasks/{task_id}/report", params={"format": "xlsx"}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    frame = pl.read_excel(io.BytesIO(response.content), engine="calamine")
    assert frame.height == len(HOSTILE)
    assert frame["user_identifier"].to_list() == [neutralised(v) for v in HOSTILE]
    assert frame["error_message"][0] == "'=1+1"
    assert frame["attempts"].to_list() == [1] + [0] * (len(HOSTILE) - 1)
    assert frame["processed_at_utc"][0] == T0.replace(tzinfo=None)


async def test_export_shows_who_replied_opted_out_and_their_invite_link(
    client: Client, headers: dict[str, str], campaign: str, pool: asyncpg.Pool
) -> None:
    """replied_at, opted_out_at (the reply's times, never its text) and link_state, in both formats."""
    ids = await target_ids(pool, campaign)
    replied, stopped = T0 + timedelta(hours=3), T0 + timedelta(hours=5)
    await pool.execute("UPDATE invite_targets SET replied_at = $2 WHERE id = $1", ids[0], replied)
    await pool.execute(
        "UPDATE invite_targets SET replied_at = $2, opted_out_at = $2 WHERE id = $1", ids[1], stopped
    )
    await pool.execute("UPDATE invite_targets SET link_state = 'sent' WHERE id = $1", ids[2])
    await pool.execute("UPDATE invite_targets SET link_state = 'joined' WHERE id = $1", ids[3])
    url = f"{PREFIX}/tasks/{campaign}/report"
    body = (await client.get(url, params={"format": "csv"}, headers=headers)).content
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert list(rows[0])[-3:] == ["replied_at_utc", "opted_out_at_utc", "link_state"]
    assert [(r["replied_at_utc"], r["opted_out_at_utc"], r["link_state"]) for r in rows] == [
        (replied.isoformat(), "", ""),
        (stopped.isoformat(), stopped.isoformat(), ""),
        ("", "", "sent"),
        ("", "", "joined"),
        ("", "", ""),
        ("", "", ""),
    ]
    xlsx = (await client.get(url, params={"format": "xlsx"}, headers=headers)).content
    frame = pl.read_excel(io.BytesIO(xlsx), engine="calamine")
    assert frame.columns[-3:] == ["replied_at_utc", "opted_out_at_utc", "link_state"]
    naive = [replied.replace(tzinfo=None), stopped.replace(tzinfo=None)]
    assert frame["replied_at_utc"].to_list() == [*naive, None, None, None, None]
    assert frame["opted_out_at_utc"].to_list() == [None, naive[1], None, None, None, None]
    assert frame["link_state"].to_list() == [None, None, "sent", "joined", None, None]


def chart_series(book: bytes) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Each chart in an XLSX file: (file, kind, [(name ref, values ref)]), read from its XML."""
    ns = {"c": "http://schemas.openxmlformats.org/drawingml/2006/chart"}
    charts = []
    with zipfile.ZipFile(io.BytesIO(book)) as parts:
        for name in sorted(n for n in parts.namelist() if n.startswith("xl/charts/chart")):
            plot = ElementTree.fromstring(parts.read(name)).find("c:chart/c:plotArea", ns)  # noqa: S314 (our own file)
            assert plot is not None
            kind = next(child.tag.split("}")[1] for child in plot if child.tag.endswith("Chart"))
            series = [
                (s.findtext("c:tx/c:strRef/c:f", "", ns), s.findtext("c:val/c:numRef/c:f", "", ns))
                for s in plot.iter(f"{{{ns['c']}}}ser")
            ]
            charts.append((name, kind, series))
    return charts


def cells_at(sheet: Any, ref: str) -> list[Any]:
    """The values of a chart reference such as Summary!$B$4:$B$5 (or one cell)."""
    area = ref.split("!")[1].replace("$", "")
    found = sheet[area]
    if not isinstance(found, tuple):
        return [found.value]
    return [row[0].value if isinstance(row, tuple) else row.value for row in found]


async def test_xlsx_report_opens_on_a_summary_with_native_charts_over_its_data(
    client: Client, headers: dict[str, str], campaign: str
) -> None:
    stats = (await client.get(f"{PREFIX}/tasks/{campaign}/stats", headers=headers)).json()
    response = await client.get(
        f"{PREFIX}/tasks/{campaign}/report", params={"format": "xlsx"}, headers=headers
    )
    assert response.status_code == 200, response.text
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames[-1] == "Summary"
    assert book.active is not None
    assert book.active.title == "Summary"  # it opens there; the targets stay the first sheet
    assert pl.read_excel(io.BytesIO(response.content)).height == 6
    summary = book["Summary"]
    charts = chart_series(response.content)
    assert [kind for _, kind, _ in charts] == ["barChart", "lineChart", "barChart"]
    per_hour, progress, per_account = (series for _, _, series in charts)
    # actions per hour by outcome: one series per outcome, a value per hour
    outcomes = {cells_at(summary, name)[0]: cells_at(summary, values) for name, values in per_hour}
    assert set(outcomes) == set(stats["by_outcome"])
    for outcome, values in outcomes.items():
        assert values == [h["by_outcome"].get(outcome, 0) for h in stats["by_hour"]]
    # progress: actions and successes so far, hour by hour
    lines = {cells_at(summary, name)[0]: cells_at(summary, values) for name, values in progress}
    assert lines == {"actions so far": [2, 6], "succeeded so far": [2, 3]}
    # results per account: a series per outcome, a value per account
    accounts = {a["account_id"]: a["by_outcome"] for a in stats["by_account"]}
    for name, ref in per_account:
        outcome = cells_at(summary, name)[0]
        assert cells_at(summary, ref) == [accounts[a].get(outcome, 0) for a in accounts]


async def test_export_pages_through_every_target_in_import_order(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    await insert_targets(pool, task_id, 10_050)  # three pages of 5,000
    response = await client.get(f"{PREFIX}/tasks/{task_id}/report", params={"format": "csv"}, headers=headers)
    frame = pl.read_csv(io.BytesIO(response.content))
    assert frame.height == 10_050
    assert frame["user_identifier"].to_list() == [f"user{n}" for n in range(1, 10_051)]
    assert frame["seq"].is_sorted()


async def test_export_of_an_empty_task_is_a_header(client: Client, headers: dict[str, str]) -> None:
    task_id = await new_task(client, headers)
    csv_body = (await client.get(f"{PREFIX}/tasks/{task_id}/report?format=csv", headers=headers)).content
    assert csv_body.decode("utf-8-sig").strip().startswith("seq,user_identifier")
    xlsx = await client.get(f"{PREFIX}/tasks/{task_id}/report?format=xlsx", headers=headers)
    assert pl.read_excel(io.BytesIO(xlsx.content)).height == 0
    assert chart_series(xlsx.content) == []  # nothing to draw yet, the summary's tables are empty


async def test_unknown_report_format_is_a_problem_naming_it(client: Client, headers: dict[str, str]) -> None:
    task_id = await new_task(client, headers)
    response = await client.get(f"{PREFIX}/tasks/{task_id}/report?format=pdf", headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "format" in [p["name"] for p in response.json()["invalid-params"]]


# --- /logs -----------------------------------------------------------------------------------


@pytest.fixture
async def logged(client: Client, headers: dict[str, str], pool: asyncpg.Pool) -> str:
    """25 log rows: accounts a (odd minutes) and b (even), one a minute from T0."""
    task_id = await new_task(client, headers)
    await insert_targets(pool, task_id, 25)
    ids = await target_ids(pool, task_id)
    for n, target in enumerate(ids):
        status, outcome = ("succeeded", "success") if n % 3 else ("skipped", "privacy_restricted")
        await finish_target(
            pool, target, status, outcome, "acc-a" if n % 2 else "acc-b", T0 + timedelta(minutes=n)
        )
    return task_id


async def test_logs_newest_first_in_keyset_pages(
    client: Client, headers: dict[str, str], logged: str
) -> None:
    seen: list[str] = []
    times: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{PREFIX}/tasks/{logged}/logs", params=params, headers=headers)).json()
        pages += 1
        seen += [item["id"] for item in page["items"]]
        times += [item["created_at"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 25
    assert times == sorted(times, reverse=True)
    first = (await client.get(f"{PREFIX}/tasks/{logged}/logs?limit=1", headers=headers)).json()["items"][0]
    assert first["user_identifier"] == "user25"
    assert (first["account_id"], first["action"], first["details"]) == (
        "acc-b",
        "invite_to_group",
        {"outcome": "privacy_restricted"},
    )


async def test_logs_filters(client: Client, headers: dict[str, str], logged: str) -> None:
    async def items(**params: Any) -> list[dict[str, Any]]:
        response = await client.get(
            f"{PREFIX}/tasks/{logged}/logs", params={"limit": 500, **params}, headers=headers
        )
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()["items"]
        return result

    assert len(await items(account_id="acc-a")) == 12
    assert {i["account_id"] for i in await items(account_id="acc-a")} == {"acc-a"}
    assert len(await items(status="skipped")) == 9
    assert len(await items(status="skipped", account_id="acc-b")) == 5
    assert len(await items(action="invite_to_group")) == 25
    assert await items(action="send_message") == []
    window = await items(
        since=(T0 + timedelta(minutes=5)).isoformat(), until=(T0 + timedelta(minutes=10)).isoformat()
    )
    assert [i["created_at"] for i in window] == [
        (T0 + timedelta(minutes=m)).isoformat().replace("+00:00", "Z") for m in (9, 8, 7, 6, 5)
    ]
    # pages of a filtered, windowed query stay inside the filter and the window
    page = (
        await client.get(
            f"{PREFIX}/tasks/{logged}/logs",
            params={"limit": 2, "account_id": "acc-b", "until": (T0 + timedelta(minutes=9)).isoformat()},
            headers=headers,
        )
    ).json()
    rest = (
        await client.get(
            f"{PREFIX}/tasks/{logged}/logs",
            params={"limit": 50, "account_id": "acc-b", "cursor": page["next_cursor"]},
            headers=headers,
        )
    ).json()
    minutes = [
        int((datetime.fromisoformat(i["created_at"]) - T0).total_seconds() // 60)
        for i in page["items"] + rest["items"]
    ]
    assert minutes == [8, 6, 4, 2, 0]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"since": "2026-03-02T12:00:00Z", "until": "2026-03-02T11:00:00Z"}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"since": "yesterday"}, "since"),
    ],
)
async def test_bad_log_queries_are_problems_naming_the_field(
    client: Client, headers: dict[str, str], params: dict[str, Any], field: str
) -> None:
    task_id = await new_task(client, headers)
    response = await client.get(f"{PREFIX}/tasks/{task_id}/logs", params=params, headers=headers)
    assert response.status_code == 422, response.text
    assert field in [p["name"] for p in response.json()["invalid-params"]]


# --- /retry-failed ---------------------------------------------------------------------------


async def failed_mix(client: Client, headers: dict[str, str], pool: asyncpg.Pool, status: str) -> str:
    """A task with failed targets for every kind of reason, one uncertain message and a success."""
    pool = pool
    task_id = await new_task(client, headers)
    await insert_targets(pool, task_id, 7)
    ids = await target_ids(pool, task_id)
    outcomes = ["transient", "flood_wait", "account_dead", "not_found", "privacy_restricted"]
    for target, outcome in zip(ids, outcomes, strict=False):
        await finish_target(pool, target, "failed", outcome, "acc-a", T0, error=outcome)
    await finish_target(pool, ids[5], "uncertain", "transient", "acc-a", T0)
    await finish_target(pool, ids[6], "succeeded", "success", "acc-a", T0)
    finished = (
        {"completed_at": T0 + timedelta(hours=1)} if status in ("completed", "failed", "cancelled") else {}
    )
    await set_task(pool, task_id, status, **finished)
    return task_id


async def test_retry_failed_reopens_a_completed_task(
    client: Client, tenant: str, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await failed_mix(client, headers, pool, "completed")
    response = await client.post(f"{PREFIX}/tasks/{task_id}/retry-failed", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "task_id": task_id,
        "requeued": 3,
        "skipped_suppressed": 0,
        "status": "running",
        "reopened": True,
    }
    rows = await pool.fetch(
        "SELECT user_identifier, status, outcome, attempts, error_message, account_id, next_attempt_at"
        " FROM invite_targets WHERE task_id = $1 ORDER BY seq",
        uuid.UUID(task_id),
    )
    assert [(r["status"], r["outcome"]) for r in rows] == [
        ("pending", None),
        ("pending", None),
        ("pending", None),
        ("failed", "not_found"),
        ("failed", "privacy_restricted"),
        ("uncertain", "transient"),  # a message whose fate is unknown is never re-sent
        ("succeeded", "success"),
    ]
    assert all(
        r["attempts"] == 0 and r["error_message"] is None and r["account_id"] is None for r in rows[:3]
    )
    task = (await client.get(f"{PREFIX}/tasks/{task_id}", headers=headers)).json()
    assert (task["status"], task["completed_at"]) == ("running", None)
    status = (await client.get(f"{PREFIX}/tasks/{task_id}/status", headers=headers)).json()
    assert (status["counts"]["pending"], status["counts"]["failed"]) == (3, 2)
    audit = await pool.fetchrow(
        "SELECT action, details FROM invite_audit_log WHERE user_id = $1 AND resource_id = $2 ORDER BY id DESC LIMIT 1",
        tenant,
        task_id,
    )
    assert audit is not None
    assert audit["action"] == "task.retry_failed"
    assert audit["details"] == {
        "requeued": 3,
        "skipped_suppressed": 0,
        "reopened": True,
        "from": "completed",
    }


async def test_retry_failed_keeps_a_paused_task_paused(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await failed_mix(client, headers, pool, "paused")
    body = (await client.post(f"{PREFIX}/tasks/{task_id}/retry-failed", headers=headers)).json()
    assert body == {
        "task_id": task_id,
        "requeued": 3,
        "skipped_suppressed": 0,
        "status": "paused",
        "reopened": False,
    }
    again = (await client.post(f"{PREFIX}/tasks/{task_id}/retry-failed", headers=headers)).json()
    assert again["requeued"] == 0


async def test_retry_failed_publishes_the_reopening(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool, database_url: str
) -> None:
    task_id = await failed_mix(client, headers, pool, "completed")
    listener = await asyncpg.connect(database_url)
    heard: list[dict[str, Any]] = []
    try:
        await listener.add_listener("invite_task_events", lambda *args: heard.append(json.loads(args[3])))
        await client.post(f"{PREFIX}/tasks/{task_id}/retry-failed", headers=headers)
        await listener.execute("SELECT 1")  # let the notification arrive
    finally:
        await listener.close()
    assert {"task_id": task_id, "type": "status", "status": "running", "reason": "retry_failed"} in heard


@pytest.mark.parametrize("status", ["cancelled", "draft"])
async def test_retry_failed_refuses_cancelled_and_draft_tasks(
    client: Client, headers: dict[str, str], status: str, pool: asyncpg.Pool
) -> None:
    task_id = await failed_mix(client, headers, pool, status)
    response = await client.post(f"{PREFIX}/tasks/{task_id}/retry-failed", headers=headers)
    assert response.status_code == 409
    assert response.json()["task_status"] == status
    left = await pool.fetchval(
        "SELECT count(*) FROM invite_targets WHERE task_id = $1 AND status = 'failed'", uuid.UUID(task_id)
    )
    assert left == 5


async def test_reopening_counts_against_the_active_task_limit(
    client: Client, tenant: str, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await failed_mix(client, headers, pool, "completed")
    limit = client.app.state.settings.max_active_tasks_per_tenant
    for _ in range(limit):
        await set_task(pool, await new_task(client, headers), "running")
    response = await client.post(f"{PREFIX}/tasks/{task_id}/retry-failed", headers=headers)
    assert response.status_code == 409
    assert response.json()["limit"] == limit
    task = (await client.get(f"{PREFIX}/tasks/{task_id}", headers=headers)).json()
    assert task["status"] == "completed"
    failed = await pool.fetchval(
        "SELECT count(*) FROM invite_targets WHERE task_id = $1 AND status = 'failed'", uuid.UUID(task_id)
    )
    assert failed == 5  # nothing changed


# --- tenant isolation ------------------------------------------------------------------------

ROUTES = [
    ("GET", "stats"),
    ("GET", "report"),
    ("GET", "report?format=csv"),
    ("GET", "report?format=xlsx"),
    ("GET", "logs"),
    ("POST", "retry-failed"),
    ("GET", "events"),
]


@pytest.mark.parametrize(("method", "route"), ROUTES)
async def test_another_tenants_task_is_not_found(
    client: Client, headers: dict[str, str], campaign: str, method: str, route: str
) -> None:
    stranger = auth_headers(client, new_tenant())
    response = await client.request(method, f"{PREFIX}/tasks/{campaign}/{route}", headers=stranger)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    missing = await client.request(method, f"{PREFIX}/tasks/{uuid.uuid4()}/{route}", headers=headers)
    assert missing.status_code == 404


@pytest.mark.parametrize(("method", "route"), ROUTES)
async def test_reports_need_a_token(client: Client, campaign: str, method: str, route: str) -> None:
    response = await client.request(method, f"{PREFIX}/tasks/{campaign}/{route}")
    assert response.status_code == 401


# --- plans that keep reports fast at a million targets ---------------------------------------


async def plan(pool: asyncpg.Pool, name: str, *args: Any) -> str:
    from invite.kernel.db import queries
    from invite.kernel.settings import ROOT

    sql = queries(str(ROOT / "sql"))[name]
    rows = await pool.fetch(f"EXPLAIN {sql}", *args)
    return "\n".join(r[0] for r in rows)


async def test_export_and_account_log_pages_read_their_indexes(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    pool = pool
    task_id = await new_task(client, headers)
    await insert_targets(pool, task_id, 20_000)
    await pool.execute(
        """INSERT INTO invite_execution_logs (task_id, target_id, account_id, action, status, created_at)
           SELECT task_id, id, 'acc-' || (seq % 50), 'invite_to_group', 'succeeded', $2::timestamptz + seq * interval '1 s'
           FROM invite_targets WHERE task_id = $1""",
        uuid.UUID(task_id),
        T0,
    )
    await pool.execute("ANALYZE invite_targets")
    await pool.execute("ANALYZE invite_execution_logs")
    export = await plan(pool, "reports.export_page", uuid.UUID(task_id), 10_000, 5000)
    assert "invite_targets_task_seq" in export
    assert "Sort" not in export
    by_account = await plan(
        pool,
        "reports.logs_page_by_account",
        uuid.UUID(task_id),
        datetime.max.replace(tzinfo=UTC),
        uuid.UUID(int=(1 << 128) - 1),
        datetime.min.replace(tzinfo=UTC),
        None,
        None,
        101,
        "acc-7",
    )
    assert "invite_logs_task_account_created" in by_account
