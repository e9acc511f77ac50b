"""A tiny scripted HTTP server on 127.0.0.1 for contract tests of our HTTP clients.

Stands in for a neighbouring service (Integration Service, Parsing Service, Vault, ...)
over real loopback HTTP, so the client under test runs its real transport, timeouts and
retries. Runs ``http.server.ThreadingHTTPServer`` in a daemon thread: it works from sync
and async tests alike and never blocks the test's event loop.

    with FakeServer() as server:
        server.route("GET", "/results/{task_id}", Reply(json={"results": []}))
        server.route("POST", "/allocate", Reply(500), Reply(json={...}))  # 500, then ok forever
        server.route("GET", "/slow", Reply(json={}, delay=2.0))           # the client times out
        server.route("POST", "/echo", lambda req: Reply(json=req.json()))  # computed answers
        ... call server.url + "/results/..." ...
        assert server.requests[0].headers["authorization"].startswith("Bearer ")

- A route is a method plus a path pattern; ``{name}`` matches one path segment,
  ``{name:path}`` the rest of the path (slashes too); both land in ``Request.params``.
  The query string is not part of the match.
- A route's answers are a handler (``Request -> Reply``) or a script of Replies served in
  order, the last one repeating. Routing the same method and pattern again replaces it.
- An unrouted request gets 404 ``{"detail": "Not Found"}``; a handler that raises gets 500.
- Every request is recorded in ``server.requests`` (in arrival order), routed or not.
- ``Reply(drop=True)`` closes the connection without answering (a network failure).
- ``Reply(close_after=True)`` answers, keeps the connection open as if for keep-alive, and
  closes it unanswered when the next request comes on it: what the platform's servers do
  after an unhandled exception (the client's pooled connection fails on its next call).
"""

from __future__ import annotations

import json as jsonlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

_NO_JSON = object()


@dataclass(frozen=True)
class Reply:
    status: int = 200
    json: Any = _NO_JSON  # serialised as application/json; wins over ``body``
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    drop: bool = False  # close the connection without an answer
    close_after: bool = False  # answer, then drop the next request on this connection


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from ``{name}`` in the route

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def arg(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None


Handler = Callable[[Request], Reply]


class _Route:
    def __init__(self, pattern: str, answers: tuple[Reply | Handler, ...]) -> None:
        regex = re.escape(pattern)
        regex = re.sub(r"\\\{(\w+):path\\\}", r"(?P<\1>.+)", regex)
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", regex)
        self.regex = re.compile(f"^{regex}$")
        self.answers = list(answers)
        self.served = 0
        self.lock = threading.Lock()

    def answer(self, request: Request) -> Reply:
        with self.lock:
            index = min(self.served, len(self.answers) - 1)
            self.served += 1
        answer = self.answers[index]
        return answer if isinstance(answer, Reply) else answer(request)


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._routes: dict[tuple[str, str], _Route] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        # a short poll keeps stop() quick
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, method: str, pattern: str, *answers: Reply | Handler) -> None:
        if not answers:
            raise ValueError("a route needs at least one Reply or a handler")
        with self._lock:
            self._routes[(method.upper(), pattern)] = _Route(pattern, answers)

    def requests_to(self, method: str, path_prefix: str = "/") -> list[Request]:
        return [r for r in self.requests if r.method == method.upper() and r.path.startswith(path_prefix)]

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _dispatch(self, request: Request) -> Reply:
        with self._lock:
            routes = [(m, r) for (m, _), r in self._routes.items() if m == request.method]
        for _, route in routes:
            match = route.regex.match(request.path)
            if match:
                request = Request(
                    request.method,
                    request.path,
                    request.query,
                    request.headers,
                    request.body,
                    match.groupdict(),
                )
                self.requests.append(request)
                try:
                    return route.answer(request)
                except Exception as exc:
                    return Reply(500, json={"detail": f"handler failed: {exc!r}"})
        self.requests.append(request)
        return Reply(404, json={"detail": "Not Found"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            doomed = False  # an earlier answer on this connection had close_after

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.doomed:
                    self.close_connection = True
                    return
                request = Request(
                    method=self.command,
                    path=url.path,
                    query=parse_qs(url.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                reply = server._dispatch(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                payload = reply.body
                headers = dict(reply.headers)
                if reply.json is not _NO_JSON:
                    payload = jsonlib.dumps(reply.json).encode()
                    headers.setdefault("Content-Type", "application/json")
                self.doomed = reply.close_after
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (timeout): nothing to do

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler
