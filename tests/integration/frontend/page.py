"""The Mailing page's world over real loopback HTTP: this service under uvicorn, a gateway in front
of it that behaves as the platform's does, and a client that sends what the page's ``apiFetch`` sends.

- ``serve(app)``: the app under uvicorn on 127.0.0.1 (lifespan on); yields its base URL.
- ``Gateway``: the platform api-gateway's invite proxy (backend/api-gateway/main.py,
  ``proxy_invite_service``): forwards ``/api/invite/{path}`` → ``{upstream}/api/v1/{path}``
  (``admin/*`` → ``/admin/*``) with the query string, for GET/POST/PUT/DELETE/PATCH/OPTIONS (405
  otherwise); copies request headers but ``host`` and ``content-length`` into a dict (a repeated
  header keeps its last value) and sets ``Authorization`` again under that name, so the upstream
  receives **the Authorization header twice**; sends a body only for POST/PUT/PATCH, waits up to
  60 s, **buffers the whole response** and answers it with the upstream's headers as a dict (a
  repeated header joined with ", "); 502/504/500 with a JSON ``detail`` when the upstream is
  unreachable, times out or fails otherwise (as checked against the real gateway, commit 08d493f).
- ``Page``: every request carries ``Authorization: Bearer`` and ``Content-Type: application/json``
  — a file upload too (a multipart body under that header, as the browser's FormData is sent
  there).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import uvicorn
from litestar import Litestar

from invite.app import create_app
from invite.kernel.auth import issue_token
from invite.kernel.settings import Settings

JSON = {"Content-Type": "application/json"}
GATEWAY_TIMEOUT = 60.0
JSON_RAW = [(b"content-type", b"application/json")]
PROXIED_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


@asynccontextmanager
async def serve(app: Any, port: int = 0) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class Gateway:
    """An ASGI app: the platform gateway's ``/api/invite/{path}`` proxy."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.forwarded: list[str] = []  # the upstream URLs, in order

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path: str = scope["path"]
        if not path.startswith("/api/invite/"):
            await _answer(send, 404, JSON_RAW, b'{"detail":"Not Found"}')
            return
        if scope["method"] not in PROXIED_METHODS:
            await _answer(send, 405, JSON_RAW, b'{"detail":"Method Not Allowed"}')
            return
        rest = path.removeprefix("/api/invite/")
        url = f"{self.upstream}/{rest}" if rest.startswith("admin/") else f"{self.upstream}/api/v1/{rest}"
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        headers: dict[str, str] = {}  # as main.py copies them: a dict, the last of a repeated header
        auth = None
        for k, v in scope["headers"]:
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            if name == "authorization" and auth is None:
                auth = value
            if name not in ("host", "content-length"):
                headers[name] = value
        if auth is not None:
            headers["Authorization"] = auth  # a second key: httpx sends the header twice, as main.py does
        body = b""
        if scope["method"] in ("POST", "PUT", "PATCH"):
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
        self.forwarded.append(url)
        try:
            async with httpx.AsyncClient(timeout=GATEWAY_TIMEOUT) as client:
                response = await client.request(scope["method"], url, headers=headers, content=body or None)
        except httpx.ConnectError:
            await _answer(send, 502, JSON_RAW, b'{"detail":"Invite service unavailable"}')
            return
        except httpx.TimeoutException:
            await _answer(send, 504, JSON_RAW, b'{"detail":"Invite service timeout"}')
            return
        except Exception:
            await _answer(send, 500, JSON_RAW, b'{"detail":"Internal server error"}')
            return
        answered = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in dict(response.headers).items()]
        await _answer(send, response.status_code, answered, response.content)


async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Page:
    """The Mailing page's ``apiFetch`` against the gateway, as one tenant."""

    def __init__(self, gateway_url: str, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=f"{gateway_url}/api/invite", timeout=30.0)
        self.token = token

    def other(self, token: str) -> Page:
        """The same page, signed in as someone else."""
        return Page(str(self.http.base_url).removesuffix("/api/invite/").removesuffix("/api/invite"), token)

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {**JSON, "Authorization": f"Bearer {token or self.token}"}

    async def call(
        self, method: str, path: str, json: Any = None, token: str | None = None
    ) -> httpx.Response:
        content = None if json is None else httpx.Request("POST", "/", json=json).content
        return await self.http.request(method, path, content=content, headers=self.headers(token))

    async def upload(self, path: str, filename: str, data: bytes, source_name: str) -> httpx.Response:
        """A FormData POST, its Content-Type overwritten with application/json as apiFetch does."""
        request = self.http.build_request(
            "POST", path, files={"file": (filename, data, "text/csv")}, data={"source_name": source_name}
        )
        request.headers.update(self.headers())
        return await self.http.send(request)

    async def aclose(self) -> None:
        await self.http.aclose()


@asynccontextmanager
async def page_world(
    settings: Settings, tenant: str
) -> AsyncIterator[tuple[Page, Litestar, str, Gateway | None]]:
    """This service and a gateway in front of it, served; the page of ``tenant`` on the gateway:
    (page, app, the service's URL, the test gateway).

    With ``FRONTEND_REAL_GATEWAY`` set (the URL of the platform's own api-gateway, started with
    ``INVITE_SERVICE_URL=http://127.0.0.1:$FRONTEND_SERVICE_PORT``), the service is served on that
    port and the page talks to the real gateway instead of ours (the test gateway is then None).
    """
    app = create_app(settings)
    assert settings.jwt_secret is not None
    token = issue_token(settings.jwt_secret, tenant, timedelta(minutes=30))
    real = os.environ.get("FRONTEND_REAL_GATEWAY")
    port = int(os.environ["FRONTEND_SERVICE_PORT"]) if real else 0
    async with serve(app, port) as service_url:
        gateway = None if real else Gateway(service_url)
        async with AsyncExitStack() as stack:
            gateway_url = real if gateway is None else await stack.enter_async_context(serve(gateway))
            assert gateway_url is not None
            page = Page(gateway_url, token)
            stack.push_async_callback(page.aclose)
            yield page, app, service_url, gateway
