"""One coroutine per leased account: wait for a token, claim, act, record — until let go.

First the messages a previous holder of the account left in doubt are settled (reconcile.py);
a test invite asked for the account goes before its next campaign action (trials.py).
Nothing is claimed while the recorder cannot commit, and a claimed target is acted on only
while its outcome can still be written and its lease has half its time left — past that, a
reconciler elsewhere may soon ask the platform about it, so it is given back untouched.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from invite.engine.account import LeasedAccount
from invite.engine.actions import act, check_right
from invite.engine.bucket import Limits
from invite.engine.claims import Claim
from invite.engine.context import EngineContext
from invite.engine.links import offer
from invite.engine.outcomes import give_back, settle
from invite.engine.priorities import choose
from invite.engine.reconcile import reconcile
from invite.engine.registry import RunningTask
from invite.platforms.base import OutcomeKind


async def run_account(ctx: EngineContext, account: LeasedAccount) -> None:
    await reconcile(ctx, account)
    while account.driving:
        changed = ctx.registry.changed  # fires when tasks, rights or idle marks change
        if not ctx.recorder.writable:  # the database is away: nothing goes out unrecorded
            await ctx.clock.wait(changed, ctx.settings.poll_interval_seconds)
            continue
        trial = ctx.trials.take(account)  # a test invite asked for this account goes first
        if trial is not None:
            await ctx.trials.serve(ctx, account, trial)
            continue
        now = ctx.clock.now()
        choice = choose(account, ctx.registry, ctx.settings, now)
        if choice is None or choice.when > now:  # nothing to serve, or not yet: the bucket says when
            wait = (
                ctx.settings.poll_interval_seconds if choice is None else (choice.when - now).total_seconds()
            )
            await ctx.clock.wait(changed, wait)
            continue
        task = choice.task
        if task.is_invite and task.id not in account.rights:  # once per lease: may it invite there?
            await right_refused(ctx, account, task)
            continue
        claim = await ctx.claimer.claim(task, account, choice.limits)  # in flight + quota, committed
        if claim is None:
            continue
        account.turn += 1
        await act_on(ctx, account, task, claim, choice.limits)


async def right_refused(ctx: EngineContext, account: LeasedAccount, task: RunningTask) -> str | None:
    """Why the account may not invite into the task's group (a failed check is settled as the
    table says); None when it may, or the task is not an invite. Asked once per lease."""
    if not task.is_invite or task.id in account.rights:
        return None
    assert task.group_id is not None
    verdict = await check_right(account.strategy, task.group_id)
    if verdict.kind is OutcomeKind.SUCCESS:
        account.rights.add(task.id)
        return None
    ctx.recorder.add(settle(ctx.settings, ctx.registry, ctx.clock.now(), account, task, verdict, None))
    return f"{verdict.kind}: {verdict.detail}" if verdict.detail else str(verdict.kind)


async def act_on(
    ctx: EngineContext, account: LeasedAccount, task: RunningTask, claim: Claim, limits: Limits
) -> None:
    """A claimed target (in flight, its quota reserved, committed): acted on and settled, or
    given back untouched when it must not be acted on now. A target whose one-use invite link
    is due gets the message with it (links.py; the claim held it to the link quota)."""
    account.bucket.reserve(claim.at)
    # the pause holds between the sends too, whatever the claim's latency (asked again after
    # each sleep: an event loop's timer may fire a little early, uvloop's by up to a millisecond)
    while (hold := account.bucket.send_wait(ctx.clock.now(), limits)) > 0:
        await ctx.clock.sleep(hold)
    why_not = _why_not(ctx, account, claim, ctx.clock.now())
    if why_not is not None:
        ctx.recorder.add(give_back(account, task, claim, ctx.clock.now(), why_not))
        return
    outcome = await (
        offer(ctx, account, task, claim) if claim.link_due else act(account.strategy, task, claim)
    )
    answered = ctx.clock.now()
    account.bucket.answered(answered)
    ctx.recorder.add(settle(ctx.settings, ctx.registry, answered, account, task, outcome, claim))


def _why_not(ctx: EngineContext, account: LeasedAccount, claim: Claim, now: datetime) -> str | None:
    """Why the claimed target must not be acted on now, if it must not."""
    if not account.held:
        return "not acted on: another replica took the account over"
    if ctx.recorder.failing:
        return "not acted on: its outcome could not have been recorded (the database is away)"
    if now >= claim.at + timedelta(seconds=ctx.settings.target_lease_seconds / 2):
        return "not acted on: its lease was half gone before the action could start"
    return None
