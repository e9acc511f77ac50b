"""What every outcome does — to the target, the account, the task and the circuit breaker.

The one table of the engine's judgement, keyed by a typed outcome: the platform's answers
(``OutcomeKind``) and the engine's own verdicts where no platform answered (``EngineOutcome``:
a claim given back untouched, a driver that raised, a worker gone mid-lease, a delivery
reconciled, an account dead at start-up, a reservation the database refused). ``settle``
(outcomes.py) applies a row to one answer, and ``give_back``, ``retire`` and ``refused`` the
engine's own rows; the SQL statements that settle many targets at once (``recover``,
``reconcile_settle``, ``release_lost_claim``, the claim's closing of the barred) receive the rows' values as parameters (``RECOVERED_JSON`` joined on the
task type, ``RECONCILED_JSON`` on the verdict and the task's status) instead of deciding them
in ``CASE``s, and those that write a status an outcome decided are given it too (the group
commit's ``KEPT_TASK_ACCOUNT_STATUSES``, a dead account's statuses from ``retire``). Nothing
else decides.

The cells:

* fate: ``DONE`` ends the target with ``status``; ``RETRY`` brings it back after an
  exponential backoff and counts the attempt — after the task's ``max_attempts`` it ends with
  ``status`` (failed) and the reason; ``REQUEUE`` puts it back at once (``status`` pending);
  ``NONE``: no target is concerned;
* gives_back: the attempt is not counted — nothing was done to the person (the account was
  refused, or the message never went out), so another try (or account) takes them;
* account: ``RELAX`` takes a step off the AIMD multiplier; ``COOL_DOWN`` rests it for the
  server's seconds and doubles the multiplier; ``SPAM_FLAG`` rests it for the long peer-flood
  cooldown; ``BLOCK`` retires it for good (until the Integration Service says otherwise);
  in memory only, after a refused reservation: ``REST`` a moment, ``STOP`` (the database has it
  blocked already), ``LET_GO`` (another replica holds its lease);
* task: ``LEAVE`` takes the account off this task; ``PAUSE`` pauses the task with a reason;
* task_account: the status the account's row in the task gets and keeps (only a person undoes
  it); None: as the account's bucket says (cooldown while it rests, else active);
* breaker: the outcome counts as an error for the task's circuit breaker;
* opt_out: the person said no to being contacted (they blocked the account): they go onto
  the tenant's suppression list, so no other task or account contacts them again;
* retryable: a customer's retry-failed may put a target that failed with this outcome back in
  the queue (another account or a later moment can get past it);
* error: the answer's detail is the target's error message (not for a success);
* counted: a success counted in the account's usage (what the accounts provider hears);
* recorded: the target's outcome, error and time are written (else kept as they were);
* refund: the attempt's quota reservation is given back to the account;
* ahead: back at the head of the queue, before the people not reached yet (fate ``REQUEUE``);
* link: the target's link_state afterwards (migration 0019): ``due`` (a one-use invite link is
  to be sent), ``sent``, ``joined``, ``expired``; None: as it was;
* outcome / logged: the target's outcome and the execution log's status (the key's own name
  unless the row says otherwise); reason: the fixed error message of a row the SQL writes.

What the accounts provider is told is not here: it is the adapter's word
(``Outcome.event``, from the driver's own error table), and an answer without one is not
reported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import msgspec

from invite.engine.statuses import AccountStatus, LinkState, TargetStatus, TaskAccountStatus
from invite.platforms.base import AccountEvent, OutcomeKind
from invite.tasks.states import TaskStatus


class EngineOutcome(StrEnum):
    """The engine's own verdicts, where no platform answer decides. The values are unlike any
    ``OutcomeKind``'s: both key one table."""

    NOT_ACTED = "not_acted"  # claimed, then given back untouched (runner)
    CLAIM_LOST = "claim_lost"  # the claim's answer never came back: what it claimed was not handed out
    DRIVER_ERROR = "driver_error"  # the driver raised sending a message: it may have gone out
    LEASE_EXPIRED = "lease_expired"  # recover: a message whose worker is gone
    INVITE_LEASE_EXPIRED = "invite_lease_expired"  # recover: an invite whose worker is gone
    DELIVERED_CONFIRMED = "delivered_confirmed"  # reconcile: the platform shows it sent
    NOT_SENT = "not_sent"  # reconcile: it never went out, its task still open
    NOT_SENT_COMPLETED = "not_sent_completed"  # ... and its task completed meanwhile
    TASK_CANCELLED = "task_cancelled"  # ... and its task was cancelled meanwhile
    TASK_FAILED = "task_failed"  # ... and its task failed meanwhile
    CANNOT_TELL = "cannot_tell"  # reconcile: the platform could not tell
    DEAD_AT_START = "dead_at_start"  # the account's client found it dead when it started
    RESERVATION_REFUSED = "reservation_refused"  # the claim refused the account's reservation
    REFUSED_BLOCKED = "refused_blocked"  # ... because the account is blocked
    LEASE_LOST = "lease_lost"  # ... because another replica leases the account now
    CONTACTS_FULL = "contacts_full"  # the claim had only +phone targets, and no contact room for it
    LINKS_FULL = "links_full"  # ... only one-use links due, and the account past its link quota
    SUPPRESSED = "suppressed"  # the claim found the person on the tenant's suppression list
    RECENTLY_CONTACTED = "recently_contacted"  # ... or reached by another task within the recontact cap
    # one-use invite links (a task's privacy_fallback; links.py)
    LINK_DUE = "link_due"  # an invite refused for privacy: the person is offered a link next
    LINK_SENT = "link_sent"  # the message with the link went out
    LINK_CONFIRMED = "link_confirmed"  # reconcile: the platform shows the link's message sent
    JOINED_VIA_LINK = "joined_via_link"  # the watcher: the person came in through their link
    LINK_EXPIRED = "link_expired"  # the watcher: the link ran out unused (and was revoked)


