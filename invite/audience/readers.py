"""Files into sheets: CSV and JSON with polars, XLSX with fastexcel, every cell a string.

The file's name and declared type decide only whether it may be read at all (else 415);
its bytes decide how: a zip is an XLSX, text opening with ``[`` or ``{`` is JSON, other text
is CSV with its delimiter (``,`` ``;`` tab ``|``) and encoding (UTF-8, UTF-8/16 with BOM,
cp1251) sniffed. Anything unreadable — corrupt or truncated XLSX, a zip bomb, binary
garbage, an empty file — is a 422 problem before a single row is looked at.
"""

from __future__ import annotations

import codecs
import copy
import csv
import io
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath
from typing import Any

import fastexcel
import msgspec
import polars as pl

from invite.kernel.problems import Problem

MAX_COLUMNS = 256
MAX_ZIP_ENTRIES = 10_000
_CHUNK = 1 << 20
_SNIFF_BYTES = 64 * 1024
_SNIFF_LINES = 50
_DELIMITERS = (",", ";", "\t", "|")
_JSON_LIST_KEYS = ("results", "data", "items", "users", "members", "participants")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls / .doc
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13))
_ALL_BYTES = bytes(range(256))

_TEXT_EXTENSIONS = frozenset({".csv", ".tsv", ".txt", ".json"})
_EXTENSIONS = _TEXT_EXTENSIONS | {".xlsx"}
_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "text/tab-separated-values",
        "application/csv",
        "application/json",
        "text/json",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-excel",  # what Windows browsers declare for .csv
        "application/octet-stream",
        "",
    }
)


class SourceFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    JSON = "json"
    PARSING = "parsing"  # results of a Parsing Service task


@dataclass(frozen=True)
class ReadLimits:
    max_bytes: int
    max_uncompressed_bytes: int  # all entries of an XLSX zip together


@dataclass(frozen=True)
class Sheet:
    """Rows of strings. ``named``: the columns carry their names (JSON keys); otherwise the
    header is still among the rows and frame row ``i`` is the file's row ``i + 1``."""

    frame: pl.DataFrame
    named: bool
    format: SourceFormat
    encoding: str | None = None
    delimiter: str | None = None
    sheet_name: str | None = None


def unreadable(reason: str, title: str = "Unreadable file") -> Problem:
    return Problem(422, title, reason, field="file", reason=reason)


def too_large(limit: int) -> Problem:
    return Problem(
        413,
        "File too large",
        f"the file is larger than the limit of {limit} bytes",
        field="file",
        reason=f"at most {limit} bytes",
    )


def check_type(filename: str | None, content_type: str | None) -> None:
    """415 unless the name (or, without an extension, the declared type) is one we read."""
    suffix = PurePath(filename or "").suffix.lower()
    declared = (content_type or "").split(";")[0].strip().lower()
    if suffix:
        if suffix in _EXTENSIONS:
            return
        reason = f"'{suffix}' files are not supported"
    elif declared in _TYPES:
        return
    else:
        reason = f"'{declared}' is not supported"
    raise Problem(
        415,
        "Unsupported file type",
        f"{reason}; upload CSV, XLSX or JSON",
        field="file",
        reason="upload CSV, XLSX or JSON",
    )


def read_file(data: bytes, filename: str | None, content_type: str | None, limits: ReadLimits) -> Sheet:
    check_type(filename, content_type)
    if len(data) > limits.max_bytes:
        raise too_large(limits.max_bytes)
    if not data.strip():
        raise unreadable("the file is empty", "Empty file")
    if data.startswith(_ZIP_MAGIC):
        return _read_xlsx(data, limits)
    if data.startswith(_OLE_MAGIC):
        raise Problem(
            415,
            "Unsupported file type",
            "legacy Excel (.xls) files are not supported; save the sheet as .xlsx or CSV",
            field="file",
            reason="save as .xlsx or CSV",
        )
    if PurePath(filename or "").suffix.lower() == ".xlsx":
        raise unreadable("the file is not a valid XLSX workbook (not a zip archive)")
    text, encoding = _decode(data)
    if text.lstrip()[:1] in (b"[", b"{"):
        return _read_json(text, encoding)
    return _read_csv(text, encoding)


