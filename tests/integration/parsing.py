"""A local stand-in for the Parsing Service's ``GET /results/{task_id}`` (PLATFORM-CONTRACTS.md):
offset pagination over a fixed list of results, behind the service JWT. As the service does
when run (PLATFORM-AS-RUN.md), a channel's parse holds one row about the channel itself
beside the people (``channel_row``): give it ``channel`` to serve one."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import jwt

from tests.fakeserver import Reply, Request


def channel_row(task_id: str, chat_id: int = 1234567890, username: str = "interop_grp") -> dict[str, Any]:
    """The ``channel_metadata`` row the Parsing Service stores for every channel it parses: its
    results API does not say it is one (no content type), and it has no author id."""
    return {
        "id": str(uuid4()),
        "task_id": task_id,
        "platform": "telegram",
        "platform_id": f"channel_{chat_id}",
        "username": username,
        "display_name": "Channel: Interop group",
        "author_phone": None,
        "created_at": "2026-01-05T08:59:00",
        "platform_specific_data": {"chat_id": -1000000000000 - chat_id, "chat_title": "Interop group"},
    }


class ParsingService:
    """Route it at ``/results/{task_id}``; it checks each call's JWT and notes its tenant.
    ``channel``: the channel row, served last (the oldest: results come ``created_at DESC``)."""

    def __init__(
        self, secret: str, people: list[dict[str, Any]], channel: dict[str, Any] | None = None
    ) -> None:
        self.secret = secret
        self.people = [*people, channel] if channel else people
        self.tenants: list[object] = []

    def __call__(self, request: Request) -> Reply:
        claims = jwt.decode(
            request.headers["authorization"].removeprefix("Bearer "), self.secret, algorithms=["HS256"]
        )
        assert claims["service"] == "invite-service"
        self.tenants.append(claims["user_id"])
        limit = int(request.arg("limit") or 1000)
        offset = int(request.arg("offset") or 0)
        return Reply(
            json={
                "task_id": request.params["task_id"],
                "results": self.people[offset : offset + limit],
                "total": len(self.people),
                "format": "json",
                "pagination": {
                    "offset": offset,
                    "limit": limit,
                    "has_more": offset + limit < len(self.people),
                },
            }
        )