Key = OutcomeKind | EngineOutcome


class TargetFate(StrEnum):
    DONE = "done"
    RETRY = "retry"
    REQUEUE = "requeue"
    NONE = "none"


class AccountEffect(StrEnum):
    NONE = "none"
    RELAX = "relax"
    COOL_DOWN = "cool_down"
    SPAM_FLAG = "spam_flag"
    BLOCK = "block"
    REST = "rest"
    STOP = "stop"
    LET_GO = "let_go"


class TaskEffect(StrEnum):
    NONE = "none"
    LEAVE = "leave"
    PAUSE = "pause"


@dataclass(frozen=True, slots=True)
class Decision:
    fate: TargetFate
    status: TargetStatus | None  # where the fate leaves the target; None: no target
    account: AccountEffect = AccountEffect.NONE
    task: TaskEffect = TaskEffect.NONE
    task_account: TaskAccountStatus | None = None
    breaker: bool = False
    opt_out: bool = False
    retryable: bool = False
    error: bool = True
    counted: bool = False
    gives_back: bool = False
    recorded: bool = True
    refund: bool = False
    ahead: bool = False
    link: LinkState | None = None
    outcome: str = ""  # "": the key's name (filled in when the table is built)
    logged: str = ""  # "": the outcome
    reason: str | None = None


def _named(rows: dict[Key, Decision]) -> dict[Key, Decision]:
    named = {}
    for key, row in rows.items():
        outcome = row.outcome or key.value
        named[key] = replace(row, outcome=outcome, logged=row.logged or outcome)
    return named


