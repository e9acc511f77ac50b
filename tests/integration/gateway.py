"""Local stand-ins for the platform's identity look-up, answering as its services do when run
(PLATFORM-AS-RUN.md): ``GET /internal/users/by-email`` at the user service answers 404 for an
email it does not know; the API gateway forwards that call but answers 500 instead of the
404 (it swallows the user service's answer). Seen when run (docs/platform-as-run.md): the
gateway's 500 detail is ``"Ошибка при запросе к user-service: "`` with nothing after the colon
(it formats an ``HTTPException`` raised with keyword arguments, whose ``str()`` is empty)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tests.fakeserver import FakeServer, Reply, Request

NOT_FOUND = {"detail": "User not found"}
GATEWAY_FAILED = "Ошибка при запросе к user-service: "  # sic: the user service's 404 is lost


def _user(users: Mapping[str, Any], request: Request) -> Reply:
    email = (request.arg("email") or "").strip().lower()
    if email not in users:
        return Reply(404, json=NOT_FOUND)
    user = users[email]
    return user if isinstance(user, Reply) else Reply(json={"id": user, "email": email})


@contextmanager
def user_service(users: Mapping[str, Any]) -> Iterator[FakeServer]:
    """``users``: email → the user id, or a whole Reply to answer instead."""
    with FakeServer() as server:
        server.route("GET", "/internal/users/by-email", lambda request: _user(users, request))
        yield server


@contextmanager
def api_gateway(users: Mapping[str, Any]) -> Iterator[FakeServer]:
    """The gateway in front of the same users: what the user service does not answer 200 comes
    back as the gateway's own 500, whose detail says nothing of the user service's answer."""

    def answer(request: Request) -> Reply:
        reply = _user(users, request)
        if reply.status != 200:
            return Reply(500, json={"detail": GATEWAY_FAILED})
        return reply

    with FakeServer() as server:
        server.route("GET", "/internal/users/by-email", answer)
        yield server
