"""``test-invite``: one real action of a task for one of its targets with one account.

The request is checked here (the tenant's task, not finished -- the state machine's
FINISHED, as the claim judges it; the task's target; an account the accounts provider lists
for the tenant and the task may use), the account registered for the engine as activation
registers it, and a trial committed (sql/queries/trials.sql). The engine that drives the
account -- on this replica or another -- serves it before its next action, with every rule of
a campaign action (invite/engine/trials.py). The request waits for the outcome, at most
``TRIAL_WAIT_SECONDS`` (woken by the task's events, looking again each second besides): the
action's answer (200), a refusal naming the rule (a problem: 429 with Retry-After for a quota
-- the daily one, or the contacts window a +phone target needs room in --, a pause or a
cooldown; 409 otherwise, a quota of zero too: it never passes), or, past the bound, 202 with
the trial's state -- it then happens once, or not at all, and ``GET .../test-invite/{trial}``
tells which. A second request for a target whose trial is open joins that one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from invite.engine.repository import ListedAccount, Repository
from invite.engine.statuses import TargetStatus, TrialStatus
from invite.engine.trial_rows import TrialState
from invite.frontend_api.schemas import InviteTrial
from invite.kernel.auth import Tenant
from invite.kernel.clock import Clock
from invite.kernel.events import TaskEvent, TaskEventHub
from invite.kernel.problems import Problem, conflict, invalid, not_found
from invite.kernel.settings import Settings
from invite.platforms.base import AccountsProvider
from invite.tasks.service import TaskService
from invite.tasks.states import FINISHED

LOOK_AGAIN_SECONDS = 1.0  # an event may be missed (the hub reconnecting): the request looks anyway
_UNDER_WAY = frozenset({TrialStatus.WAITING, TrialStatus.TAKEN})  # the request waits on these
_ANSWERED = frozenset({TrialStatus.REFUSED, TrialStatus.EXPIRED})  # nothing was done: a problem
_SHOWN: dict[TrialStatus, Literal["waiting", "taken", "done"]] = {  # as InviteTrial.state spells them
    TrialStatus.WAITING: "waiting",
    TrialStatus.TAKEN: "taken",
    TrialStatus.DONE: "done",
}
# a refusal's rule → its status and what the page shows ({retry_at}: when it would pass)
_REFUSALS: dict[str, tuple[int, str]] = {
    "cooldown": (429, "the account is resting after a FloodWait until {retry_at}"),
    "pause": (429, "the account's minimum pause since its last action has not passed: not before {retry_at}"),
    "quota": (429, "the account's daily quota is used up until {retry_at}"),
    "contacts": (
        429,
        "the account imported as many phone numbers as contacts as it may today"
        " (a +phone target is reached that way): not before {retry_at}",
    ),
    "send_window": (429, "the task's send window is closed until {retry_at}"),
    "task_closed": (
        409,
        "the task is finished (completed, cancelled or failed): nothing more is sent for it",
    ),
    "no_quota": (409, "the account may not act for this task at all: a limit of it is zero"),
    "target_gone": (404, "target not found"),
    "in_flight": (409, "the person is being contacted right now"),
    "already_done": (409, "the person was contacted in this task already (nobody is contacted twice)"),
    "suppressed": (409, "the person is on your suppression list"),
    "recently_contacted": (409, "another of your tasks contacted the person recently (the recontact cap)"),
    "account_unknown": (404, "account not found"),
    "account_blocked": (409, "the account is blocked (banned, deactivated or logged out)"),
    "account_elsewhere": (409, "the account was taken over by another replica meanwhile; try again"),
    "not_in_task": (409, "the account no longer serves this task (it left it or was excluded)"),
    "no_right": (409, "the account may not invite into the task's group"),
    "task_unusable": (409, "the task's settings cannot be used"),
    "expired": (503, "no engine took the account in time: nothing was done; try again"),
}


@dataclass(frozen=True, slots=True)
class Answer:
    """What the request answers: the trial (200, or 202 while under way), or a refusal."""

    trial: InviteTrial | None
    problem: Problem | None = None
    retry_at: datetime | None = None


class TestInvites:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        clock: Clock,
        tenant: Tenant,
        provider: AccountsProvider,
        hub: TaskEventHub,
    ) -> None:
        self._repo = Repository.open(pool, clock, settings.sql_dir)
        self._settings = settings
        self._clock = clock
        self._user_id = tenant.user_id
        self._provider = provider
        self._hub = hub
        self._tasks = TaskService(pool, settings, clock, tenant)

    async def run(self, task_id: uuid.UUID, target: str | None, account_id: str | None) -> Answer:
        task = await self._tasks.get(task_id)
        target_id = await self._target(task_id, target)
        if task.status in FINISHED:  # as the claim judges it (repository.claim_trial)
            raise conflict(f"the task is {task.status}: nothing more is sent for it")
        account = await self._account(account_id, task.settings.account_ids, task.platform)
        started = self._clock.now()
        with self._hub.subscribe(str(task_id)) as events:  # before the request: nothing falls between
            trial_id = await self._ask(task_id, target_id, account)
            deadline = started + timedelta(seconds=self._settings.trial_wait_seconds)
            while True:
                state = await self._state(trial_id)
                if state.state not in _UNDER_WAY or self._clock.now() >= deadline:
                    return answer(state)
                wait = min(LOOK_AGAIN_SECONDS, (deadline - self._clock.now()).total_seconds())
                await self._clock.wait(events.wakeup, max(wait, 0.0))
                events.drain()

    async def look(self, task_id: uuid.UUID, trial_id: uuid.UUID) -> Answer:
        state = await self._state(trial_id)
        if state.task_id != task_id:
            raise not_found("test invite")
        return answer(state)

    async def _target(self, task_id: uuid.UUID, target: str | None) -> uuid.UUID:
        if not target:
            raise invalid("target_id", "required: the id of one of the task's targets")
        try:
            target_id = uuid.UUID(target)
        except ValueError:
            raise invalid("target_id", "not a target's id") from None
        owner = await self._repo.trial_target_task(user_id=self._user_id, target_id=target_id)
        if owner is None:
            raise not_found("target")
        if owner != task_id:
            raise invalid("target_id", "a target of another of your tasks, not of this one")
        return target_id

    async def _account(self, account_id: str | None, allowed: list[str] | None, platform: str) -> str:
        """The account to act with (the task's first usable one when none is named), registered
        for the engine as activation registers a task's accounts."""
        listed = [a for a in await self._provider.list_accounts(self._user_id) if a.user_id == self._user_id]
        usable = [a for a in listed if allowed is None or a.id in allowed]
        if account_id is None:
            if not usable:
                raise conflict("none of the accounts the task may use is connected")
            chosen = usable[0]
        else:
            found = [a for a in listed if a.id == account_id]
            if not found:
                raise not_found("account")
            if found[0] not in usable:
                raise invalid("account_id", "not one of the accounts the task may use (allowed_account_ids)")
            chosen = found[0]
        await self._repo.upsert_accounts(
            user_id=self._user_id,
            platform=platform,
            now=self._clock.now(),
            accounts=[ListedAccount(chosen.id, chosen.label, chosen.daily_limit)],
        )
        return chosen.id

    async def _ask(self, task_id: uuid.UUID, target_id: uuid.UUID, account_id: str) -> uuid.UUID:
        """The trial asked for (or the one open on the target already)."""
        event = TaskEvent(task_id=str(task_id), type="trial").encode()
        for _ in range(2):  # the open one may close between the two statements: ask once more
            now = self._clock.now()
            await self._repo.settle_stale_trials(target_id=target_id, now=now)
            made = await self._repo.request_trial(
                user_id=self._user_id,
                task_id=task_id,
                target_id=target_id,
                account_id=account_id,
                now=now,
                wait_seconds=self._settings.trial_wait_seconds,
                event=event,
            )
            trial_id = made or await self._repo.open_trial(target_id=target_id)
            if trial_id is not None:
                return trial_id
        raise conflict("another test invite of this person was settling; try again")

    async def _state(self, trial_id: uuid.UUID) -> TrialState:
        state = await self._repo.trial_state(trial_id=trial_id, user_id=self._user_id, now=self._clock.now())
        if state is None:
            raise not_found("test invite")
        return state


def answer(state: TrialState) -> Answer:
    if state.state in _ANSWERED:
        rule = state.outcome or TrialStatus.EXPIRED
        status, text = _REFUSALS.get(rule, (409, rule))
        detail = text.format(retry_at=state.retry_at.isoformat() if state.retry_at else "later")
        if state.detail and "{retry_at}" not in text:
            detail = f"{detail}: {state.detail}"
        extra = {"trial_id": str(state.id), "rule": rule}
        return Answer(None, Problem(status, "Test invite refused", detail, extra=extra), state.retry_at)
    done = state.state == TrialStatus.DONE
    outcome = state.logged if done else None
    return Answer(
        InviteTrial(
            message=_message(state, outcome),
            success=done and state.target_status == TargetStatus.SUCCEEDED,
            trial_id=str(state.id),
            task_id=str(state.task_id),
            target_id=str(state.target_id),
            account_id=state.account_id,
            state=_SHOWN[state.state],
            status=state.target_status,
            outcome=outcome,
            result_status=outcome.upper() if outcome else None,
            detail=str((state.logged_details or {}).get("detail") or state.target_error or ""),
        )
    )


def _message(state: TrialState, outcome: str | None) -> str:
    if state.state != TrialStatus.DONE:
        return "test invite asked; the account's engine has not answered yet (it happens once, or not at all)"
    if outcome is None:  # given back untouched, or left in doubt by an engine that stopped
        return f"not done: {state.target_error or state.target_status}"
    return f"test invite: {outcome.replace('_', ' ')}"
