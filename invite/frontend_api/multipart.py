"""The page's file upload: a multipart form sent as ``Content-Type: application/json``.

The page's fetch helper forces that header on every call, so the form's boundary never
reaches us in it. The body itself starts with the boundary line (``--<boundary>\\r\\n``,
RFC 2046): read that line, and hand the import's own streaming reader the same request with the
content type the body really has. Only the upload route does this (``provide_page_upload``).
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.types import HTTPReceiveMessage, ReceiveMessage
from litestar.utils.scope.state import CONNECTION_STATE_KEY

from invite.audience.upload import Upload, provide_upload
from invite.kernel.problems import Problem

# RFC 2046 §5.1.1: 1 to 70 characters from this set, not ending with a space
_BOUNDARY_LINE = re.compile(rb"--([0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?])\r?\n")
_FIRST_LINE_MAX = 80


async def as_multipart(request: Request[Any, Any, Any]) -> Request[Any, Any, Any]:
    """``request`` as multipart/form-data: itself when its header says so, else with the boundary
    read from the body's first line (415 when the body does not start with one)."""
    declared = request.headers.get("content-type", "")
    if declared.lower().startswith("multipart/form-data") and "boundary=" in declared.lower():
        return request
    seen: list[HTTPReceiveMessage] = []
    head = b""
    while len(head) < _FIRST_LINE_MAX and b"\n" not in head:
        message = await request.receive()
        if message["type"] != "http.request":
            raise Problem(400, "Bad request", "the client went away during the upload")
        seen.append(message)
        head += message.get("body", b"")
        if not message.get("more_body", False):
            break
    found = _BOUNDARY_LINE.match(head)
    if found is None:
        raise Problem(
            415,
            "Unsupported media type",
            "send the file as a multipart form with the file in a part named 'file'",
            field="body",
            reason="multipart/form-data expected",
        )
    headers = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"content-type"]
    headers.append((b"content-type", b'multipart/form-data; boundary="' + found[1] + b'"'))
    # Litestar caches what it parsed of a request (its headers too) in the scope's state: a fresh
    # one, so the new header is the one read
    state = {k: v for k, v in request.scope.get("state", {}).items() if k != CONNECTION_STATE_KEY}
    scope: Any = {**request.scope, "headers": headers, "state": state}
    receive = request.receive

    async def replay() -> ReceiveMessage:
        return seen.pop(0) if seen else await receive()

    return Request(scope, receive=replay, send=request.send)


async def provide_page_upload(request: Request[Any, Any, Any]) -> Upload:
    """The upload route's dependency: the page's upload, read like any other (``provide_upload``)."""
    return await provide_upload(await as_multipart(request))
