"""A local stand-in for the Parsing Service's ``GET /results/{task_id}`` (PLATFORM-CONTRACTS.md):
offset pagination over a fixed list of results, behind the service JWT. As the service does
when run (PLATFORM-AS-RUN.md), a channel's parse holds one row about the channel itself
beside the people (``channel_row``): give it ``channel`` to serve one. A basic group's parse
holds a row about the group instead (``group_row``).

Seen when the platform's code ran (docs/platform-as-run.md): a result's ``id`` and ``task_id``
are the service's integer keys as strings (``"12"``, ``"1"``), not the task's uuid; the list of
a tenant's tasks is ``GET /api/v1/results/grouped`` (``grouped_route``) — at the root,
``GET /results/grouped`` is taken by ``/results/{task_id}`` and answers an empty task
"grouped" (``ROOT_GROUPED``)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import jwt

from tests.fakeserver import FakeServer, Reply, Request


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
        "platform_specific_data": {  # the channel's own fields, as the platform's adapter stores them
            "channel_id": chat_id,
            "username": username,
            "title": "Interop group",
            "participants_count": 13,
            "is_verified": False,
            "is_broadcast": False,
            "is_megagroup": True,
            "description": "",
            "date_created": "2025-01-01T00:00:00",
        },
    }


def group_row(task_id: str, chat_id: int = 4567890) -> dict[str, Any]:
    """The ``group_metadata`` row the Parsing Service stores for a basic group it parses:
    ``platform_id`` ``group_<id>``, ``display_name`` ``Group: <title>``, no username, no author."""
    return {
        "id": str(uuid4()),
        "task_id": task_id,
        "platform": "telegram",
        "platform_id": f"group_{chat_id}",
        "username": None,
        "display_name": "Group: Basic group",
        "author_phone": None,
        "created_at": "2026-01-05T08:59:00",
        "platform_specific_data": {
            "chat_id": chat_id,
            "title": "Basic group",
            "participants_count": 13,
            "date_created": "2025-01-01T00:00:00",
            "is_creator": False,
        },
    }


# what the platform's ``GET /results/grouped`` (at the root) answers: the task route takes it
ROOT_GROUPED = {
    "task_id": "grouped",
    "results": [],
    "total": 0,
    "format": "json",
    "pagination": {"offset": 0, "limit": 1000, "has_more": False},
    "message": "Task grouped not found in database",
}
GROUPED_PATH = "/api/v1/results/grouped"  # where the list of a tenant's parsing tasks really is


def grouped_route(server: FakeServer, tasks: list[dict[str, Any]], user_id: int | str) -> None:
    """Route a tenant's parsing tasks where the platform serves them, and the root path the
    way the platform answers it (the empty task "grouped")."""
    body = {"tasks": tasks, "total_tasks": len(tasks), "user_id": user_id}
    server.route("GET", GROUPED_PATH, Reply(json=body))
    server.route("GET", "/results/grouped", Reply(json=ROOT_GROUPED))


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
