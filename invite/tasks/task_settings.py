"""A task's own settings: they may lower the service's limits, never raise them."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from invite.kernel.problems import InvalidParam
from invite.kernel.settings import Settings

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
# PostgreSQL stores no NUL character: a text field holding one is refused, naming the field.
NO_NUL = r"^[^\x00]*$"
AccountId = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=NO_NUL)]


class SendWindow(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Hours of the day (in the tenant's time zone) when actions may happen; may wrap midnight."""

    start: str  # "HH:MM"
    end: str  # "HH:MM"
    timezone: Annotated[str, msgspec.Meta(max_length=64)] = "UTC"

    def bounds(self) -> tuple[time, time, ZoneInfo]:
        return time.fromisoformat(self.start), time.fromisoformat(self.end), ZoneInfo(self.timezone)


# Every number has a bound in the schema itself (422 beyond it, naming it), far above any real
# use and far below what the engine's arithmetic and PostgreSQL's int4/int8/interval hold: a
# pause of 1e12 s overflowed the pacing's datetimes, max_parallel_accounts of 2**70 an int8.
MAX_DAILY_LIMIT = 10_000
MAX_PAUSE_SECONDS = 86_400.0  # one action a day
MAX_PARALLEL_ACCOUNTS = 10_000
MAX_ATTEMPTS = 100
MAX_RECONTACT_DAYS = 3_650  # ten years
MAX_ACCOUNT_IDS = 10_000
MAX_INVITE_LINK_HOURS = 720  # thirty days


class TaskSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    # the accounts to use; default: all the tenant's accounts
    account_ids: Annotated[list[AccountId], msgspec.Meta(max_length=MAX_ACCOUNT_IDS)] | None = None
    daily_limit_per_account: Annotated[int, msgspec.Meta(ge=1, le=MAX_DAILY_LIMIT)] | None = None
    min_pause_seconds: Annotated[float, msgspec.Meta(gt=0, le=MAX_PAUSE_SECONDS)] | None = None
    max_parallel_accounts: Annotated[int, msgspec.Meta(ge=1, le=MAX_PARALLEL_ACCOUNTS)] | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=MAX_ATTEMPTS)] | None = None
    recontact_days: Annotated[int, msgspec.Meta(ge=0, le=MAX_RECONTACT_DAYS)] | None = None
    send_window: SendWindow | None = None
    # invite tasks: a person whose privacy refuses a direct add, and who accepts messages, gets
    # one personal message from the task's template with a one-use invite link ("invite_link")
    privacy_fallback: Literal["none", "invite_link"] | None = None
    # ... which works this many hours (default: the service's INVITE_LINK_HOURS)
    invite_link_hours: Annotated[int, msgspec.Meta(ge=1, le=MAX_INVITE_LINK_HOURS)] | None = None
    # fields another client sent besides these (the platform's Mailing page: auto_add_contacts, ...),
    # kept as sent and given back; nothing here reads them
    extra: Annotated[dict[str, Any], msgspec.Meta(max_length=64)] | None = None


def settings_problems(task: TaskSettings, service: Settings) -> list[InvalidParam]:
    """What is wrong with ``task`` against the service's limits (empty when it is fine)."""
    problems: list[InvalidParam] = []
    if task.daily_limit_per_account is not None and task.daily_limit_per_account > service.daily_quota:
        problems.append(
            InvalidParam(
                "settings.daily_limit_per_account",
                f"may lower the daily quota, not raise it: at most {service.daily_quota}",
            )
        )
    if task.min_pause_seconds is not None and task.min_pause_seconds < service.min_pause_seconds:
        problems.append(
            InvalidParam(
                "settings.min_pause_seconds",
                f"may lengthen the pause between actions, not shorten it: at least {service.min_pause_seconds:g}",
            )
        )
    if task.max_attempts is not None and task.max_attempts > service.max_attempts:
        problems.append(InvalidParam("settings.max_attempts", f"at most {service.max_attempts}"))
    if task.account_ids is not None and not task.account_ids:
        problems.append(InvalidParam("settings.account_ids", "give at least one account, or leave it out"))
    if task.send_window is not None:
        problems.extend(_window_problems(task.send_window))
    return problems


def offers_link(task: TaskSettings) -> bool:
    """Whether a person an invite cannot add for privacy is offered a one-use invite link."""
    return task.privacy_fallback == "invite_link"


def _window_problems(window: SendWindow) -> list[InvalidParam]:
    problems = [
        InvalidParam(f"settings.send_window.{name}", "must be HH:MM (24 h)")
        for name, value in (("start", window.start), ("end", window.end))
        if not _HHMM.match(value)
    ]
    try:
        ZoneInfo(window.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        problems.append(InvalidParam("settings.send_window.timezone", "unknown time zone (use an IANA name)"))
    if not problems and window.start == window.end:
        problems.append(InvalidParam("settings.send_window", "start and end must differ"))
    return problems