_STOPPED_UNSENT = (
    "its worker stopped before sending it (the platform shows no such message): back in the queue"
)
K, E, T, A, X, S, TA = (
    OutcomeKind,
    EngineOutcome,
    TargetFate,
    AccountEffect,
    TaskEffect,
    TargetStatus,
    TaskAccountStatus,
)
DECISIONS: dict[Key, Decision] = _named(
    {
        K.SUCCESS: Decision(T.DONE, S.SUCCEEDED, A.RELAX, error=False, counted=True),
        K.ALREADY_MEMBER: Decision(T.DONE, S.SUCCEEDED, A.RELAX, error=False),
        K.PRIVACY_RESTRICTED: Decision(T.DONE, S.SKIPPED),
        K.NOT_FOUND: Decision(T.DONE, S.SKIPPED),
        K.TARGET_UNAVAILABLE: Decision(T.DONE, S.SKIPPED),
        K.BLOCKED: Decision(T.DONE, S.SKIPPED, opt_out=True),
        K.FLOOD_WAIT: Decision(
            T.REQUEUE, S.PENDING, A.COOL_DOWN, breaker=True, retryable=True, gives_back=True
        ),
        K.PEER_FLOOD: Decision(
            T.REQUEUE, S.PENDING, A.SPAM_FLAG, breaker=True, retryable=True, gives_back=True
        ),
        K.ACCOUNT_DEAD: Decision(
            T.REQUEUE,
            S.PENDING,
            A.BLOCK,
            task_account=TA.BLOCKED,
            breaker=True,
            retryable=True,
            gives_back=True,
        ),
        K.NO_ADMIN_RIGHT: Decision(
            T.REQUEUE, S.PENDING, task=X.LEAVE, task_account=TA.EXCLUDED, retryable=True, gives_back=True
        ),
        K.CHAT_UNAVAILABLE: Decision(T.REQUEUE, S.PENDING, task=X.PAUSE, retryable=True, gives_back=True),
        K.TRANSIENT: Decision(T.RETRY, S.FAILED, breaker=True, retryable=True),
        # A message whose answer never came (or whose send raised) may or may not have gone out:
        # it is never re-sent automatically (the same rule as a message whose worker died mid-send).
        K.DELIVERY_UNKNOWN: Decision(T.DONE, S.UNCERTAIN, breaker=True),
        E.DRIVER_ERROR: Decision(T.DONE, S.UNCERTAIN, breaker=True),
        E.NOT_ACTED: Decision(T.REQUEUE, S.PENDING, gives_back=True),
        # release_lost_claim: nobody was handed the target, so nothing was done to the person
        E.CLAIM_LOST: Decision(T.REQUEUE, S.PENDING, gives_back=True, refund=True, recorded=False),
        # recover: a message may have gone out, so it is not re-sent blindly (its account's
        # next holder asks the platform: reconcile); an invite is idempotent: back to the queue
        # as it was, the attempt counted
        E.LEASE_EXPIRED: Decision(
            T.DONE,
            S.UNCERTAIN,
            reason="the worker sending this message stopped before recording whether it was "
            "delivered; it is not re-sent unless the platform shows it never went out",
        ),
        E.INVITE_LEASE_EXPIRED: Decision(T.REQUEUE, S.PENDING, recorded=False),
        # reconcile_settle: a message sent was counted by its claim's reservation already; one
        # never sent is as if never claimed -- unless its task finished meanwhile, which is not
        # reopened behind the customer's back (a new task can reach the person)
        E.DELIVERED_CONFIRMED: Decision(
            T.DONE,
            S.SUCCEEDED,
            error=False,
            counted=True,
            reason="delivered: the platform shows the message sent after its worker stopped",
        ),
        E.NOT_SENT: Decision(T.REQUEUE, S.PENDING, gives_back=True, refund=True, reason=_STOPPED_UNSENT),
        E.NOT_SENT_COMPLETED: Decision(
            T.DONE,
            S.FAILED,
            gives_back=True,
            refund=True,
            outcome="not_sent",
            reason="not sent: its worker stopped before sending it, and the task had completed meanwhile",
        ),
        E.TASK_CANCELLED: Decision(
            T.DONE, S.CANCELLED, gives_back=True, refund=True, logged="not_sent", reason=_STOPPED_UNSENT
        ),
        E.TASK_FAILED: Decision(
            T.DONE, S.CANCELLED, gives_back=True, refund=True, logged="not_sent", reason=_STOPPED_UNSENT
        ),
        E.CANNOT_TELL: Decision(
            T.DONE,
            S.UNCERTAIN,
            outcome="delivery_unknown",
            reason="the worker sending this message stopped before recording whether it was "
            "delivered, and the platform could not tell; it is not re-sent",
        ),
        E.DEAD_AT_START: Decision(T.NONE, None, A.BLOCK, task_account=TA.BLOCKED),
        E.RESERVATION_REFUSED: Decision(T.NONE, None, A.REST),
        E.REFUSED_BLOCKED: Decision(T.NONE, None, A.STOP),
        E.LEASE_LOST: Decision(T.NONE, None, A.LET_GO),
        E.CONTACTS_FULL: Decision(T.NONE, None, A.REST),
        E.LINKS_FULL: Decision(T.NONE, None, A.REST),
        # claim: closed before any platform call; "{days}" is the task's recontact cap
        E.SUPPRESSED: Decision(T.DONE, S.SKIPPED, reason="on the suppression list"),
        E.RECENTLY_CONTACTED: Decision(
            T.DONE, S.SKIPPED, reason="contacted by another of your tasks within the last {days} days"
        ),
        # one-use invite links: the person the invite could not add is back in the queue for a
        # personal message with a link (a message, so the claim's rules and quota hold again),
        # at its head: the accounts with link room send it before inviting anyone new (their
        # link quota is a share of the same 24 h window); the invite's attempt is not counted
        # against the message's
        E.LINK_DUE: Decision(
            T.REQUEUE,
            S.PENDING,
            error=False,
            gives_back=True,
            ahead=True,
            link=LinkState.DUE,
            outcome="privacy_restricted",
            logged="link_offered",
        ),
        E.LINK_SENT: Decision(T.DONE, S.SKIPPED, A.RELAX, error=False, counted=True, link=LinkState.SENT),
        # reconcile_settle: a link's message a gone worker left in doubt, which went out
        E.LINK_CONFIRMED: Decision(
            T.DONE,
            S.SKIPPED,
            error=False,
            counted=True,
            link=LinkState.SENT,
            outcome="link_sent",
            logged="delivered_confirmed",
            reason="delivered: the platform shows the message with the invite link sent after its worker stopped",
        ),
        E.JOINED_VIA_LINK: Decision(T.DONE, S.SUCCEEDED, error=False, link=LinkState.JOINED),
        E.LINK_EXPIRED: Decision(
            T.DONE,
            S.SKIPPED,
            link=LinkState.EXPIRED,
            reason="the one-use invite link ran out unused: revoked",
        ),
    }
)
del K, E, T, A, X, S, TA


