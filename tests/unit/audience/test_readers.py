"""Reading files into sheets: formats by content, delimiters and encodings sniffed, bad files refused."""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from collections.abc import Sequence

import openpyxl
import pytest

from invite.audience.readers import ReadLimits, SourceFormat, check_type, read_file, sheet_from_records
from invite.kernel.problems import Problem

LIMITS = ReadLimits(max_bytes=1024 * 1024, max_uncompressed_bytes=4 * 1024 * 1024)


def rows(data: bytes, name: str = "people.csv", limits: ReadLimits = LIMITS) -> list[tuple[str | None, ...]]:
    return read_file(data, name, None, limits).frame.rows()


def refused(data: bytes, name: str, content_type: str | None = None, limits: ReadLimits = LIMITS) -> Problem:
    with pytest.raises(Problem) as caught:
        read_file(data, name, content_type, limits)
    return caught.value


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_is_sniffed(delimiter: str) -> None:
    text = (
        delimiter.join(["username", "phone", "Имя"])
        + "\n"
        + delimiter.join(["alice_b", "+7 912", "Алиса"])
        + "\n"
    )
    sheet = read_file(text.encode(), "people.csv", "text/csv", LIMITS)
    assert sheet.delimiter == delimiter
    assert sheet.frame.rows() == [("username", "phone", "Имя"), ("alice_b", "+7 912", "Алиса")]


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        ("username;имя\nalice_b;Алиса\n".encode(), "utf-8"),
        ("username;имя\nalice_b;Алиса\n".encode("utf-8-sig"), "utf-8-sig"),
        ("username;имя\nalice_b;Алиса\n".encode("cp1251"), "cp1251"),
        ("username\tимя\nalice_b\tАлиса\n".encode("utf-16"), "utf-16"),  # Excel's "Unicode text"
    ],
)
def test_encodings_are_detected(encoded: bytes, encoding: str) -> None:
    sheet = read_file(encoded, "people.csv", None, LIMITS)
    assert sheet.encoding == encoding
    assert sheet.frame.rows()[1] == ("alice_b", "Алиса")


def test_a_title_row_and_ragged_rows_keep_every_column_and_row_number() -> None:
    text = "Участники группы\n\nusername,user id,phone\nalice_b,1\nbob_the_b,2,+79123456789,extra\n"
    assert rows(text.encode()) == [
        ("Участники группы", None, None),
        (None, None, None),
        ("username", "user id", "phone"),
        ("alice_b", "1", None),
        ("bob_the_b", "2", "+79123456789"),
    ]


def test_quoted_fields_with_delimiters_inside() -> None:
    text = 'username;name\nalice_b;"Петрова; Алиса"\n'
    assert rows(text.encode())[1] == ("alice_b", "Петрова; Алиса")


def test_a_single_column_without_a_header() -> None:
    sheet = read_file(b"@alice_b\n12345\n+79123456789\n", "list.txt", "text/plain", LIMITS)
    assert (sheet.format, sheet.named) == (SourceFormat.CSV, False)
    assert sheet.frame.rows() == [("@alice_b",), ("12345",), ("+79123456789",)]


def test_json_array_of_objects_with_nested_platform_data() -> None:
    doc = [
        {
            "id": 7,
            "username": "alice_b",
            "platform_id": "42",
            "platform_specific_data": {"first_name": "A", "is_bot": False},
        },
        {"id": 8, "platform_id": 43, "platform_specific_data": {"user_id": 43, "last_name": "B"}},
    ]
    sheet = read_file(json.dumps(doc).encode(), "people.json", "application/json", LIMITS)
    assert (sheet.format, sheet.named) == (SourceFormat.JSON, True)
    first, second = sheet.frame.to_dicts()
    assert first["platform_specific_data.first_name"] == "A"
    assert first["platform_specific_data.is_bot"] == "false"
    assert (second["platform_id"], second["platform_specific_data.user_id"]) == ("43", "43")


def test_json_object_wrapping_the_list_and_a_list_of_strings() -> None:
    wrapped = {"task_id": "t", "results": [{"username": "alice_b"}], "total": 1}
    assert read_file(json.dumps(wrapped).encode(), "r.json", None, LIMITS).frame.to_dicts() == [
        {"username": "alice_b"}
    ]
    sheet = read_file(b'["@alice_b", 42]', "r.json", None, LIMITS)
    assert (sheet.named, sheet.frame.rows()) == (False, [("@alice_b",), ("42",)])


