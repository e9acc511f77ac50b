"""Which task an account serves next.

HIGH before NORMAL before LOW; among tasks of one priority, round-robin (each account turns
on its own). A task that is out of reach now — its send window closed, the account's quota
for it spent, or nothing to claim — is passed over, so a lower priority gets the account
meanwhile; a higher-priority task that is reachable again takes the account back at its
next action (preemption). Waiting for the pause or pacing gap does not pass a task over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from invite.engine.account import LeasedAccount
from invite.engine.bucket import Limits
from invite.engine.registry import Registry, RunningTask
from invite.kernel.settings import Settings


@dataclass(frozen=True, slots=True)
class Choice:
    task: RunningTask
    limits: Limits
    when: datetime  # the account may act for the task from this moment


def choose(account: LeasedAccount, registry: Registry, settings: Settings, now: datetime) -> Choice | None:
    """The task to serve next and when; None when the account has nothing it may serve."""
    bucket = account.bucket
    reachable: list[Choice] = []
    later: list[Choice] = []
    for task in registry.tasks_for(account.id):
        limits = account.limits_for(task, settings, now)
        if limits is None:
            continue
        when = bucket.next_allowed(now, limits)
        idle = registry.idle_until(task.id)
        if idle is not None and idle > now:
            later.append(Choice(task, limits, max(when, idle)))
        elif bucket.shut(now, limits):
            later.append(Choice(task, limits, when))
        else:
            reachable.append(Choice(task, limits, when))
    if len(reachable) == 1:
        return reachable[0]
    if reachable:
        best = min(c.task.priority for c in reachable)
        peers = sorted((c for c in reachable if c.task.priority == best), key=lambda c: c.task.id)
        return peers[account.turn % len(peers)]
    return min(later, key=lambda c: c.when, default=None)
