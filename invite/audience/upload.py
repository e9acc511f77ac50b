"""A multipart upload read as it streams in, with the size limit enforced on the way.

Litestar's own form parsing buffers the whole body first, and its body limit is fixed when
the routes are declared, before the settings are known. Here the file part is kept only up
to ``max_file_bytes``: one byte more and the request ends with 413 there and then, so memory
stays bounded whatever the client sends (with or without a Content-Length).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Request, Response
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from invite.audience.readers import too_large, unreadable
from invite.kernel.problems import Problem

FILE_FIELD = "file"
MAX_FIELD_BYTES = 64 * 1024  # task_id, mapping and the like
MAX_PARTS = 16
_OVERHEAD = MAX_PARTS * (MAX_FIELD_BYTES + 1024)  # what the form may add around the file


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
