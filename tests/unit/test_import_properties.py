"""Property tests: any bytes, as CSV, JSON or XLSX, are read and checked or refused as a problem.

The import's CPU half, without the database: ``read_file`` then ``analyse`` then ``decide``
either refuse the file with a 4xx Problem or give a report whose counts add up, row by row.
No other exception, whatever the bytes. (The database half, that what is written matches
the report and a refusal writes nothing, is ``tests/integration/test_import_hostile.py``.)
"""

from __future__ import annotations

import codecs
import io
import json
import string

import openpyxl
import polars as pl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from invite.audience.readers import ReadLimits, read_file
from invite.audience.service import _counts, analyse, candidate_keys, decide
from invite.problems import Problem

LIMITS = ReadLimits(max_bytes=256 * 1024, max_uncompressed_bytes=2 * 1024 * 1024)
NAMES = ["people.csv", "people.json", "people.xlsx", "people.txt", "people", "people.tsv"]
HEADERS = [
    "username",
    "user_id",
    "phone",
    "Телефон",
    "Имя",
    "first_name",
    "id",
    "is_bot",
    "",
    "@",
    "username\x00",
    "\x00phone",
]
CELL_ALPHABET = string.printable + "@+()-–—_.,;|\t\"'{}[]\\ \u00a0\u200bÿЖж€😀\x00\x01\x1b"

cells = st.one_of(
    st.text(alphabet=CELL_ALPHABET, max_size=40),
    st.sampled_from(["alice_b", "@bob_the_b", "t.me/carol_c", "+7 912 345-67-89", "42", "-1", "1e9", "true"]),
    st.integers(min_value=-(2**63), max_value=2**63).map(str),
)
tables = st.lists(st.lists(cells, min_size=0, max_size=6), min_size=0, max_size=25)


def csv_bytes(header: list[str], rows: list[list[str]], delimiter: str, encoding: str, bom: bool) -> bytes:
    lines = [delimiter.join(header), *(delimiter.join(row) for row in rows)]
    text = "\n".join(lines)
    data = text.encode(encoding, errors="replace")
    return (codecs.BOM_UTF8 if bom and encoding == "utf-8" else b"") + data


csv_files = st.builds(
    csv_bytes,
    st.lists(st.sampled_from(HEADERS), max_size=6),
    tables,
    st.sampled_from([",", ";", "\t", "|", " "]),
    st.sampled_from(["utf-8", "cp1251", "utf-16"]),
    st.booleans(),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(alphabet=CELL_ALPHABET, max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(HEADERS), inner, max_size=5),
    max_leaves=40,
)
json_files = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(
        st.dictionaries(st.sampled_from(HEADERS), cells | st.integers() | st.none(), max_size=5), max_size=20
    ).map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.dictionaries(st.sampled_from(["results", "data", "users", "x"]), json_values, max_size=2).map(
        lambda v: json.dumps(v).encode()
    ),
)


def xlsx_bytes(rows: list[list[str]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        # openpyxl refuses the control characters XML cannot hold: leave them out of the cell
        sheet.append(["".join(c for c in cell if c.isprintable() or c in "\t\n") for cell in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def corrupt(data: bytes, cuts: list[tuple[int, int]], truncate: int) -> bytes:
    """``data`` with some bytes overwritten and the tail cut off."""
    mutable = bytearray(data)
    for position, value in cuts:
        if mutable:
            mutable[position % len(mutable)] = value
    return bytes(mutable[: max(len(mutable) - truncate, 0)])


xlsx_files = st.builds(xlsx_bytes, tables)
damaged = st.builds(
    corrupt,
    st.one_of(csv_files, json_files, xlsx_files),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=8),
    st.integers(0, 64),
)
any_file = st.one_of(st.binary(max_size=2048), csv_files, json_files, xlsx_files, damaged)


def check(data: bytes, name: str) -> None:
    """Refused as a 4xx problem, or read into a report that accounts for every row."""
    refused: int | None = None
    try:
        sheet = read_file(data, name, None, LIMITS)
        analysis = analyse(sheet, None, "RU")
    except Problem as problem:
        refused = problem.status
    event("refused" if refused is not None else "read")
    if refused is not None:
        assert 400 <= refused < 500
        return
    keys = candidate_keys(analysis)
    assert all(k.startswith(("u:", "id:", "p:")) for k in keys)
    capacity = 10
    decided = decide(
        analysis, existing=set(keys[:1]), suppressed=set(keys[1:2]), capacity=capacity, limit=capacity
    )
    counts = _counts(decided)
    assert counts.rows == decided.height == analysis.people.height
    assert counts.imported + counts.rejected == counts.rows
    assert counts.rejected == (
        counts.invalid
        + counts.no_identifier
        + counts.bots
        + counts.duplicates
        + counts.suppressed
        + counts.already_in_task
        + counts.over_limit
    )
    assert counts.imported <= capacity
    imported = decided.filter(pl.col("code").is_null())
    assert imported.get_column("key").null_count() == 0, "every imported person has an identifier"
    assert imported.get_column("key").is_unique().all(), "nobody is imported twice"
    assert not any("\x00" in (v or "") for v in imported.get_column("user_data").to_list())
    for data_json in imported.get_column("user_data").to_list():
        assert isinstance(json.loads(data_json), dict)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(any_file, st.sampled_from(NAMES))
def test_any_bytes_are_read_or_refused(data: bytes, name: str) -> None:
    check(data, name)


@SETTINGS
@given(csv_files)
def test_any_csv_is_read_or_refused(data: bytes) -> None:
    check(data, "people.csv")


@SETTINGS
@given(json_files)
def test_any_json_is_read_or_refused(data: bytes) -> None:
    check(data, "people.json")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(xlsx_files, damaged))
def test_any_xlsx_is_read_or_refused(data: bytes) -> None:
    check(data, "people.xlsx")
