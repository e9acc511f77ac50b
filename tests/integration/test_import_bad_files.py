"""Bad uploads: each is a problem answer (413, 415, 422) and nothing is written."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import zipfile
from collections.abc import AsyncIterator, Sequence

import asyncpg
import httpx
import msgspec
import openpyxl
import pytest
import uvicorn
from litestar.testing import AsyncTestClient

from invite.app import create_app
from invite.kernel.settings import Settings
from tests.integration.api import PREFIX, Client, auth_headers, invite_task, new_tenant
from tests.integration.audience import new_task, problem, upload, written

LIMIT = 64 * 1024


@pytest.fixture
async def small(settings: Settings) -> AsyncIterator[Client]:
    """Limits small enough to cross cheaply: 64 KB uploads, XLSX unpacking to 2 MB."""
    tuned = msgspec.structs.replace(settings, max_upload_bytes=LIMIT, max_xlsx_unpacked_bytes=2 * 1024 * 1024)
    async with AsyncTestClient(app=create_app(tuned)) as test_client:
        yield test_client


@pytest.fixture
def headers(small: Client) -> dict[str, str]:
    return auth_headers(small, new_tenant())


@pytest.fixture
async def task_id(small: Client, headers: dict[str, str]) -> str:
    return await new_task(small, headers)


def xlsx(rows: Sequence[Sequence[object]]) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def test_a_file_over_the_limit_is_413(
    small: Client, headers: dict[str, str], task_id: str, pool: asyncpg.Pool
) -> None:
    data = b"username\n" + b"alice_b\n" * (LIMIT // 8)
    assert len(data) > LIMIT
    body = problem(await upload(small, headers, data, "big.csv", task_id=task_id), 413)
    assert body["invalid-params"] == [{"name": "file", "reason": f"at most {LIMIT} bytes"}]
    assert await written(pool, task_id) == (0, 0, 0)


async def test_the_limit_holds_while_streaming_without_a_content_length(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """Over real HTTP (uvicorn on loopback; the test client buffers bodies): a chunked upload
    with no Content-Length is cut off near the limit, not read to its end."""
    app = create_app(msgspec.structs.replace(settings, max_upload_bytes=LIMIT))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:  # noqa: ASYNC110 - uvicorn has no "started" event to wait on
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{listener.getsockname()[1]}{PREFIX}"
    headers = auth_headers(AsyncTestClient(app), new_tenant())
    boundary = "limit-test-boundary"
    chunks = 100_000  # 800 MB if nobody stopped reading
    sent: list[int] = []

    async def body(task_id: str) -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="task_id"\r\n\r\n{task_id}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\nusername\r\n"
        ).encode()
        for _ in range(chunks):
            sent.append(1)
            yield b"alice_b\n" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            created = await http.post("/tasks", json=invite_task(), headers=headers)
            task_id = created.json()["id"]
            try:
                response = await http.post(
                    "/import/file",
                    content=body(task_id),
                    headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                )
                assert response.status_code == 413, response.text
            except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
                pass  # the server answered 413 and hung up while we were still sending
    finally:
        server.should_exit = True
        await serving
    assert len(sent) < chunks // 20  # stopped within a few MB (socket buffers), not 800 MB
    assert await written(pool, task_id) == (0, 0, 0)


async def test_an_announced_body_over_the_limit_is_413_before_reading(
    small: Client, headers: dict[str, str]
) -> None:
    response = await small.post(
        f"{PREFIX}/import/file",
        content=b"x" * 10,
        headers={
            **headers,
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(LIMIT * 100),
        },
    )
    problem(response, 413)


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("scan.pdf", "application/pdf"), ("photo.png", "image/png"), ("legacy.xls", "application/vnd.ms-excel")],
)
async def test_unsupported_types_are_415(
    small: Client, headers: dict[str, str], task_id: str, pool: asyncpg.Pool, name: str, content_type: str
) -> None:
    body = problem(
        await upload(small, headers, b"%PDF-1.4 ...", name, task_id=task_id, content_type=content_type), 415
    )
    assert body["invalid-params"][0]["name"] == "file"
    assert await written(pool, task_id) == (0, 0, 0)


async def test_a_body_that_is_not_a_form_is_415(small: Client, headers: dict[str, str]) -> None:
    problem(await small.post(f"{PREFIX}/import/file", json={"file": "x"}, headers=headers), 415)


def bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"<row/>" * (4 * 1024 * 1024))  # 24 MB of XML
    return buffer.getvalue()


def garbage() -> bytes:
    return os.urandom(8192)


def truncated_xlsx() -> bytes:
    data = xlsx([["username"], *[[f"person_{i:05d}"] for i in range(3000)]])
    return data[: len(data) * 2 // 3]


@pytest.mark.parametrize(
    ("data", "name", "detail"),
    [
        pytest.param(truncated_xlsx(), "people.xlsx", "corrupt or truncated", id="truncated-xlsx"),
        pytest.param(
            b"PK\x03\x04" + os.urandom(2048), "people.xlsx", "corrupt or truncated", id="corrupt-xlsx"
        ),
        pytest.param(b"username\nalice_b\n", "people.xlsx", "not a valid XLSX", id="csv-named-xlsx"),
        pytest.param(bomb(), "people.xlsx", "inflates to more than", id="zip-bomb"),
        pytest.param(garbage(), "people.csv", "binary data", id="binary-garbage"),
        pytest.param(b" \n", "people.csv", "empty", id="empty"),
        pytest.param(b"username,phone\n", "people.csv", "header row but no people", id="header-only-csv"),
        pytest.param(
            b"username,phone\n,\n\n", "people.csv", "header row but no people", id="header-and-blanks"
        ),
        pytest.param(
            xlsx([["Username", "Phone"]]), "people.xlsx", "header row but no people", id="header-only-xlsx"
        ),
        pytest.param(b"[]", "people.json", "no people", id="empty-json"),
        pytest.param(
            "Имя,Фамилия\nАнна,К\n".encode(),
            "people.csv",
            "found no column of usernames",
            id="no-identifier-column",
        ),
    ],
)
async def test_unreadable_files_are_422_and_nothing_is_written(
    small: Client,
    headers: dict[str, str],
    task_id: str,
    pool: asyncpg.Pool,
    data: bytes,
    name: str,
    detail: str,
) -> None:
    assert len(data) <= LIMIT
    body = problem(await upload(small, headers, data, name, task_id=task_id), 422)
    assert detail in body["detail"]
    assert body["invalid-params"][0]["name"] == "file"
    assert await written(pool, task_id) == (0, 0, 0)


async def test_an_empty_file_part(small: Client, headers: dict[str, str], task_id: str) -> None:
    assert "empty" in problem(await upload(small, headers, b"", "people.csv", task_id=task_id), 422)["detail"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [({}, "task_id"), ({"task_id": "not-a-uuid"}, "task_id"), ({"mapping": "{not json"}, "mapping")],
)
async def test_bad_form_fields_name_the_field(
    small: Client, headers: dict[str, str], task_id: str, fields: dict[str, str], field: str
) -> None:
    form = {"task_id": task_id, **fields} if field == "mapping" else fields
    response = await upload(small, headers, b"username\nalice_b\n", "a.csv", fields=form)
    assert problem(response, 422)["invalid-params"][0]["name"] == field


async def test_a_form_without_the_file(small: Client, headers: dict[str, str], task_id: str) -> None:
    response = await small.post(
        f"{PREFIX}/import/file", data={"task_id": task_id}, files={"other": ("a", b"x")}, headers=headers
    )
    assert problem(response, 422)["invalid-params"][0]["name"] == "file"


async def test_without_a_token_nothing_is_read(small: Client, task_id: str, pool: asyncpg.Pool) -> None:
    response = await upload(small, {}, b"username\nalice_b\n", "a.csv", task_id=task_id)
    problem(response, 401)
    assert await written(pool, task_id) == (0, 0, 0)
