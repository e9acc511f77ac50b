"""Apply the decision table to one outcome: the account's bucket now, the rest as an Entry
for the group commit."""

from __future__ import annotations

from datetime import datetime, timedelta

from invite.engine.account import LeasedAccount
from invite.engine.actions import Unknown
from invite.engine.claims import Claim
from invite.engine.decisions import (
    UNKNOWN_DELIVERY,
    AccountEffect,
    Decision,
    TargetFate,
    TaskEffect,
    dead_account_event,
    decide,
)
from invite.engine.recorder import AccountChange, Entry, LogRow, TargetOutcome, TaskAccountChange
from invite.engine.registry import Registry, RunningTask
from invite.kernel.settings import Settings
from invite.observability.metrics import accounts_blocked, cooldowns, floodwait_events
from invite.platforms.base import Outcome, OutcomeKind


def settle(
    settings: Settings,
    registry: Registry,
    now: datetime,
    account: LeasedAccount,
    task: RunningTask,
    result: Outcome | Unknown,
    claim: Claim | None,
) -> Entry:
    """Everything ``result`` changes; ``now`` is when the platform answered (the time the
    execution log shows). ``claim`` is None for the check of the account's right."""
    if isinstance(result, Unknown):
        decision, kind, detail, seconds = UNKNOWN_DELIVERY, "driver_error", result.detail, 0.0
    else:
        decision, kind, detail, seconds = (
            decide(result.kind),
            result.kind.value,
            result.detail,
            result.seconds,
        )
    entry = Entry(task.id, task.platform, account.user_id, account.id, breaker=decision.breaker)
    if claim is not None:
        entry.target = _target(decision, kind, detail, claim, task, settings, now, account.id)
    elif decision.fate is TargetFate.RETRY:  # the check failed for now: rest before asking again
        account.bucket.cool_down(now + timedelta(seconds=settings.retry_backoff_seconds))
    if claim is not None or kind != OutcomeKind.SUCCESS.value:
        details = {
            "detail": detail,
            "attempt": claim.attempts if claim else 0,
            "identifier": claim.key if claim else None,
        }
        if seconds:
            details["seconds"] = seconds
        action = task.action if claim is not None else "check_invite_right"
        entry.log = LogRow(claim.target_id if claim else None, account.id, action, kind, details, now)
    entry.account = _account(
        decision, account, seconds, detail, task.platform, settings, now, relax=claim is not None
    )
    if decision.event is not None:
        if isinstance(result, Unknown):
            event = decision.event
        elif decision.account is AccountEffect.BLOCK:
            event = dead_account_event(result)
        else:
            event = result.event or decision.event
        entry.report = (event, f"{kind}: {detail}" + (f" ({seconds:g} s)" if seconds else ""))
        account.usage.success, account.usage.error_type, account.usage.error_message = (
            False,
            event.value,
            detail,
        )
    if decision.account is AccountEffect.BLOCK:
        entry.blocked_reason = f"account dead: {detail}"
    if decision.opt_out and claim is not None:
        entry.opt_out = (claim.key, f"opted out: {detail}" if detail else "opted out")
    if decision.task is TaskEffect.PAUSE:
        chat = f"the group {task.group_id}" if task.group_id else "Telegram"
        entry.pause_reason = f"{chat} refuses: {detail or kind}; fix it, then resume the task"
    entry.task_account = _task_account(decision, account, task, kind, detail, claim, now, registry)
    _count_usage(account, task, kind, claim)
    return entry


