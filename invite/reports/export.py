"""Exports of a task's targets, one row per target, in import order.

CSV is streamed page by page as it is read. XLSX is written by xlsxwriter in constant-memory
mode (each row goes straight to a temporary file) in a worker thread, then the finished file
is streamed; memory stays flat however many targets the task has.

Every text cell is neutralised against spreadsheet formula injection (OWASP's "CSV
injection"): a cell beginning with = + - @, a tab or a carriage return gets a leading
apostrophe, so a spreadsheet shows it as text instead of evaluating it.

A CSV cell is not always the cell a spreadsheet makes of it: Excel splits a ``.csv`` on the
locale's list separator, ``;`` in ru-RU (our customers'), and then a quoted ``a;@SUM(1)``
is two cells, the second starting with ``@`` (the quotes no longer open the field). So in
CSV every formula character that follows a separator Excel may use (``,`` ``;`` tab) or a
line break (a record boundary once the quoting is lost), after any spaces or quotes, gets
the apostrophe too: ``a;'@SUM(1)``. The file opens safely whichever separator reads it.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import os
import re
import tempfile
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import xlsxwriter

Page = Sequence[asyncpg.Record]
COLUMNS = (
    "seq",
    "user_identifier",
    "username",
    "first_name",
    "last_name",
    "status",
    "outcome",
    "account_id",
    "attempts",
    "processed_at_utc",
    "error_message",
)
ROWS_PER_SHEET = 1_000_000  # Excel stops at 1,048,576 rows a sheet
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CHUNK = 64 * 1024
_AFTER_SEPARATOR = re.compile(r"([,;\t\r\n][\s\"]*)(?=[=+\-@])")


def neutralise(text: str) -> str:
    """The text as a spreadsheet will show it, never as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def cells(row: asyncpg.Record) -> list[str | int | datetime | None]:
    """One target as export cells, in COLUMNS order; text neutralised, numbers and times kept."""
    out: list[str | int | datetime | None] = []
    for column in COLUMNS:
        value = row["processed_at" if column == "processed_at_utc" else column]
        out.append(neutralise(value) if isinstance(value, str) else value)
    return out


async def csv_stream(pages: AsyncIterator[Page]) -> AsyncIterator[bytes]:
    """UTF-8 CSV with a BOM (so Excel reads Cyrillic right), a header, then a chunk per page."""
    yield codecs.BOM_UTF8 + _csv_lines([list(COLUMNS)])
    async for page in pages:
        yield _csv_lines([[_csv_cell(v) for v in cells(row)] for row in page])


def _csv_cell(value: str | int | datetime | None) -> str | int | None:
    if isinstance(value, datetime):
        return value.isoformat()
    # cells() neutralised the start; here every separator any locale may split on, too
    return _AFTER_SEPARATOR.sub(r"\1'", value) if isinstance(value, str) else value


def _csv_lines(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


class XlsxFile:
    """A workbook written row by row to a temporary file; call its methods from one thread."""

    def __init__(self) -> None:
        handle, self.path = tempfile.mkstemp(prefix="invite-export-", suffix=".xlsx")
        os.close(handle)
        self._book = xlsxwriter.Workbook(
            self.path,
            {
                "constant_memory": True,
                "remove_timezone": True,  # times are UTC; the header says so
                # text stays text: no formula, URL or number guessing on customer data
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
            },
        )
        self._time = self._book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self._sheet: Any = None
        self._row = ROWS_PER_SHEET

    def add(self, page: Page) -> None:
        for row in page:
            if self._row >= ROWS_PER_SHEET:
                self._new_sheet()
            for col, value in enumerate(cells(row)):
                if isinstance(value, datetime):
                    self._sheet.write_datetime(self._row, col, value, self._time)
                elif isinstance(value, int):
                    self._sheet.write_number(self._row, col, value)
                elif value is not None:
                    self._sheet.write_string(self._row, col, value)
            self._row += 1

    def close(self) -> None:
        if self._sheet is None:
            self._new_sheet()
        self._book.close()

    def _new_sheet(self) -> None:
        self._sheet = self._book.add_worksheet()
        for col, name in enumerate(COLUMNS):
            self._sheet.write_string(0, col, name)
        self._sheet.set_column(0, len(COLUMNS) - 1, 18)
        self._row = 1


async def xlsx_stream(pages: AsyncIterator[Page]) -> AsyncIterator[bytes]:
    """Build the workbook off the event loop, then stream the file and remove it."""
    book = XlsxFile()
    try:
        async for page in pages:
            await asyncio.to_thread(book.add, page)
        await asyncio.to_thread(book.close)
        with open(book.path, "rb") as handle:  # noqa: ASYNC230 (reads go through to_thread)
            while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                yield chunk
    finally:
        os.unlink(book.path)
