"""Test invites: one real action for one target with one account, served by the engine that
drives the account, before its next campaign action.

The request (the Mailing page's test-invite) is a row in invite_trials, committed first and
announced on invite_task_events. On each heartbeat (and at once on that event) the lease
keeper asks which waiting trials concern an account this replica holds, or one nobody holds
(it leases those as it leases a running task's, sql/queries/trials.sql); the account's
coroutine takes its trial before anything else and goes the campaign's way: the right to
invite checked once, the task's limits for the account (``RunningTask.limits``: ours, the
task's, the platform's per account and per channel), its bucket (cooldown, quota, send window
and the minimum pause: waited for when it passes before the trial's time is over, else
refused), then the trial's claim -- one statement that re-checks every rule, puts the target
in flight and reserves the quota (for a +phone target, an import in the account's contacts
window too: the campaign claim's cap, ``DAILY_CONTACTS_QUOTA`` or the provider's lower one,
which the bucket does not know), committed -- and from there ``runner.act_on``: the adapter,
the decision table, the group commit, the execution log. The task need not run: a draft is
tried before it starts. The pacing that spreads a campaign over the day does not hold back
one test (the quota and the pause do).

What the rules refused is written into the trial (``refuse`` here, or the claim itself); what
the action did is the target's row and its log entry, read by whoever asked.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec
import structlog

from invite.engine.account import LeasedAccount
from invite.engine.bucket import Limits
from invite.engine.claims import Claim
from invite.engine.registry import RunningTask
from invite.engine.repository import DATABASE_AWAY, Repository, TaskRow
from invite.engine.runner import act_on, right_refused
from invite.engine.trial_rows import WaitingTrial
from invite.engine.windows import DAY, is_open, next_open
from invite.kernel.events import TaskEvent

if TYPE_CHECKING:
    from invite.engine.context import EngineContext

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Trial:
    id: uuid.UUID
    task_id: uuid.UUID
    account_id: str
    expires_at: datetime  # taken no later than this
    channel_invites: int
    task: RunningTask | None  # None: the task's row cannot drive the engine (``unusable`` says why)
    unusable: str | None = None

    @classmethod
    def from_row(cls, row: WaitingTrial) -> Trial:
        task_row = TaskRow(*msgspec.structs.astuple(row)[4:])
        try:
            task, unusable = RunningTask.from_row(task_row), None
        except (msgspec.ValidationError, ValueError, TypeError) as exc:
            task, unusable = None, f"the task's settings cannot be used: {exc}"
        return cls(row.trial_id, row.id, row.account_id, row.expires_at, row.channel_invites, task, unusable)

    def event(self) -> str:
        """What its requester hears when the trial is decided."""
        return TaskEvent(task_id=str(self.task_id), type="trial").encode()


class Trials:
    """The waiting trials of the accounts this replica holds or may lease (refreshed by the lease
    keeper), handed to each account's coroutine, oldest first."""

    def __init__(self) -> None:
        self._waiting: dict[str, Trial] = {}  # account id → its oldest waiting trial
        self._serving: set[str] = set()

    async def refresh(self, repo: Repository, *, replica: str, now: datetime, driver: str) -> bool:
        """Reload the waiting trials; True when any is waiting."""
        waiting: dict[str, Trial] = {}
        for row in await repo.waiting_trials(replica=replica, now=now, driver=driver):
            if row.account_id not in self._serving:  # its trial in hand still waits in the table
                waiting.setdefault(row.account_id, Trial.from_row(row))
        self._waiting = waiting
        return bool(waiting)

    def wanted(self, account_id: str) -> bool:
        """A trial waits for the account, or it is serving one: keep it."""
        return account_id in self._waiting or account_id in self._serving

    def tasks_for(self, account_id: str) -> list[RunningTask]:
        """The task of the account's waiting trial (the accounts provider's lease follows it)."""
        trial = self._waiting.get(account_id)
        return [trial.task] if trial is not None and trial.task is not None else []

    def take(self, account: LeasedAccount) -> Trial | None:
        """The account's waiting trial, to serve now; it waits on while the account's lease is for
        another purpose than the trial's task (the lease keeper leases it anew)."""
        trial = self._waiting.get(account.id)
        if trial is None or (trial.task is not None and not account.leased_for(trial.task)):
            return None
        del self._waiting[account.id]
        self._serving.add(account.id)
        return trial

    async def serve(self, ctx: EngineContext, account: LeasedAccount, trial: Trial) -> None:
        """The trial's one action, or its refusal written down. A database error ends the trial's
        turn, not the account's coroutine (the campaign's claimer takes it so too): the trial
        still waits in its table for the next refresh, or the claim it committed is its target's
        lease's to recover, as any claimed target's."""
        try:
            await _serve(ctx, account, trial)
        except DATABASE_AWAY as exc:
            log.error("trial not served", trial_id=str(trial.id), account_id=account.id, error=repr(exc))
        finally:
            self._serving.discard(account.id)