def _target(
    decision: Decision,
    kind: str,
    detail: str,
    claim: Claim,
    task: RunningTask,
    settings: Settings,
    now: datetime,
    account_id: str,
) -> TargetOutcome:
    result = {"account_id": account_id, **({"detail": detail} if detail else {})}
    error = detail or None if kind not in (OutcomeKind.SUCCESS, OutcomeKind.ALREADY_MEMBER) else None
    if decision.fate is TargetFate.DONE:
        assert decision.status is not None
        return TargetOutcome(
            claim.target_id, claim.attempts, decision.status, kind, now, error, result, claim.attempts, now
        )
    if decision.fate is TargetFate.REQUEUE:  # never acted on: not an attempt against the person
        return TargetOutcome(
            claim.target_id, claim.attempts, "pending", kind, None, error, result, claim.attempts - 1, now
        )
    most = task.settings.max_attempts or settings.max_attempts
    if claim.attempts >= most:
        reason = f"gave up after {claim.attempts} attempts: {detail or kind}"
        return TargetOutcome(
            claim.target_id, claim.attempts, "failed", kind, now, reason, result, claim.attempts, now
        )
    backoff = min(
        settings.retry_backoff_seconds * 2 ** (claim.attempts - 1), settings.retry_backoff_max_seconds
    )
    retry_at = now + timedelta(seconds=backoff)
    return TargetOutcome(
        claim.target_id, claim.attempts, "pending", kind, None, error, result, claim.attempts, retry_at
    )


def _account(
    decision: Decision,
    account: LeasedAccount,
    seconds: float,
    detail: str,
    platform: str,
    settings: Settings,
    now: datetime,
    *,
    relax: bool,
) -> AccountChange | None:
    bucket = account.bucket
    effect = decision.account
    flood_waits = peer_floods = 0
    if effect is AccountEffect.RELAX and relax:
        before = bucket.multiplier
        bucket.relax(settings.pace_multiplier_step)
        if bucket.multiplier == before and account.status == "active":
            return None
    elif effect is AccountEffect.COOL_DOWN:
        # as long as the accounts provider rests it (the platform adds its margin to the wait)
        bucket.cool_down(now + timedelta(seconds=seconds + settings.flood_wait_margin_seconds))
        bucket.back_off(settings.pace_multiplier_max)
        flood_waits = 1
        floodwait_events.labels(platform=platform).inc()
        cooldowns.labels(reason="flood_wait").inc()
    elif effect is AccountEffect.SPAM_FLAG:
        bucket.cool_down(now + timedelta(seconds=settings.peer_flood_cooldown_seconds))
        peer_floods = 1
        cooldowns.labels(reason="peer_flood").inc()
    elif effect is AccountEffect.BLOCK:
        account.blocked, account.driving, account.status = True, False, "blocked"
        accounts_blocked.labels(platform=platform).inc()
        return AccountChange(
            account.id, "blocked", f"account dead: {detail}", bucket.cooldown_until, bucket.multiplier
        )
    elif account.status == "active" or bucket.cooling(now):
        return None
    status = account.status = "cooldown" if bucket.cooling(now) else "active"
    reason = None
    if effect is AccountEffect.COOL_DOWN:
        reason = f"FloodWait {seconds:g} s"
    elif effect is AccountEffect.SPAM_FLAG:
        reason = f"spam flag (PeerFlood): resting {settings.peer_flood_cooldown_seconds // 3600} h"
    return AccountChange(
        account.id, status, reason, bucket.cooldown_until, bucket.multiplier, flood_waits, peer_floods
    )


def _task_account(
    decision: Decision,
    account: LeasedAccount,
    task: RunningTask,
    kind: str,
    detail: str,
    claim: Claim | None,
    now: datetime,
    registry: Registry,
) -> TaskAccountChange:
    bucket = account.bucket
    stats = {kind: 1} if claim is not None else {}
    used = now if claim is not None else None
    if decision.account is AccountEffect.BLOCK:
        return TaskAccountChange("blocked", f"account dead: {detail}", bucket.cooldown_until, stats, used)
    if decision.task is TaskEffect.LEAVE:
        registry.forbid(account.id, task.id)
        what = f"invite into {task.group_id}" if task.is_invite else "write to these people"
        return TaskAccountChange("excluded", f"no right to {what}: {detail}", None, stats, used)
    if bucket.cooling(now):
        return TaskAccountChange("cooldown", f"{kind}: {detail}", bucket.cooldown_until, stats, used)
    return TaskAccountChange("active", None, None, stats, used)


def _count_usage(account: LeasedAccount, task: RunningTask, kind: str, claim: Claim | None) -> None:
    if claim is None or kind != OutcomeKind.SUCCESS.value:
        return
    if task.is_invite:
        account.usage.invites_sent += 1
        if task.group_id and task.group_id not in account.usage.channels_used:
            account.usage.channels_used.append(task.group_id)
    else:
        account.usage.messages_sent += 1
