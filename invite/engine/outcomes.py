"""Apply the decision table to one answer: the account's bucket now, the rest as an Entry
for the group commit.

Every effect comes from the answer's row of ``DECISIONS``: each cell picks one small function
below (``_FATES``, ``_ACCOUNT``, ``_TASK``, ``_TASK_ACCOUNT``) and nothing here looks at the
outcome's kind. The adapter's event, if its answer carries one, is what the accounts provider
is told. Besides ``settle``: ``give_back`` (a claim not acted on), ``retire`` (an account dead
at start-up) and ``refused`` (a reservation the database refused) apply their rows the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from invite.engine.account import LeasedAccount
from invite.engine.decisions import (
    DECISIONS,
    REFUSED,
    AccountEffect,
    Call,
    Decision,
    EngineOutcome,
    Raised,
    TargetFate,
    TaskEffect,
    decision_key,
)
from invite.engine.health import DEAD_REASON, SPAM_FLAG_REASON
from invite.engine.recorder import AccountChange, Entry, LogRow, TargetOutcome, TaskAccountChange
from invite.engine.registry import Registry, RunningTask
from invite.engine.statuses import AccountStatus, TargetStatus, TaskAccountStatus
from invite.kernel.settings import Settings
from invite.observability.metrics import accounts_blocked, cooldowns, floodwait_events, peerflood_events
from invite.platforms.base import AccountEvent, Outcome, Target, TargetKind

if TYPE_CHECKING:  # claims.py applies the table too (refused): no import cycle
    from invite.engine.claims import Claim

Answer = Outcome | Raised  # the platform's answer, or the engine's for a step that raised

# An account the database refused although its bucket allowed it rests this long (in memory)
# while the picture is refreshed, instead of asking again at once.
REFUSED_REST = timedelta(seconds=1)
ROOM_RECHECK = timedelta(minutes=5)


def settle(
    settings: Settings,
    registry: Registry,
    now: datetime,
    account: LeasedAccount,
    task: RunningTask,
    result: Answer,
    claim: Claim | None,
) -> Entry:
    """Everything ``result`` changes; ``now`` is when the platform answered (the time the
    execution log shows). ``claim`` is None for the check of the account's right (only a
    failed check is settled: a right granted is kept in the account)."""
    link_due = claim is not None and claim.link_due
    d = DECISIONS[decision_key(result.kind, offers_link=task.offers_link, link_due=link_due)]
    detail, seconds = result.detail, result.seconds
    entry = Entry(task.id, task.platform, account.user_id, account.id, breaker=d.breaker)
    if claim is None:
        _CHECKED[d.fate](account, settings, now)
        entry.log = LogRow(
            None, account.id, Call.CHECK_RIGHT, d.logged, _details(detail, 0, None, seconds), now
        )
        stats: dict[str, int] = {}
        used = None
    else:
        entry.target = _FATES[d.fate](d, detail, claim, task, settings, now, account.id)
        entry.log = LogRow(
            claim.target_id,
            account.id,
            Call.LINK_MESSAGE if link_due else task.action,
            d.logged,
            _details(detail, claim.attempts, claim.key, seconds),
            now,
        )
        if d.opt_out:
            entry.opt_out = (claim.key, f"opted out: {detail}" if detail else "opted out")
        _count_import(account, claim)
        if d.counted:
            _count_usage(account, task, message=link_due)
        stats, used = {d.outcome: 1}, now
    entry.account = _ACCOUNT[d.account](account, detail, seconds, settings, now)
    _TASK[d.task](entry, account, task, detail, d.outcome, registry)
    entry.task_account = _TASK_ACCOUNT[d.task_account](
        entry, account, task, detail, d.outcome, stats, used, now
    )
    if result.event is not None:
        message = f"{d.outcome}: {detail}" + (f" ({seconds:g} s)" if seconds else "")
        entry.report = _tell(account, result.event, message, detail)
    return entry


def give_back(account: LeasedAccount, task: RunningTask, claim: Claim, now: datetime, why: str) -> Entry:
    """The claimed target goes back to the queue as if never claimed: nothing was sent."""
    d = DECISIONS[EngineOutcome.NOT_ACTED]
    assert d.status is not None
    target = TargetOutcome(
        claim.target_id, claim.attempts, d.status, d.outcome, None, why, {}, _attempts(d, claim), now, d.link
    )
    return Entry(task.id, task.platform, account.user_id, account.id, target=target, breaker=d.breaker)


@dataclass(frozen=True, slots=True)
class Retirement:
    """An account found dead at start-up: its row, the status of its rows in every task, why
    (in its row and in each of those), and what the accounts provider is told (if the adapter
    named an event)."""

    account: AccountChange
    task_status: TaskAccountStatus
    reason: str
    report: tuple[AccountEvent, str] | None


def retire(settings: Settings, account: LeasedAccount, outcome: Outcome, now: datetime) -> Retirement:
    d = DECISIONS[EngineOutcome.DEAD_AT_START]
    change = _ACCOUNT[d.account](account, outcome.detail, outcome.seconds, settings, now)
    assert change is not None
    assert change.reason is not None
    assert d.task_account is not None
    report = None if outcome.event is None else _tell(account, outcome.event, change.reason, outcome.detail)
    return Retirement(change, d.task_account, change.reason, report)


def refused(settings: Settings, account: LeasedAccount, held: bool, now: datetime) -> None:
    """The database refused the account's reservation; its row is loaded into ``account``
    (``held``: this replica still leases it)."""
    d = DECISIONS[REFUSED[account.status] if held else EngineOutcome.LEASE_LOST]
    _ACCOUNT[d.account](account, "", 0.0, settings, now)


def short_of_room(
    settings: Settings,
    account: LeasedAccount,
    held: bool,
    opens_at: datetime | None,
    now: datetime,
    key: EngineOutcome = EngineOutcome.CONTACTS_FULL,
) -> None:
    """The claim had only targets the account has no room for (its row is loaded into
    ``account``): +phone targets with its contacts window full (``CONTACTS_FULL``), or one-use
    links with its 24 h window past the link quota (``LINKS_FULL``). It rests until that window
    opens at ``opens_at``, ``ROOM_RECHECK`` at most (other people may come into the queue
    meanwhile) -- the whole of it when no window is open (a contacts limit of 0 never opens one)."""
    d = DECISIONS[key if held else EngineOutcome.LEASE_LOST]
    rest = ROOM_RECHECK if opens_at is None or opens_at <= now else min(opens_at - now, ROOM_RECHECK)
    _ACCOUNT[d.account](account, "", rest.total_seconds(), settings, now)


def _details(detail: str, attempt: int, identifier: str | None, seconds: float) -> dict[str, Any]:
    details: dict[str, Any] = {"detail": detail, "attempt": attempt, "identifier": identifier}
    if seconds:
        details["seconds"] = seconds
    return details


def _tell(account: LeasedAccount, event: AccountEvent, message: str, detail: str) -> tuple[AccountEvent, str]:
    """What the accounts provider hears now, and in the usage the account is released with."""
    account.usage.success, account.usage.error_type, account.usage.error_message = False, event.value, detail
    return event, message


def _count_import(account: LeasedAccount, claim: Claim) -> None:
    """A +phone target acted on was reached by importing its number (whatever the answer
    after that): the accounts provider counts it against the account's contacts limit."""
    if Target.from_key(claim.key).kind is TargetKind.PHONE:
        account.usage.contacts_added += 1