# An invite task that offers one-use links (settings.privacy_fallback): what an answer to an
# invite becomes (a refusal for privacy: a link offered; the rest as the answer says), and
# what an answer to the message carrying the link becomes (sent: the link is out; a refusal of
# the message itself ends it as any message's does, never a second offer).
LINK_OFFERED: dict[Key, EngineOutcome] = {OutcomeKind.PRIVACY_RESTRICTED: EngineOutcome.LINK_DUE}
LINK_MESSAGE: dict[Key, EngineOutcome] = {OutcomeKind.SUCCESS: EngineOutcome.LINK_SENT}


def decision_key(kind: Key, *, offers_link: bool, link_due: bool) -> Key:
    """The table's row for an answer: ``link_due`` when it answered the message carrying a
    link, ``offers_link`` when the task offers links to whom an invite could not add."""
    if link_due:
        return LINK_MESSAGE.get(kind, kind)
    if offers_link:
        return LINK_OFFERED.get(kind, kind)
    return kind


class Call(StrEnum):
    """A step of an action that may raise instead of answering."""

    CHECK_RIGHT = "check_invite_right"
    INVITE = "invite_to_group"
    TEMPLATE = "template"  # the message's text, before any call
    MESSAGE = "send_message"
    LINK = "create_invite_link"  # the one-use link, before its message
    LINK_MESSAGE = "send_invite_link"  # the message carrying it
    LINK_JOINS = "invite_link"  # the watcher: who came in through a link, or its revocation


# What a step that raised counts as (a driver breaking its promise not to raise): an invite
# is idempotent, so a retry is safe; a message may have gone out, so it never is.
RAISED: dict[Call, Key] = {
    Call.CHECK_RIGHT: OutcomeKind.TRANSIENT,
    Call.INVITE: OutcomeKind.TRANSIENT,
    Call.TEMPLATE: OutcomeKind.TRANSIENT,
    Call.MESSAGE: EngineOutcome.DRIVER_ERROR,
    Call.LINK: OutcomeKind.TRANSIENT,  # nothing reached the person yet
    Call.LINK_MESSAGE: EngineOutcome.DRIVER_ERROR,
    Call.LINK_JOINS: OutcomeKind.TRANSIENT,  # a read: tried again at the next watch
}