# --- text ----------------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[bytes, str]:
    """UTF-8 bytes of the text and the encoding it was in."""
    if data.startswith(codecs.BOM_UTF8):
        data, encoding = data[len(codecs.BOM_UTF8) :], "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            data, encoding = data.decode("utf-16").encode(), "utf-16"
        except UnicodeDecodeError:
            raise unreadable("the file claims UTF-16 but does not decode as it") from None
    else:
        try:
            data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            try:
                data, encoding = data.decode("cp1251").encode(), "cp1251"
            except UnicodeDecodeError:
                raise _binary() from None
    # Text has no NULs and next to no other control characters; binary data has plenty.
    control = len(data) - len(data.translate(_ALL_BYTES, _CONTROL_BYTES))
    if control > max(2, len(data) // 1000):
        raise _binary()
    return data, encoding


def _binary() -> Problem:
    return unreadable("the file holds binary data, not CSV, JSON or XLSX")


def _sniff(text: bytes) -> tuple[str, int]:
    """The delimiter and the number of columns, from the first lines."""
    head = text[:_SNIFF_BYTES].decode("utf-8", errors="ignore")
    lines = [line for line in head.splitlines()[:-1] or head.splitlines() if line.strip()][:_SNIFF_LINES]
    best: tuple[int, int] = (0, 1)  # (lines with the usual width, that width)
    chosen = ","
    for delimiter in _DELIMITERS:
        widths = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
        if not widths:
            continue
        width, count = Counter(widths).most_common(1)[0]
        if width > 1 and (count, width) > best:
            best, chosen = (count, width), delimiter
    widths = [len(row) for row in csv.reader(lines, delimiter=chosen)] or [1]
    return chosen, min(max(widths), MAX_COLUMNS)


def _read_csv(text: bytes, encoding: str) -> Sheet:
    delimiter, width = _sniff(text)
    try:
        frame = pl.read_csv(
            io.BytesIO(text),
            has_header=False,
            separator=delimiter,
            schema={f"c{i}": pl.String for i in range(width)},
            missing_columns="insert",
            truncate_ragged_lines=True,
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise unreadable(f"not a readable CSV file: {_first_line(exc)}") from None
    return Sheet(frame, named=False, format=SourceFormat.CSV, encoding=encoding, delimiter=delimiter)


def _read_json(text: bytes, encoding: str) -> Sheet:
    try:
        document = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise unreadable(f"not valid JSON: {exc}") from None
    if isinstance(document, dict):
        found = next((document[k] for k in _JSON_LIST_KEYS if isinstance(document.get(k), list)), None)
        if found is None:
            keys = ", ".join(_JSON_LIST_KEYS)
            raise unreadable(f"expected a JSON array of people, or an object with one of: {keys}")
        document = found
    if not isinstance(document, list):
        raise unreadable("expected a JSON array of people")
    sheet = sheet_from_records(document, SourceFormat.JSON)
    return Sheet(sheet.frame, sheet.named, SourceFormat.JSON, encoding=encoding)


def sheet_from_records(items: list[Any], source: SourceFormat) -> Sheet:
    """A sheet from JSON values: objects (one level of nesting flattened as ``outer.inner``)
    become named columns; a list of bare values is a single unnamed column."""
    if not any(isinstance(item, dict) for item in items):
        values = [None if isinstance(v, dict | list) or v is None else _text(v) for v in items]
        return Sheet(pl.DataFrame({"c0": values}, schema={"c0": pl.String}), named=False, format=source)
    rows = [item if isinstance(item, dict) else {} for item in items]
    try:
        frame = pl.from_dicts(rows, infer_schema_length=None, strict=False)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise unreadable(f"JSON objects of an unexpected shape: {_first_line(exc)}") from None
    structs = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Struct)]
    if structs:
        frame = frame.unnest(structs, separator=".")
    keep = [name for name, dtype in frame.schema.items() if not dtype.is_nested()][:MAX_COLUMNS]
    return Sheet(frame.select(pl.col(keep).cast(pl.String)), named=True, format=source)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- XLSX ----------------------------------------------------------------------------------


def _check_zip(data: bytes, limits: ReadLimits) -> None:
    """422 unless the archive is sound and inflates to at most the limit.

    The sizes an archive declares can lie, so every entry is inflated (and thrown away)
    against the remaining budget. The entry is opened as if it declared more than the budget
    (by one chunk: zipfile checks the CRC as soon as the declared size is reached), so the
    count passes the budget, whatever the header says, before zipfile stops reading.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
            if len(entries) > MAX_ZIP_ENTRIES:
                raise unreadable(f"the workbook has more than {MAX_ZIP_ENTRIES} parts")
            budget = limits.max_uncompressed_bytes
            for entry in entries:
                if entry.flag_bits & 0x1:
                    raise unreadable("the workbook is encrypted")
                probe = copy.copy(entry)
                probe.file_size = budget + _CHUNK + 1
                with archive.open(probe) as stream:
                    while chunk := stream.read(_CHUNK):
                        budget -= len(chunk)
                        if budget < 0:
                            raise unreadable(
                                f"the workbook inflates to more than {limits.max_uncompressed_bytes} bytes",
                                "File too large when unpacked",
                            )
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError):
        raise unreadable("the file is not a valid XLSX workbook (corrupt or truncated)") from None


def _read_xlsx(data: bytes, limits: ReadLimits) -> Sheet:
    _check_zip(data, limits)
    try:
        workbook = fastexcel.read_excel(data)
        for index in range(len(workbook.sheet_names)):
            # skip_rows=0: keep leading blank rows so frame row i is sheet row i + 1
            sheet = workbook.load_sheet(index, header_row=None, dtypes="string", skip_rows=0)
            if sheet.height and sheet.visible == "visible":
                frame, name = sheet.to_polars(), sheet.name
                break
        else:
            raise unreadable("the workbook has no sheet with data", "Empty file")
    except fastexcel.FastExcelError as exc:
        raise unreadable(f"the file is not a readable XLSX workbook: {_first_line(exc)}") from None
    frame = frame.select(frame.columns[:MAX_COLUMNS])
    frame.columns = [f"c{i}" for i in range(frame.width)]
    return Sheet(frame, named=False, format=SourceFormat.XLSX, sheet_name=name)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