def _count_usage(account: LeasedAccount, task: RunningTask, *, message: bool) -> None:
    """An action counted: an invite, or a message (a link's message in an invite task too)."""
    if task.is_invite and not message:
        account.usage.invites_sent += 1
        if task.group_id and task.group_id not in account.usage.channels_used:
            account.usage.channels_used.append(task.group_id)
    else:
        account.usage.messages_sent += 1


# --- the target (fate) --------------------------------------------------------------------


def _attempts(d: Decision, claim: Claim) -> int:
    return claim.attempts - 1 if d.gives_back else claim.attempts


def _error(d: Decision, detail: str) -> str | None:
    return (detail or None) if d.error else None


def _result(account_id: str, detail: str) -> dict[str, Any]:
    return {"account_id": account_id, "detail": detail} if detail else {"account_id": account_id}


def _row(
    d: Decision,
    claim: Claim,
    processed_at: datetime | None,
    error: str | None,
    result: dict[str, Any],
    due: datetime | None,
    status: TargetStatus | None = None,
) -> TargetOutcome:
    """The target's row as the recorder writes it: the decision's status unless ``status``."""
    chosen = status or d.status
    assert chosen is not None
    return TargetOutcome(
        claim.target_id,
        claim.attempts,
        chosen,
        d.outcome,
        processed_at,
        error,
        result,
        _attempts(d, claim),
        due,
        d.link,
    )


def _done(
    d: Decision,
    detail: str,
    claim: Claim,
    task: RunningTask,
    settings: Settings,
    now: datetime,
    account_id: str,
) -> TargetOutcome | None:
    return _row(d, claim, now, _error(d, detail), _result(account_id, detail), now)


def _requeue(
    d: Decision,
    detail: str,
    claim: Claim,
    task: RunningTask,
    settings: Settings,
    now: datetime,
    account_id: str,
) -> TargetOutcome | None:
    return _row(d, claim, None, _error(d, detail), _result(account_id, detail), None if d.ahead else now)


