"""Exports of a task's targets, one row per target, in import order.

Each row says what became of the person (status, outcome, account, attempts, when) and what
they did after: when they first replied and when they asked to stop (``replied_at_utc``,
``opted_out_at_utc``; never the text), and the state of their one-use invite link
(``link_state``: empty when none was offered, else due, sent, joined or expired).

CSV is streamed page by page as it is read. XLSX is written by xlsxwriter in constant-memory
mode (each row goes straight to a temporary file) in a worker thread, then the finished file
is streamed; memory stays flat however many targets the task has. The workbook opens on a
summary sheet (the last, made active) read at a glance: small tables (actions per hour by outcome, progress
hour by hour, results per account, from the task's rollups) each drawn by a native chart
whose series point at the table's cells, so the customer can restyle or re-plot them.

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

import xlsxwriter

from invite.reports.rows import ExportRow
from invite.reports.schemas import TaskStatsResponse

Page = Sequence[ExportRow]
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
    "replied_at_utc",
    "opted_out_at_utc",
    "link_state",
)
# the time columns, from the fields they show (UTC)
_FIELDS = {
    "processed_at_utc": "processed_at",
    "replied_at_utc": "replied_at",
    "opted_out_at_utc": "opted_out_at",
}
ROWS_PER_SHEET = 1_000_000  # Excel stops at 1,048,576 rows a sheet
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CHUNK = 64 * 1024
_AFTER_SEPARATOR = re.compile(r"([,;\t\r\n][\s\"]*)(?=[=+\-@])")


def neutralise(text: str) -> str:
    """The text as a spreadsheet will show it, never as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def cells(row: ExportRow) -> list[str | int | datetime | None]:
    """One target as export cells, in COLUMNS order; text neutralised, numbers and times kept."""
    out: list[str | int | datetime | None] = []
    for column in COLUMNS:
        value = getattr(row, _FIELDS.get(column, column))
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

    def __init__(self, summary: TaskStatsResponse | None = None) -> None:
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
        self._summary = summary

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
        if self._summary is not None:
            # after the targets, so a program reading the first sheet still reads them; the
            # workbook opens on it all the same
            _summary_sheet(self._book, self._summary).activate()
        self._book.close()

    def _new_sheet(self) -> None:
        self._sheet = self._book.add_worksheet()
        for col, name in enumerate(COLUMNS):
            self._sheet.write_string(0, col, name)
        self._sheet.set_column(0, len(COLUMNS) - 1, 18)
        self._row = 1


async def xlsx_stream(
    pages: AsyncIterator[Page], summary: TaskStatsResponse | None = None
) -> AsyncIterator[bytes]:
    """Build the workbook off the event loop, then stream the file and remove it."""
    book = XlsxFile(summary)
    try:
        async for page in pages:
            await asyncio.to_thread(book.add, page)
        await asyncio.to_thread(book.close)
        with open(book.path, "rb") as handle:  # noqa: ASYNC230 (reads go through to_thread)
            while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                yield chunk
    finally:
        os.unlink(book.path)


SUMMARY_SHEET = "Summary"
_CHART_SIZE = {"x_scale": 1.4, "y_scale": 1.1}


