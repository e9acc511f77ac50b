"""RFC 9457 problem details: the one error shape of the API.

Raise ``Problem`` anywhere below a route handler; the app's exception handlers turn it, and
Litestar's own validation and HTTP errors, into ``application/problem+json``.
"""

from __future__ import annotations

from typing import Any

import msgspec


class InvalidParam(msgspec.Struct, frozen=True):
    name: str  # the field, as a JSON path into the request (e.g. "settings.daily_limit")
    reason: str


class ProblemDetails(msgspec.Struct, omit_defaults=True):
    type: str = "about:blank"
    title: str = ""
    status: int = 500
    detail: str | None = None
    instance: str | None = None
    invalid_params: list[InvalidParam] | None = msgspec.field(default=None, name="invalid-params")
    extra: dict[str, Any] | None = None


class Problem(Exception):
    """An error the client can act on; ``field`` names the offending input when there is one."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        field: str | None = None,
        reason: str | None = None,
        params: list[InvalidParam] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.params = list(params or [])
        if field is not None:
            self.params.append(InvalidParam(field, reason or detail or title))
        self.extra = extra

    def details(self, instance: str | None = None) -> ProblemDetails:
        return ProblemDetails(
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            invalid_params=self.params or None,
            extra=self.extra,
        )


def invalid(field: str, reason: str) -> Problem:
    """422 for one bad field."""
    return Problem(422, "Invalid request", reason, field=field, reason=reason)


def not_found(what: str) -> Problem:
    return Problem(404, "Not found", f"{what} not found")


def conflict(detail: str) -> Problem:
    return Problem(409, "Conflict", detail)