def _retry(
    d: Decision,
    detail: str,
    claim: Claim,
    task: RunningTask,
    settings: Settings,
    now: datetime,
    account_id: str,
) -> TargetOutcome | None:
    """Back after an exponential backoff; once the task's attempts are spent, ends with the
    row's status and the reason."""
    result = _result(account_id, detail)
    if claim.attempts >= (task.settings.max_attempts or settings.max_attempts):
        reason = f"gave up after {claim.attempts} attempts: {detail or d.outcome}"
        return _row(d, claim, now, reason, result, now)
    backoff = min(
        settings.retry_backoff_seconds * 2 ** (claim.attempts - 1), settings.retry_backoff_max_seconds
    )
    due = now + timedelta(seconds=backoff)
    return _row(d, claim, None, _error(d, detail), result, due, TargetStatus.PENDING)


def _untouched(
    d: Decision,
    detail: str,
    claim: Claim,
    task: RunningTask,
    settings: Settings,
    now: datetime,
    account_id: str,
) -> TargetOutcome | None:
    return None


_FATES = {
    TargetFate.DONE: _done,
    TargetFate.REQUEUE: _requeue,
    TargetFate.RETRY: _retry,
    TargetFate.NONE: _untouched,
}


def _ask_later(account: LeasedAccount, settings: Settings, now: datetime) -> None:
    """A check of the right that failed for now: the account rests before it is asked again."""
    account.bucket.cool_down(now + timedelta(seconds=settings.retry_backoff_seconds))


def _as_is(account: LeasedAccount, settings: Settings, now: datetime) -> None:
    return None


_CHECKED = {
    TargetFate.DONE: _as_is,
    TargetFate.REQUEUE: _as_is,
    TargetFate.RETRY: _ask_later,
    TargetFate.NONE: _as_is,
}


# --- the account --------------------------------------------------------------------------


def _status_change(
    account: LeasedAccount, now: datetime, reason: str | None, flood_waits: int = 0, peer_floods: int = 0
) -> AccountChange:
    bucket = account.bucket
    status = account.status = AccountStatus.COOLDOWN if bucket.cooling(now) else AccountStatus.ACTIVE
    return AccountChange(
        account.id, status, reason, bucket.cooldown_until, bucket.multiplier, flood_waits, peer_floods
    )


def _unchanged(
    account: LeasedAccount, detail: str, seconds: float, settings: Settings, now: datetime
) -> AccountChange | None:
    """Only a cooldown that is over is written (back to active)."""
    if account.status == AccountStatus.ACTIVE or account.bucket.cooling(now):
        return None
    return _status_change(account, now, None)


def _relax(
    account: LeasedAccount, detail: str, seconds: float, settings: Settings, now: datetime
) -> AccountChange | None:
    before = account.bucket.multiplier
    account.bucket.relax(settings.pace_multiplier_step)
    if account.bucket.multiplier == before and account.status == AccountStatus.ACTIVE:
        return None
    return _status_change(account, now, None)


def _cool_down(
    account: LeasedAccount, detail: str, seconds: float, settings: Settings, now: datetime
) -> AccountChange | None:
    # as long as the accounts provider rests it (the platform adds its margin to the wait)
    account.bucket.cool_down(now + timedelta(seconds=seconds + settings.flood_wait_margin_seconds))
    account.bucket.back_off(settings.pace_multiplier_max)
    floodwait_events.labels(platform=account.platform).inc()
    cooldowns.labels(reason="flood_wait").inc()
    return _status_change(account, now, f"FloodWait {seconds:g} s", flood_waits=1)


def _spam_flag(
    account: LeasedAccount, detail: str, seconds: float, settings: Settings, now: datetime
) -> AccountChange | None:
    account.bucket.cool_down(now + timedelta(seconds=settings.peer_flood_cooldown_seconds))
    cooldowns.labels(reason="peer_flood").inc()
    peerflood_events.labels(platform=account.platform).inc()
    # its clean history starts again when the rest is over: it comes back on day 1 of its warm-up
    back = account.bucket.cooldown_until
    account.restart_warmup(back)
    reason = f"{SPAM_FLAG_REASON}: resting {settings.peer_flood_cooldown_seconds // 3600} h"
    change = _status_change(account, now, reason, peer_floods=1)
    change.warmup_since = back
    return change