class Raised(msgspec.Struct, frozen=True):
    """The engine's answer for a step that raised (``RAISED``); read by ``settle`` as an Outcome."""

    kind: Key
    detail: str
    seconds: float = 0.0
    event: AccountEvent | None = None  # nothing the platform said, so nothing reported


# recover: what a target whose worker is gone becomes, by its task's type
RECOVERED: dict[str, EngineOutcome] = {
    "send_messages": EngineOutcome.LEASE_EXPIRED,
    "invite_to_group": EngineOutcome.INVITE_LEASE_EXPIRED,
}


class Verdict(StrEnum):
    """What the platform says of a message in doubt (reconciliation)."""

    SENT = "sent"
    NOT_SENT = "not_sent"
    UNKNOWN = "unknown"


_FINISHED = {
    TaskStatus.COMPLETED: EngineOutcome.NOT_SENT_COMPLETED,
    TaskStatus.CANCELLED: EngineOutcome.TASK_CANCELLED,
    TaskStatus.FAILED: EngineOutcome.TASK_FAILED,
}
# reconcile_settle: what the platform's verdict on a message makes of it, by its task's status
# and whether it carried a one-use invite link (an invite task's; sent, it is a link sent)
RECONCILED: dict[tuple[Verdict, TaskStatus, bool], EngineOutcome] = {
    (verdict, task, link): outcome
    for task in TaskStatus
    for link in (False, True)
    for verdict, outcome in (
        (Verdict.SENT, EngineOutcome.LINK_CONFIRMED if link else EngineOutcome.DELIVERED_CONFIRMED),
        (Verdict.NOT_SENT, _FINISHED.get(task, EngineOutcome.NOT_SENT)),
        (Verdict.UNKNOWN, EngineOutcome.CANNOT_TELL),
    )
}


# close_queues: what a target still pending becomes when its task closed without it, by the
# task's status
CLOSED: dict[TaskStatus, EngineOutcome] = {
    task: _FINISHED[task] for task in (TaskStatus.CANCELLED, TaskStatus.FAILED)
}


# claims: what a target becomes whose person invite_barred (migration 0012) bars, by the bar
BARRED: dict[str, EngineOutcome] = {
    "suppressed": EngineOutcome.SUPPRESSED,
    "recently_contacted": EngineOutcome.RECENTLY_CONTACTED,
}


# claims: what a reservation the database refused makes of an account it still leases, by the
# account's status in its row (one it no longer leases: LEASE_LOST)
REFUSED: dict[AccountStatus, EngineOutcome] = {
    AccountStatus.ACTIVE: EngineOutcome.RESERVATION_REFUSED,
    AccountStatus.COOLDOWN: EngineOutcome.RESERVATION_REFUSED,
    AccountStatus.DISABLED: EngineOutcome.RESERVATION_REFUSED,
    AccountStatus.BLOCKED: EngineOutcome.REFUSED_BLOCKED,
}


class RecoveredRow(msgspec.Struct, frozen=True):
    """One row of ``recover``'s parameter: what a target of this task type becomes."""

    task_type: str
    status: TargetStatus
    recorded: bool  # outcome, error message and processed time written (else kept as they were)
    outcome: str
    error_message: str | None
    requeue: bool  # back in the queue, due now, its lease gone; else it keeps its lease's owner
    give_back: bool  # the attempt is not counted


class ReconciledRow(msgspec.Struct, frozen=True):
    """One row of ``reconcile_settle``'s parameter: what a verdict makes of a message of a task
    in this status."""

    verdict: Verdict
    task_status: TaskStatus
    link: bool  # the message carried a one-use invite link (its target's link_state: due)
    status: TargetStatus
    outcome: str
    link_state: LinkState | None  # the target's link_state afterwards (None: as it was)
    logged: str  # the execution log row's status (action check_delivery)
    reason: str  # the detail in the log and in the target's result
    error_message: str | None
    requeue: bool  # back in the queue, due now (else processed now)
    give_back: bool  # the attempt is not counted
    refund: bool  # the quota reservation is given back, if the account's window still holds it
    counted: bool  # a message sent: counted in the account's usage


