"""Delivery reconciliation: messages a gone worker left in doubt, settled by asking the platform.

A worker that dies between its claim and its record leaves a message (a message task's, or an
invite task's one-use link, links.py) whose fate the database cannot know; the recovery (``recover`` in lifecycle.sql) makes it ``uncertain`` and never re-sends
it blindly. The platform knows: the account that sent it sees the message in its own dialog
with the person (``InviteStrategy.was_message_sent``). So before an account's new holder claims
anything with it, it asks about each such message of that account (``reconcile_take`` holds
them in flight meanwhile, ``reconcile_settle`` writes the answers):

* sent → ``succeeded``, outcome ``delivered_confirmed``;
* not sent → back in the queue, its attempt and quota reservation given back (on a task that
  finished meanwhile: ``failed``, or closed with a cancelled one);
* cannot tell → the message is sent again under its own ``random_id`` (``message_random_id``:
  the same for every attempt at it) if the attempt began within ``RANDOM_ID_WINDOW_SECONDS``
  and its task still runs here: the platform answers a random_id it already delivered with
  ``RANDOM_ID_DUPLICATE`` and sends nothing (a success: it went out before), else the message
  goes out now, once. Its answer is settled like any action's (the decision table, the
  recorder), so a FloodWait rests the account and a refusal about the person skips them;
* otherwise (the window past, the task stopped) → stays ``uncertain``, outcome
  ``delivery_unknown``, and is not asked again.

Whatever a previous holder still has in flight on the account under a live lease is waited out
first: that holder may still be acting (a hung worker), so its send must have landed before the
question is asked, and before this holder's first action (the pause holds across the hand-over).
The runner, for its part, never starts an action on a claim whose lease is half gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

import structlog

from invite.engine.account import LeasedAccount
from invite.engine.actions import act
from invite.engine.claims import Claim
from invite.engine.context import EngineContext
from invite.engine.decisions import RECONCILED_JSON, Verdict
from invite.engine.links import offer
from invite.engine.outcomes import settle
from invite.engine.recorder import backoff, task_event
from invite.engine.repository import DATABASE_AWAY, Answer, InDoubt
from invite.engine.statuses import LinkState, TargetStatus
from invite.kernel.clock import sleep_until
from invite.observability.metrics import targets_processed
from invite.platforms.base import Target

log = structlog.get_logger(__name__)
T = TypeVar("T")


async def reconcile(ctx: EngineContext, account: LeasedAccount) -> None:
    """Settle the account's messages left in doubt; returns when the account may claim (or is let go)."""
    waited = False
    while account.driving:
        now = ctx.clock.now()
        taken = await _until_answered(
            ctx,
            account,
            "reconcile_take",
            partial(
                ctx.repo.reconcile_take,
                now=now,
                account_id=account.id,
                replica=ctx.settings.replica_id,
                lease_seconds=ctx.settings.target_lease_seconds,
                claim_lease_seconds=ctx.settings.target_lease_seconds,
            ),
        )
        if taken is None:
            return
        if taken.messages:
            await _settle(ctx, account, taken.messages)
        wait_until = taken.wait_until
        if wait_until is None:
            break
        log.info("waiting out a previous holder's lease", account_id=account.id, until=wait_until.isoformat())
        while account.driving and ctx.clock.now() < wait_until:
            await ctx.clock.wait(ctx.registry.changed, (wait_until - ctx.clock.now()).total_seconds())
        waited = True
    if waited:  # the previous holder's last action may have come as late as its lease's end
        account.bucket.acted_by(ctx.clock.now())