def _block(
    account: LeasedAccount, detail: str, seconds: float, settings: Settings, now: datetime
) -> AccountChange | None:
    account.blocked, account.driving, account.status = True, False, AccountStatus.BLOCKED
    accounts_blocked.labels(platform=account.platform).inc()
    account.restart_warmup(now)  # dead or frozen: were it ever brought back, it warms up anew
    bucket = account.bucket
    return AccountChange(
        account.id,
        AccountStatus.BLOCKED,
        f"{DEAD_REASON}: {detail}",
        bucket.cooldown_until,
        bucket.multiplier,
        warmup_since=now,
    )


def _rest(
    account: LeasedAccount, detail: str, seconds: float, settings: Settings, now: datetime
) -> AccountChange | None:
    """Not driven for ``seconds`` (none given: a moment), in memory only: nothing changed in
    the database, which refused it."""
    account.bucket.cool_down(now + (timedelta(seconds=seconds) if seconds else REFUSED_REST))
    return None


def _stop(
    account: LeasedAccount, detail: str, seconds: float, settings: Settings, now: datetime
) -> AccountChange | None:
    """Blocked in the database already: stop driving it."""
    account.blocked, account.driving = True, False
    return None


def _let_go(
    account: LeasedAccount, detail: str, seconds: float, settings: Settings, now: datetime
) -> AccountChange | None:
    """Another replica leases it now: stop, and do not release its lease."""
    account.held = account.driving = False
    return None


_AccountFn = Callable[[LeasedAccount, str, float, Settings, datetime], AccountChange | None]
_ACCOUNT: dict[AccountEffect, _AccountFn] = {
    AccountEffect.NONE: _unchanged,
    AccountEffect.RELAX: _relax,
    AccountEffect.COOL_DOWN: _cool_down,
    AccountEffect.SPAM_FLAG: _spam_flag,
    AccountEffect.BLOCK: _block,
    AccountEffect.REST: _rest,
    AccountEffect.STOP: _stop,
    AccountEffect.LET_GO: _let_go,
}


# --- the task -----------------------------------------------------------------------------


def _stay(
    entry: Entry, account: LeasedAccount, task: RunningTask, detail: str, outcome: str, registry: Registry
) -> None:
    return None


def _leave(
    entry: Entry, account: LeasedAccount, task: RunningTask, detail: str, outcome: str, registry: Registry
) -> None:
    registry.forbid(account.id, task.id)


def _pause(
    entry: Entry, account: LeasedAccount, task: RunningTask, detail: str, outcome: str, registry: Registry
) -> None:
    chat = f"the group {task.group_id}" if task.group_id else "Telegram"
    entry.pause_reason = f"{chat} refuses: {detail or outcome}; fix it, then resume the task"


_TASK = {TaskEffect.NONE: _stay, TaskEffect.LEAVE: _leave, TaskEffect.PAUSE: _pause}


# --- the account in the task --------------------------------------------------------------

_TaskAccountFn = Callable[
    [Entry, LeasedAccount, RunningTask, str, str, dict[str, int], datetime | None, datetime],
    TaskAccountChange,
]


def _as_the_bucket_says(
    entry: Entry,
    account: LeasedAccount,
    task: RunningTask,
    detail: str,
    outcome: str,
    stats: dict[str, int],
    used: datetime | None,
    now: datetime,
) -> TaskAccountChange:
    bucket = account.bucket
    if bucket.cooling(now):
        return TaskAccountChange(
            TaskAccountStatus.COOLDOWN, f"{outcome}: {detail}", bucket.cooldown_until, stats, used
        )
    return TaskAccountChange(TaskAccountStatus.ACTIVE, None, None, stats, used)


def _blocked(
    entry: Entry,
    account: LeasedAccount,
    task: RunningTask,
    detail: str,
    outcome: str,
    stats: dict[str, int],
    used: datetime | None,
    now: datetime,
) -> TaskAccountChange:
    """Dead: blocked in this task, and in every other it serves (the recorder's follow-up)."""
    entry.blocked_reason = reason = f"{DEAD_REASON}: {detail}"
    return TaskAccountChange(TaskAccountStatus.BLOCKED, reason, account.bucket.cooldown_until, stats, used)


def _excluded(
    entry: Entry,
    account: LeasedAccount,
    task: RunningTask,
    detail: str,
    outcome: str,
    stats: dict[str, int],
    used: datetime | None,
    now: datetime,
) -> TaskAccountChange:
    what = f"invite into {task.group_id}" if task.is_invite else "write to these people"
    return TaskAccountChange(TaskAccountStatus.EXCLUDED, f"no right to {what}: {detail}", None, stats, used)


_TASK_ACCOUNT: dict[TaskAccountStatus | None, _TaskAccountFn] = {
    None: _as_the_bucket_says,
    TaskAccountStatus.BLOCKED: _blocked,
    TaskAccountStatus.EXCLUDED: _excluded,
}
