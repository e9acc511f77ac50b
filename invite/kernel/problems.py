"""RFC 9457 problem details: the one error shape of the API.

Raise ``Problem`` anywhere below a route handler; the app's exception handlers turn it, and
Litestar's own validation and HTTP errors, into ``application/problem+json``.
"""

from __future__ import annotations

from datetime import UTC, datetime
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


# The instants a request may name: what PostgreSQL's timestamptz and Python's datetime both
# hold once converted to UTC (0001-01-01T00:00+14:00 is in year 0 in UTC, 9999-12-31T23:00-14:00
# in year 10000: either made the database driver raise).
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def out_of_range(**instants: datetime | None) -> list[InvalidParam]:
    """The named instants that fall outside the years 1 to 9999 in UTC."""
    problems = []
    for name, value in instants.items():
        if value is None:
            continue
        try:
            fine = EARLIEST <= value.astimezone(UTC) <= LATEST
        except (OverflowError, ValueError):
            fine = False
        if not fine:
            problems.append(InvalidParam(name, "out of range: a time between the years 1 and 9999 (UTC)"))
    return problems


def check_instants(**instants: datetime | None) -> None:
    """422 naming every instant out of range."""
    problems = out_of_range(**instants)
    if problems:
        raise Problem(422, "Invalid request", "the request is not valid", params=problems)
