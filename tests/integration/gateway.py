"""A local stand-in for the platform's API gateway: ``GET /internal/users/by-email`` answers the
platform's user for an email it knows and 404 otherwise (PLATFORM-CONTRACTS.md)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tests.fakeserver import FakeServer, Reply, Request


@contextmanager
def api_gateway(users: Mapping[str, Any]) -> Iterator[FakeServer]:
    """``users``: email → the user id the gateway gives, or a whole Reply to answer instead."""

    def answer(request: Request) -> Reply:
        email = request.arg("email") or ""
        if email not in users:
            return Reply(404, json={"detail": "User not found"})
        user = users[email]
        return user if isinstance(user, Reply) else Reply(json={"id": user, "email": email})

    with FakeServer() as server:
        server.route("GET", "/internal/users/by-email", answer)
        yield server
