"""A local stand-in for the Parsing Service's ``GET /results/{task_id}`` (PLATFORM-CONTRACTS.md):
offset pagination over a fixed list of results, behind the service JWT."""

from __future__ import annotations

from typing import Any

import jwt

from tests.fakeserver import Reply, Request


class ParsingService:
    """Route it at ``/results/{task_id}``; it checks each call's JWT and notes its tenant."""

    def __init__(self, secret: str, people: list[dict[str, Any]]) -> None:
        self.secret = secret
        self.people = people
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