async def _settle(ctx: EngineContext, account: LeasedAccount, taken: Sequence[InDoubt]) -> None:
    answers = []
    # what is sent again goes before half the hold reconcile_take put on the rows has passed
    deadline = ctx.clock.now() + timedelta(seconds=ctx.settings.target_lease_seconds / 2)
    for row in taken:
        since = row.since
        sent = None if since is None else await _ask(account, row, since)
        if sent is None and since is not None and await _send_again(ctx, account, row, since, deadline):
            continue
        verdict = Verdict.UNKNOWN if sent is None else Verdict.SENT if sent else Verdict.NOT_SENT
        answers.append(Answer(row.id, row.attempts, verdict, since))
    if not answers:
        return
    now = ctx.clock.now()
    settled = await _until_answered(
        ctx,
        account,
        "reconcile_settle",
        partial(
            ctx.repo.reconcile_settle,
            replica=ctx.settings.replica_id,
            answers=answers,
            account_id=account.id,
            now=now,
            reconciled=RECONCILED_JSON,
        ),
    )
    if settled is None:  # let go meanwhile: they stay in flight, and the recovery takes them back
        return
    outcomes: dict[str, int] = {}
    for one in settled:
        outcomes[one.outcome] = outcomes.get(one.outcome, 0) + 1
        if one.status == TargetStatus.PENDING:
            ctx.registry.note_work(one.task_id, now)
        else:
            targets_processed.labels(platform=account.platform, result=one.outcome).inc()
        if one.counted:
            account.usage.messages_sent += 1
    tasks = list(dict.fromkeys(one.task_id for one in settled))
    if tasks:
        events = [task_event(task_id, "progress") for task_id in tasks]
        await _until_answered(ctx, account, "notify", partial(ctx.repo.notify, events=events))
    log.warning("reconciled messages left in doubt", account_id=account.id, outcomes=outcomes)


async def _ask(account: LeasedAccount, row: InDoubt, since: datetime) -> bool | None:
    target = Target.from_key(row.identifier_key, row.user_data or {})
    try:
        return await account.strategy.was_message_sent(target, since)
    except Exception as exc:  # a driver that breaks its promise not to raise: it cannot tell
        log.warning("delivery check failed", account_id=account.id, error=repr(exc))
        return None


async def _send_again(
    ctx: EngineContext, account: LeasedAccount, row: InDoubt, since: datetime, deadline: datetime
) -> bool:
    """Send the message in doubt again under its own random_id, if it may be; True when it was
    (its outcome is then settled as any action's: by the decision table, through the recorder,
    which writes it back to this very attempt)."""
    task = ctx.registry.tasks.get(row.task_id)
    now = ctx.clock.now()
    if task is None or (now - since).total_seconds() > ctx.settings.random_id_window_seconds:
        return False
    limits = account.limits_for(task, ctx.settings, now)
    if limits is None:
        return False
    # part of the attempt in doubt: under its quota reservation and pacing slot, so only the
    # pause between two sends is kept -- and only while the hold it took leaves half its lease
    pause = timedelta(seconds=limits.min_pause * account.bucket.multiplier)
    ready = now if account.bucket.answered_at is None else max(now, account.bucket.answered_at + pause)
    if ready >= deadline:
        return False
    await sleep_until(ctx.clock, ready)
    now = ctx.clock.now()
    link_due = row.link_state == LinkState.DUE
    claim = Claim(row.id, row.identifier_key, row.user_data or {}, row.attempts, now, link_due)
    # the attempt's reservation is in the account's row already (and so in its bucket): only
    # the time of this send is new
    account.bucket.acted_by(now)
    # a link's message again: the link saved before the first send, so the same text
    outcome = await (offer(ctx, account, task, claim) if link_due else act(account.strategy, task, claim))
    answered = ctx.clock.now()
    account.bucket.answered(answered)
    ctx.recorder.add(settle(ctx.settings, ctx.registry, answered, account, task, outcome, claim))
    log.info("message in doubt sent again under its random_id", account_id=account.id, target_id=str(row.id))
    return True


async def _until_answered(
    ctx: EngineContext, account: LeasedAccount, step: str, call: Callable[[], Awaitable[T]]
) -> T | None:
    """What ``call`` returns, tried again until the database answers; None once the account is let go."""
    pauses = backoff()
    while account.driving:
        try:
            return await call()
        except DATABASE_AWAY as exc:
            log.error("reconciliation step failed", step=step, account_id=account.id, error=repr(exc))
            await ctx.clock.sleep(next(pauses))
    return None
