"""What every outcome does — to the target, the account, the task and the circuit breaker.

The one table of the engine's judgement. The runner applies it and nothing else decides.

* target: ``DONE`` ends it with ``status`` (the outcome kind is kept beside it);
  ``RETRY`` brings it back after an exponential backoff and counts the attempt — after the
  task's ``max_attempts`` it ends ``failed`` with the reason; ``REQUEUE`` puts it back at once
  and does not count the attempt: the action never happened (the account was refused), so
  another account takes the person;
* account: ``RELAX`` takes a step off the AIMD multiplier; ``COOL_DOWN`` rests it for the
  server's seconds and doubles the multiplier; ``SPAM_FLAG`` rests it for the long peer-flood
  cooldown; ``BLOCK`` retires it for good (until the Integration Service says otherwise);
* task: ``LEAVE`` takes the account off this task; ``PAUSE`` pauses the task with a reason;
* breaker: the outcome counts as an error for the task's circuit breaker;
* event: what is reported to the accounts provider, so the rest of the platform knows;
* opt_out: the person said no to being contacted (they blocked the account): they go onto
  the tenant's suppression list, so no other task or account contacts them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from invite.platforms.base import AccountEvent, Outcome, OutcomeKind


class TargetFate(StrEnum):
    DONE = "done"
    RETRY = "retry"
    REQUEUE = "requeue"


class AccountEffect(StrEnum):
    NONE = "none"
    RELAX = "relax"
    COOL_DOWN = "cool_down"
    SPAM_FLAG = "spam_flag"
    BLOCK = "block"


class TaskEffect(StrEnum):
    NONE = "none"
    LEAVE = "leave"
    PAUSE = "pause"


@dataclass(frozen=True)
class Decision:
    fate: TargetFate
    status: str | None = None  # the target's final status when fate is DONE
    account: AccountEffect = AccountEffect.NONE
    task: TaskEffect = TaskEffect.NONE
    breaker: bool = False
    event: AccountEvent | None = None
    opt_out: bool = False


K, T, A, E = OutcomeKind, TargetFate, AccountEffect, TaskEffect
DECISIONS: dict[OutcomeKind, Decision] = {
    K.SUCCESS: Decision(T.DONE, "succeeded", A.RELAX),
    K.ALREADY_MEMBER: Decision(T.DONE, "succeeded", A.RELAX),
    K.PRIVACY_RESTRICTED: Decision(T.DONE, "skipped"),
    K.NOT_FOUND: Decision(T.DONE, "skipped"),
    K.TARGET_UNAVAILABLE: Decision(T.DONE, "skipped"),
    K.BLOCKED: Decision(T.DONE, "skipped", opt_out=True),
    K.FLOOD_WAIT: Decision(T.REQUEUE, account=A.COOL_DOWN, breaker=True, event=AccountEvent.FLOOD_WAIT),
    K.PEER_FLOOD: Decision(T.REQUEUE, account=A.SPAM_FLAG, breaker=True, event=AccountEvent.PEER_FLOOD),
    K.ACCOUNT_DEAD: Decision(T.REQUEUE, account=A.BLOCK, breaker=True, event=AccountEvent.USER_DEACTIVATED),
    K.NO_ADMIN_RIGHT: Decision(T.REQUEUE, task=E.LEAVE),
    K.CHAT_UNAVAILABLE: Decision(T.REQUEUE, task=E.PAUSE),
    K.TRANSIENT: Decision(T.RETRY, breaker=True),
    # A message whose answer never came (or whose send raised) may or may not have gone out: it
    # is never re-sent automatically (the same rule as a message whose worker died mid-send).
    K.DELIVERY_UNKNOWN: Decision(T.DONE, "uncertain", breaker=True),
}
del K, T, A, E

UNKNOWN_DELIVERY = DECISIONS[OutcomeKind.DELIVERY_UNKNOWN]  # a driver that raised instead of answering

BREAKER_ERRORS = frozenset(kind.value for kind, decision in DECISIONS.items() if decision.breaker)


def decide(kind: OutcomeKind) -> Decision:
    return DECISIONS[kind]


def dead_account_event(outcome: Outcome) -> AccountEvent:
    """The platform's name for why an account died: the driver's own (from its error table),
    else the decision table's."""
    return outcome.event or AccountEvent.USER_DEACTIVATED