def _summary_sheet(book: Any, stats: TaskStatsResponse) -> Any:
    """The summary sheet: each table written row after row (constant-memory mode writes a
    sheet's rows in order), its chart placed to the right of it."""
    sheet = book.add_worksheet(SUMMARY_SHEET)
    bold = book.add_format({"bold": True})
    hour = book.add_format({"num_format": "yyyy-mm-dd hh:mm", "bold": True})
    sheet.set_column(0, 0, 20)
    sheet.write_string(0, 0, f"Task {stats.task_id}: {stats.status} ({stats.driver})", bold)
    outcomes = sorted(stats.by_outcome, key=lambda name: (-stats.by_outcome[name], name))
    row = 2
    # 1. actions per hour by outcome: a stacked column per hour
    sheet.write_string(row, 0, "hour (UTC)", bold)
    for col, outcome in enumerate(outcomes, 1):
        sheet.write_string(row, col, neutralise(outcome), bold)
    first = row + 1
    for row, entry in enumerate(stats.by_hour, first):
        sheet.write_datetime(row, 0, entry.hour, hour)
        for col, outcome in enumerate(outcomes, 1):
            sheet.write_number(row, col, entry.by_outcome.get(outcome, 0))
    last = max(row, first)
    _chart(
        book,
        sheet,
        {"type": "column", "subtype": "stacked"},
        "Actions per hour by outcome",
        first,
        last,
        outcomes,
    )
    # 2. progress over time: actions and people reached so far, hour by hour
    row = max(last + 2, first + 16)  # below the first chart
    sheet.write_string(row, 0, "hour (UTC)", bold)
    sheet.write_string(row, 1, "actions so far", bold)
    sheet.write_string(row, 2, "succeeded so far", bold)
    first, actions, succeeded = row + 1, 0, 0
    for row, entry in enumerate(stats.by_hour, first):
        actions += entry.actions
        succeeded += entry.by_status.get("succeeded", 0)
        sheet.write_datetime(row, 0, entry.hour, hour)
        sheet.write_number(row, 1, actions)
        sheet.write_number(row, 2, succeeded)
    last = max(row, first)
    drawn = ["actions", "succeeded"] if stats.by_hour else []
    _chart(book, sheet, {"type": "line"}, "Progress over time", first, last, drawn)
    # 3. per-account results: a stacked bar per account
    row = max(last + 2, first + 16)
    sheet.write_string(row, 0, "account", bold)
    for col, outcome in enumerate(outcomes, 1):
        sheet.write_string(row, col, neutralise(outcome), bold)
    first = row + 1
    for row, account in enumerate(stats.by_account, first):
        sheet.write_string(row, 0, neutralise(account.account_id))
        for col, outcome in enumerate(outcomes, 1):
            sheet.write_number(row, col, account.by_outcome.get(outcome, 0))
    last = max(row, first)
    _chart(book, sheet, {"type": "bar", "subtype": "stacked"}, "Results per account", first, last, outcomes)
    # 4. one-use invite links (an invite task offering them): the funnel, offered to joined
    links = stats.links
    if links.offered:
        row = max(last + 2, first + 16)
        sheet.write_string(row, 0, "invite links", bold)
        sheet.write_string(row, 1, "people", bold)
        first = row + 1
        funnel = (
            ("offered", links.offered),
            ("sent", links.sent),
            ("joined", links.joined),
            ("expired", links.expired),
        )
        for row, (name, n) in enumerate(funnel, first):
            sheet.write_string(row, 0, name)
            sheet.write_number(row, 1, n)
        _chart(book, sheet, {"type": "bar"}, "One-use invite links", first, row, ["people"])
    return sheet


def _chart(
    book: Any, sheet: Any, kind: dict[str, str], title: str, first: int, last: int, columns: list[str]
) -> None:
    """A chart of the table whose data rows are ``first``..``last``, one series per column
    after the first, beside the table; none while the task has no action to draw."""
    if not columns:
        return
    chart = book.add_chart(kind)
    for col in range(1, len(columns) + 1):
        chart.add_series(_series(first - 1, first, last, col))
    chart.set_title({"name": title})
    sheet.insert_chart(first - 1, len(columns) + 2, chart, _CHART_SIZE)


def _series(header: int, first: int, last: int, col: int) -> dict[str, Any]:
    """A chart series over column ``col`` of a summary table: its name the header cell, its
    categories the table's first column."""
    return {
        "name": [SUMMARY_SHEET, header, col],
        "categories": [SUMMARY_SHEET, first, 0, last, 0],
        "values": [SUMMARY_SHEET, first, col, last, col],
    }
