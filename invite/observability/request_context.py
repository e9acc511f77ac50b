"""Per-request context: the request id, the log context, HTTP metrics and one access-log line.

The request id comes from ``X-Request-ID`` (when it is a sane token) or is generated; it is
bound to structlog's contextvars, read by the audit log through ``current_request_id()`` and
echoed on every response by ``echo_request_id`` (a ``before_send`` hook, so responses built
outside any route — 404, 405 — carry it too).
"""

from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from invite.kernel.problems import Problem
from invite.observability.metrics import http_request_seconds, http_requests

HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

log = structlog.get_logger("invite.http")


def current_request_id() -> str | None:
    return _request_id.get()


def _request_id_of(scope: Scope) -> str:
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        given = dict(scope.get("headers", [])).get(HEADER.encode(), b"").decode("latin-1")
        state["request_id"] = given if _SANE_ID.match(given) else uuid.uuid4().hex
    return str(state["request_id"])


async def echo_request_id(message: Message, scope: Scope) -> None:
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)[HEADER] = _request_id_of(scope)


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, Problem):
        return exc.status
    return 500


class RequestContextMiddleware(ASGIMiddleware):
    """Outermost route middleware: sees auth failures as well as handler responses."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request_id = _request_id_of(scope)
        _request_id.set(request_id)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, send_and_note)
        except BaseException as exc:  # the app-level exception handler answers; we only count
            status = _status_of(exc)
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            labels: dict[str, Any] = {
                "method": scope.get("method", "?"),
                "route": route,
                "status": str(status),
            }
            http_requests.labels(**labels).inc()
            http_request_seconds.labels(**labels).observe(elapsed)
            log.info("request", **labels, path=scope["path"], ms=round(elapsed * 1000, 1))