class BarredRow(msgspec.Struct, frozen=True):
    """One row of the claim's ``barred`` parameter: what a target whose person may not be
    contacted becomes, by the bar invite_barred (migration 0012) names."""

    barred: str
    status: TargetStatus
    outcome: str
    error_message: str  # "{days}": the task's recontact cap


class ClosedRow(msgspec.Struct, frozen=True):
    """One row of ``close_queues``'s parameter: what a pending target of a task closed this way becomes."""

    task_status: TaskStatus
    status: TargetStatus
    outcome: str


def barred_rows() -> tuple[BarredRow, ...]:
    rows = []
    for barred, key in BARRED.items():
        d = DECISIONS[key]
        assert d.status is not None
        assert d.reason is not None
        rows.append(BarredRow(barred, d.status, d.outcome, d.reason))
    return tuple(rows)


def closed_rows() -> tuple[ClosedRow, ...]:
    rows = []
    for task_status, key in CLOSED.items():
        d = DECISIONS[key]
        assert d.status is not None
        rows.append(ClosedRow(task_status, d.status, d.outcome))
    return tuple(rows)


def recovered_rows() -> tuple[RecoveredRow, ...]:
    rows = []
    for task_type, key in RECOVERED.items():
        d = DECISIONS[key]
        assert d.status is not None
        rows.append(
            RecoveredRow(
                task_type,
                d.status,
                d.recorded,
                d.outcome,
                d.reason if d.error else None,
                d.fate is TargetFate.REQUEUE,
                d.gives_back,
            )
        )
    return tuple(rows)


def reconciled_rows() -> tuple[ReconciledRow, ...]:
    rows = []
    for (verdict, task_status, link), key in RECONCILED.items():
        d = DECISIONS[key]
        assert d.status is not None
        assert d.reason is not None
        rows.append(
            ReconciledRow(
                verdict,
                task_status,
                link,
                d.status,
                d.outcome,
                d.link,
                d.logged,
                d.reason,
                d.reason if d.error else None,
                d.fate is TargetFate.REQUEUE,
                d.gives_back,
                d.refund,
                d.counted,
            )
        )
    return tuple(rows)


def link_watch() -> dict[str, object]:
    """The link watcher's cells (links.sql mark_joined, mark_expired), as named parameters."""
    joined, expired = DECISIONS[EngineOutcome.JOINED_VIA_LINK], DECISIONS[EngineOutcome.LINK_EXPIRED]
    return {
        "joined_status": joined.status,
        "joined_outcome": joined.outcome,
        "joined_link": joined.link,
        "expired_status": expired.status,
        "expired_outcome": expired.outcome,
        "expired_link": expired.link,
        "expired_reason": expired.reason,
        "action": Call.LINK_JOINS,
    }


def lost_claim() -> dict[str, object]:
    """``release_lost_claim``'s cells, as its named parameters."""
    d = DECISIONS[EngineOutcome.CLAIM_LOST]
    assert d.status is not None
    return {
        "status": d.status,
        "requeue": d.fate is TargetFate.REQUEUE,
        "give_back": d.gives_back,
        "refund": d.refund,
    }


# The parameters as the statements take them: a jsonb document, encoded once and passed as its
# text (the statement casts it).
RECOVERED_JSON = msgspec.json.encode(recovered_rows()).decode()
RECONCILED_JSON = msgspec.json.encode(reconciled_rows()).decode()
CLOSED_JSON = msgspec.json.encode(closed_rows()).decode()
BARRED_JSON = msgspec.json.encode(barred_rows()).decode()
LOST_CLAIM = lost_claim()
LINK_WATCH = link_watch()

# record: a task-account status an outcome set stays, whatever later outcomes' buckets say
# (an account that left the task, or died, stays so until a person says otherwise)
KEPT_TASK_ACCOUNT_STATUSES: tuple[TaskAccountStatus, ...] = tuple(
    sorted({d.task_account for d in DECISIONS.values() if d.task_account is not None})
)

# the execution-log statuses the circuit breaker counts as errors
BREAKER_ERRORS = frozenset(d.logged for d in DECISIONS.values() if d.breaker)

# the outcomes of failed targets a customer's retry-failed puts back in the queue
RETRYABLE_OUTCOMES: tuple[str, ...] = tuple(sorted({d.outcome for d in DECISIONS.values() if d.retryable}))