async def _serve(ctx: EngineContext, account: LeasedAccount, trial: Trial) -> None:
    task = trial.task
    if task is None:
        assert trial.unusable is not None
        log.warning("trial refused: unusable task", trial_id=str(trial.id), reason=trial.unusable)
        return await _refuse(ctx, trial, "task_unusable", trial.unusable, None)
    refused = await right_refused(ctx, account, task)
    if refused is not None:
        return await _refuse(ctx, trial, "no_right", refused, None)
    limits = account.computed_limits(
        task, ctx.settings, ctx.clock.now(), channel_invites=trial.channel_invites
    )
    if limits is None:  # it never passes: no retry_at, and not the daily "quota" that does
        return await _refuse(ctx, trial, "no_quota", _at_zero(ctx, account, task, trial), None)
    limits = dataclasses.replace(limits, pacing=0.0)  # one test: the pause holds, not the spreading
    now = ctx.clock.now()
    due = account.bucket.next_allowed(now, limits)
    if due > trial.expires_at:
        rule, when = _first_rule(account, limits, now, due)
        return await _refuse(ctx, trial, rule, f"not before {when.isoformat()}", when)
    if due > now:
        await ctx.clock.sleep((due - now).total_seconds())
    at = ctx.clock.now()
    claimed = await ctx.repo.claim_trial(
        trial_id=trial.id,
        now=at,
        replica=ctx.settings.replica_id,
        cap=limits.cap,
        pause=limits.min_pause,
        lease_seconds=ctx.settings.target_lease_seconds,
        recontact_days=task.recontact_days(ctx.settings.recontact_days),
        contacts_cap=ctx.settings.daily_contacts_quota,
        event=trial.event(),
    )
    if claimed is None or claimed.refused is not None:  # the claim wrote down why
        log.info("trial refused", trial_id=str(trial.id), rule=claimed.refused if claimed else None)
        return None
    assert claimed.id is not None
    assert claimed.identifier_key is not None
    assert claimed.attempts is not None
    claim = Claim(claimed.id, claimed.identifier_key, claimed.user_data or {}, claimed.attempts, at)
    await act_on(ctx, account, task, claim, limits)
    return None


def _at_zero(ctx: EngineContext, account: LeasedAccount, task: RunningTask, trial: Trial) -> str:
    """Which of the limits ``RunningTask.limits`` takes the lowest of is zero for the account."""
    settings, rate = ctx.settings, account.rate
    link = task.has_link
    limits: dict[str, int | None] = {
        "our daily quota": settings.daily_quota_with_link if link else settings.daily_quota,
        "the platform's daily quota": rate.daily_quota_with_link if link else rate.daily_quota,
        "the task's daily limit per account": task.settings.daily_limit_per_account,
        "the provider's daily limit of the account": account.daily_limit,
    }
    if task.is_invite and account.channel_limit is not None:
        limits["the provider's daily limit per channel"] = account.channel_limit
        limits["the lifetime cap per channel, less the invites made into it"] = (
            settings.channel_lifetime_invite_limit - trial.channel_invites
        )
    return ", ".join(f"{name}: {n}" for name, n in limits.items() if n is not None and n <= 0)


def _first_rule(account: LeasedAccount, limits: Limits, now: datetime, due: datetime) -> tuple[str, datetime]:
    """Which rule holds the account back past the trial's time, and until when."""
    bucket = account.bucket
    if bucket.cooldown_until is not None and bucket.cooldown_until > now:
        return "cooldown", bucket.cooldown_until
    if bucket.used(now) >= limits.cap and bucket.window_start is not None:
        return "quota", bucket.window_start + DAY
    if limits.send_window is not None and not is_open(now, limits.send_window):
        return "send_window", next_open(now, limits.send_window)
    return "pause", due


async def _refuse(
    ctx: EngineContext,
    trial: Trial,
    rule: str,
    detail: str,
    retry_at: datetime | None,
) -> None:
    await ctx.repo.refuse_trial(
        trial_id=trial.id,
        refused=rule,
        detail=detail,
        retry_at=retry_at,
        now=ctx.clock.now(),
        event=trial.event(),
    )
