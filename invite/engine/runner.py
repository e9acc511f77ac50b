"""One coroutine per leased account: wait for a token, claim, act, record — until let go."""

from __future__ import annotations

from invite.engine.account import LeasedAccount
from invite.engine.actions import act, check_right
from invite.engine.clock import wait_event
from invite.engine.context import EngineContext
from invite.engine.outcomes import settle
from invite.engine.priorities import choose
from invite.platforms.base import OutcomeKind


async def run_account(ctx: EngineContext, account: LeasedAccount) -> None:
    while account.driving:
        changed = ctx.registry.changed  # fires when tasks, rights or idle marks change
        now = ctx.clock.now()
        choice = choose(account, ctx.registry, ctx.settings, now)
        if choice is None or choice.when > now:  # nothing to serve, or not yet: the bucket says when
            wait = (
                ctx.settings.poll_interval_seconds if choice is None else (choice.when - now).total_seconds()
            )
            await wait_event(ctx.clock, changed, wait)
            continue
        task = choice.task
        if task.is_invite and task.id not in account.rights:  # once per lease: may it invite there?
            assert task.group_id is not None
            verdict = await check_right(account.strategy, task.group_id)
            if verdict.kind is OutcomeKind.SUCCESS:
                account.rights.add(task.id)
            else:
                ctx.recorder.add(
                    settle(ctx.settings, ctx.registry, ctx.clock.now(), account, task, verdict, None)
                )
            continue
        claim = await ctx.claimer.claim(task, account, choice.limits)  # in flight + quota, committed
        if claim is None:
            continue
        account.bucket.reserve(claim.at)
        account.turn += 1
        # the pause holds between the sends too, whatever the claim's latency (asked again after
        # each sleep: an event loop's timer may fire a little early, uvloop's by up to a millisecond)
        while (hold := account.bucket.send_wait(ctx.clock.now(), choice.limits)) > 0:
            await ctx.clock.sleep(hold)
        outcome = await act(account.strategy, task, claim)
        answered = ctx.clock.now()
        account.bucket.answered(answered)
        ctx.recorder.add(settle(ctx.settings, ctx.registry, answered, account, task, outcome, claim))