def test_records_from_a_service() -> None:
    sheet = sheet_from_records(
        [{"username": "a", "platform_specific_data": {"user_id": 5}}], SourceFormat.PARSING
    )
    assert sheet.frame.to_dicts() == [{"username": "a", "platform_specific_data.user_id": "5"}]


def xlsx(*sheet_rows: Sequence[object], title: str = "Sheet") -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in sheet_rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_cells_become_text_and_row_numbers_hold() -> None:
    data = xlsx(
        [],
        ["Username", "User ID", "Phone"],
        ["alice_b", 123456789, 79123456789],
        [],
        ["bob_the_b", 42.0, None],
    )
    sheet = read_file(data, "people.xlsx", None, LIMITS)
    assert (sheet.format, sheet.sheet_name) == (SourceFormat.XLSX, "Sheet")
    assert sheet.frame.rows() == [
        (None, None, None),
        ("Username", "User ID", "Phone"),
        ("alice_b", "123456789", "79123456789"),
        (None, None, None),
        ("bob_the_b", "42", None),
    ]


def test_an_xlsx_named_csv_is_still_read_as_xlsx() -> None:
    assert read_file(xlsx(["username"], ["alice_b"]), "people.csv", None, LIMITS).format == SourceFormat.XLSX


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("people.pdf", None),
        ("photo.png", "image/png"),
        ("old.xls", None),
        (None, "image/png"),
        ("a.docx", None),
    ],
)
def test_unsupported_types_are_415(name: str | None, content_type: str | None) -> None:
    with pytest.raises(Problem) as caught:
        check_type(name, content_type)
    assert caught.value.status == 415


def test_a_legacy_xls_is_415_with_a_hint() -> None:
    problem = refused(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "people.csv")
    assert problem.status == 415
    assert "xlsx" in (problem.detail or "")


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"", "people.csv", "empty"),
        (b"  \n\n ", "people.csv", "empty"),
        (os.urandom(4096), "people.csv", "binary data"),
        (b"username\x00\x01\x02\x03\x04\x05" * 50, "people.csv", "binary data"),
        (b"username,phone\nalice", "people.xlsx", "not a valid XLSX"),
        (b'[{"username": "alice_b"', "people.json", "not valid JSON"),
        (b'{"rows": []}', "people.json", "expected a JSON array"),
    ],
)
def test_unreadable_files_are_422(data: bytes, name: str, reason: str) -> None:
    problem = refused(data, name)
    assert problem.status == 422
    assert reason in (problem.detail or "")
    assert problem.params[0].name == "file"


def test_a_truncated_xlsx_is_422() -> None:
    data = xlsx(["username"], *[[f"user_{i:05d}"] for i in range(2000)])
    problem = refused(data[: len(data) // 2], "people.xlsx")
    assert problem.status == 422
    assert "corrupt or truncated" in (problem.detail or "")


def test_a_zip_that_is_not_a_workbook_is_422() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    problem = refused(buffer.getvalue(), "people.xlsx")
    assert problem.status == 422
    assert "not a readable XLSX workbook" in (problem.detail or "")


def bomb(size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as entry:
            chunk = b"\0" * (1 << 20)
            for _ in range(size // len(chunk)):
                entry.write(chunk)
    return buffer.getvalue()


def test_a_zip_bomb_is_refused_before_it_is_unpacked() -> None:
    data = bomb(16 * 1024 * 1024)
    assert len(data) < 100_000  # tiny on the wire
    problem = refused(data, "people.xlsx")
    assert problem.status == 422
    assert "inflates to more than" in (problem.detail or "")


def test_a_zip_bomb_lying_about_its_size_is_refused_too() -> None:
    data = bytearray(bomb(16 * 1024 * 1024))
    # Rewrite the sheet's declared uncompressed size (central directory and local header) to 1 KB.
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 1024)
    struct.pack_into("<I", data, data.rfind(b"PK\x03\x04") + 22, 1024)
    problem = refused(bytes(data), "people.xlsx")
    assert problem.status == 422
    assert "inflates to more than" in (problem.detail or "")


def test_limits_hold_on_the_bytes_given() -> None:
    problem = refused(b"username\n" + b"alice_b\n" * 200, "people.csv", limits=ReadLimits(1000, 10_000))
    assert problem.status == 413
