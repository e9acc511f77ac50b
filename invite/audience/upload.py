"""A multipart upload read as it streams in, with the size limit enforced on the way.

Litestar's own form parsing buffers the whole body first, and its body limit is fixed when
the routes are declared, before the settings are known. Here the file part is kept only up
to ``max_file_bytes``: one byte more and the request ends with 413 there and then, so memory
stays bounded whatever the client sends (with or without a Content-Length).

Every upload route (imports, suppressions, the Mailing page's import) reads its upload here
(``provide_upload``, a dependency), then the file as a sheet (``read_sheet``) and the optional
column ``mapping`` (``mapping_field``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import SkipValidation
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from invite.audience.readers import ReadLimits, Sheet, read_file, too_large, unreadable
from invite.kernel.problems import Problem, invalid
from invite.kernel.settings import Settings

FILE_FIELD = "file"
MAX_FIELD_BYTES = 64 * 1024  # task_id, mapping and the like
MAX_PARTS = 16
_OVERHEAD = MAX_PARTS * (MAX_FIELD_BYTES + 1024)  # what the form may add around the file
FILE_DESCRIPTION = (
    "CSV (, ; tab |; UTF-8, UTF-8/16 with BOM, cp1251), XLSX or JSON; at most MAX_UPLOAD_BYTES (10 MB)."
)


@dataclass
class Upload:
    data: bytes
    filename: str | None
    content_type: str | None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)

    @property
    def disposition(self) -> dict[bytes, bytes]:
        return parse_options_header(self.headers.get(b"content-disposition"))[1]


class _Collector:
    """python-multipart callbacks that keep each part, refusing oversized ones at once."""

    def __init__(self, max_file_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.parts: list[_Part] = []
        self._field = bytearray()
        self._value = bytearray()
        self._limit = MAX_FIELD_BYTES

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
        }

    def _begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise Problem(422, "Invalid request", f"the form has more than {MAX_PARTS} parts", field="body")
        self.parts.append(_Part())
        self._limit = MAX_FIELD_BYTES

    def _header_end(self) -> None:
        self.parts[-1].headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        if self.parts[-1].disposition.get(b"name") == FILE_FIELD.encode():
            self._limit = self.max_file_bytes

    def _data(self, data: bytes, start: int, end: int) -> None:
        body = self.parts[-1].body
        body.extend(data[start:end])
        if len(body) > self._limit:
            name = self.parts[-1].disposition.get(b"name", b"").decode("latin-1")
            if name == FILE_FIELD:
                raise too_large(self.max_file_bytes)
            raise Problem(413, "Field too large", f"at most {MAX_FIELD_BYTES} bytes", field=name or "body")


def hang_up_after_413(request: Request[Any, Any, Any], exc: Problem) -> Response[Any]:
    """The app's problem answer, plus ``Connection: close`` on a 413: the rest of an oversized
    upload is never read, and without the hang-up the server would drain whatever the client
    keeps sending. Install as a controller's exception handler for Problem."""
    response: Response[Any] = request.app.exception_handlers[Problem](request, exc)
    if exc.status == 413:
        response.headers["Connection"] = "close"
    return response


async def read_upload(request: Request[Any, Any, Any], max_file_bytes: int) -> Upload:
    """The ``file`` part and the small text fields of a multipart/form-data request."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise Problem(
            415,
            "Unsupported media type",
            "send multipart/form-data with the file in a part named 'file'",
            field="body",
            reason="multipart/form-data expected",
        )
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > max_file_bytes + _OVERHEAD:
        raise too_large(max_file_bytes)
    collector = _Collector(max_file_bytes)
    parser = MultipartParser(options[b"boundary"], collector.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_file_bytes + _OVERHEAD:
                raise too_large(max_file_bytes)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise Problem(422, "Invalid request", f"malformed multipart body: {exc}", field="body") from None
    return _upload(collector.parts)


async def provide_upload(request: Request[Any, Any, Any]) -> Upload:
    """The upload routes' dependency: the request's upload, within MAX_UPLOAD_BYTES."""
    return await read_upload(request, request.app.state.settings.max_upload_bytes)


Uploaded = NamedDependency[SkipValidation[Upload]]  # what a handler takes from provide_upload


async def read_sheet(upload: Upload, settings: Settings) -> Sheet:
    """The uploaded file as a sheet, read off the event loop within the upload limits."""
    limits = ReadLimits(
        max_bytes=settings.max_upload_bytes, max_uncompressed_bytes=settings.max_xlsx_unpacked_bytes
    )
    return await asyncio.to_thread(read_file, upload.data, upload.filename, upload.content_type, limits)


def mapping_field(upload: Upload) -> dict[str, str | None] | None:
    """The form's optional ``mapping``: role → column header, overriding column detection."""
    value = upload.fields.get("mapping")
    if value is None or not value.strip():
        return None
    try:
        return msgspec.json.decode(value, type=dict[str, str | None])
    except msgspec.DecodeError:
        raise invalid("mapping", 'a JSON object of role → column header, e.g. {"username": "Ник"}') from None


def _upload(parts: list[_Part]) -> Upload:
    fields: dict[str, str] = {}
    found: _Part | None = None
    for part in parts:
        name = part.disposition.get(b"name", b"").decode("utf-8", errors="replace")
        if name == FILE_FIELD:
            found = part
        elif name:
            try:
                fields[name] = part.body.decode("utf-8")
            except UnicodeDecodeError:
                raise Problem(422, "Invalid request", "not UTF-8 text", field=name) from None
    if found is None:
        raise Problem(422, "Invalid request", "the form has no part named 'file'", field=FILE_FIELD)
    filename = found.disposition.get(b"filename")
    declared = found.headers.get(b"content-type")
    if not found.body:
        raise unreadable("the file is empty", "Empty file")
    return Upload(
        data=bytes(found.body),
        # NULs dropped: the name is stored with the import, and PostgreSQL stores none
        filename=filename.decode("utf-8", errors="replace").replace("\x00", "")
        if filename is not None
        else None,
        content_type=declared.decode("latin-1") if declared is not None else None,
        fields=fields,
    )


def multipart_operation(
    description: str, fields: dict[str, str], required: tuple[str, ...] = ()
) -> type[Operation]:
    """An OpenAPI operation whose body is this module's multipart form (Litestar cannot see
    it: the handler reads the stream itself). ``fields``: name → description, besides ``file``."""
    properties: dict[str, Schema | Any] = {
        FILE_FIELD: Schema(type=OpenAPIType.STRING, format="binary", description=description)  # type: ignore[arg-type]
    }
    properties.update(
        {name: Schema(type=OpenAPIType.STRING, description=text) for name, text in fields.items()}
    )
    body = RequestBody(
        required=True,
        content={
            "multipart/form-data": OpenAPIMediaType(
                schema=Schema(
                    type=OpenAPIType.OBJECT, properties=properties, required=[FILE_FIELD, *required]
                )
            )
        },
    )

    @dataclass
    class MultipartOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return MultipartOperation
