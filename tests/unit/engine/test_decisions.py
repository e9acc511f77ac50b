"""The decision table: its rows as decided, and a walk over every row and every cell.

``test_the_table_is_as_decided`` pins each row (a cell changed fails it); the walks run each
row through whatever applies it — ``settle``, ``give_back``, ``retire``, ``refused``, the
parameters of the SQL statements — on a real LeasedAccount and Registry, and see every cell's
effect happen (an applier that ignores a cell fails them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import get_args

import msgspec
import pytest

from invite.engine.account import LeasedAccount
from invite.engine.decisions import (
    BARRED,
    BARRED_JSON,
    BREAKER_ERRORS,
    CLOSED,
    CLOSED_JSON,
    DECISIONS,
    KEPT_TASK_ACCOUNT_STATUSES,
    LINK_MESSAGE,
    LINK_OFFERED,
    LINK_WATCH,
    LOST_CLAIM,
    RAISED,
    RECONCILED,
    RECONCILED_JSON,
    RECOVERED,
    RECOVERED_JSON,
    REFUSED,
    RETRYABLE_OUTCOMES,
    AccountEffect,
    BarredRow,
    ClosedRow,
    Decision,
    EngineOutcome,
    Key,
    Raised,
    ReconciledRow,
    RecoveredRow,
    TargetFate,
    TaskEffect,
    Verdict,
    barred_rows,
    closed_rows,
    reconciled_rows,
    recovered_rows,
)
from invite.engine.outcomes import (
    REFUSED_REST,
    ROOM_RECHECK,
    give_back,
    refused,
    retire,
    settle,
    short_of_room,
)
from invite.engine.recorder import AccountChange, Entry
from invite.engine.registry import Registry
from invite.engine.statuses import AccountStatus, LinkState, TargetStatus, TaskAccountStatus
from invite.kernel.db import queries
from invite.platforms.base import AccountEvent, Outcome, OutcomeKind
from invite.tasks.schemas import TaskType
from invite.tasks.states import TaskStatus
from invite.tasks.task_settings import TaskSettings
from tests.conftest import SQL_DIR
from tests.unit.engine import world
from tests.unit.engine.world import NOW, SETTINGS, TASK, claim, registry

DETAIL, SECONDS = "THE_ERROR_ID", 420.0
MULTIPLIER = 2.0  # the account's multiplier before each answer: a relax and a back-off both show
K, E, T, A, X, S, TA = (
    OutcomeKind,
    EngineOutcome,
    TargetFate,
    AccountEffect,
    TaskEffect,
    TargetStatus,
    TaskAccountStatus,
)

# Every row as decided, its reason aside (the SQL walks pin those, word for word).
PINNED: dict[Key, Decision] = {
    K.SUCCESS: Decision(T.DONE, S.SUCCEEDED, A.RELAX, error=False, counted=True, outcome="success"),
    K.ALREADY_MEMBER: Decision(T.DONE, S.SUCCEEDED, A.RELAX, error=False, outcome="already_member"),
    K.PRIVACY_RESTRICTED: Decision(T.DONE, S.SKIPPED, outcome="privacy_restricted"),
    K.NOT_FOUND: Decision(T.DONE, S.SKIPPED, outcome="not_found"),
    K.TARGET_UNAVAILABLE: Decision(T.DONE, S.SKIPPED, outcome="target_unavailable"),
    K.BLOCKED: Decision(T.DONE, S.SKIPPED, opt_out=True, outcome="blocked"),
    K.FLOOD_WAIT: Decision(
        T.REQUEUE, S.PENDING, A.COOL_DOWN, breaker=True, retryable=True, gives_back=True, outcome="flood_wait"
    ),
    K.PEER_FLOOD: Decision(
        T.REQUEUE, S.PENDING, A.SPAM_FLAG, breaker=True, retryable=True, gives_back=True, outcome="peer_flood"
    ),
    K.ACCOUNT_DEAD: Decision(
        T.REQUEUE,
        S.PENDING,
        A.BLOCK,
        task_account=TA.BLOCKED,
        breaker=True,
        retryable=True,
        gives_back=True,
        outcome="account_dead",
    ),
    K.NO_ADMIN_RIGHT: Decision(
        T.REQUEUE,
        S.PENDING,
        task=X.LEAVE,
        task_account=TA.EXCLUDED,
        retryable=True,
        gives_back=True,
        outcome="no_admin_right",
    ),
    K.CHAT_UNAVAILABLE: Decision(
        T.REQUEUE, S.PENDING, task=X.PAUSE, retryable=True, gives_back=True, outcome="chat_unavailable"
    ),
    K.TRANSIENT: Decision(T.RETRY, S.FAILED, breaker=True, retryable=True, outcome="transient"),
    K.DELIVERY_UNKNOWN: Decision(T.DONE, S.UNCERTAIN, breaker=True, outcome="delivery_unknown"),
    E.DRIVER_ERROR: Decision(T.DONE, S.UNCERTAIN, breaker=True, outcome="driver_error"),
    E.NOT_ACTED: Decision(T.REQUEUE, S.PENDING, gives_back=True, outcome="not_acted"),
    E.CLAIM_LOST: Decision(
        T.REQUEUE, S.PENDING, gives_back=True, refund=True, recorded=False, outcome="claim_lost"
    ),
    E.LEASE_EXPIRED: Decision(T.DONE, S.UNCERTAIN, outcome="lease_expired"),
    E.INVITE_LEASE_EXPIRED: Decision(T.REQUEUE, S.PENDING, recorded=False, outcome="invite_lease_expired"),
    E.DELIVERED_CONFIRMED: Decision(
        T.DONE, S.SUCCEEDED, error=False, counted=True, outcome="delivered_confirmed"
    ),
    E.NOT_SENT: Decision(T.REQUEUE, S.PENDING, gives_back=True, refund=True, outcome="not_sent"),
    E.NOT_SENT_COMPLETED: Decision(T.DONE, S.FAILED, gives_back=True, refund=True, outcome="not_sent"),
    E.TASK_CANCELLED: Decision(
        T.DONE, S.CANCELLED, gives_back=True, refund=True, outcome="task_cancelled", logged="not_sent"
    ),
    E.TASK_FAILED: Decision(
        T.DONE, S.CANCELLED, gives_back=True, refund=True, outcome="task_failed", logged="not_sent"
    ),
    E.CANNOT_TELL: Decision(T.DONE, S.UNCERTAIN, outcome="delivery_unknown"),
    E.DEAD_AT_START: Decision(T.NONE, None, A.BLOCK, task_account=TA.BLOCKED, outcome="dead_at_start"),
    E.RESERVATION_REFUSED: Decision(T.NONE, None, A.REST, outcome="reservation_refused"),
    E.REFUSED_BLOCKED: Decision(T.NONE, None, A.STOP, outcome="refused_blocked"),
    E.LEASE_LOST: Decision(T.NONE, None, A.LET_GO, outcome="lease_lost"),
    E.CONTACTS_FULL: Decision(T.NONE, None, A.REST, outcome="contacts_full"),
    E.LINKS_FULL: Decision(T.NONE, None, A.REST, outcome="links_full"),
    E.SUPPRESSED: Decision(T.DONE, S.SKIPPED, outcome="suppressed"),
    E.RECENTLY_CONTACTED: Decision(T.DONE, S.SKIPPED, outcome="recently_contacted"),
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
    E.LINK_SENT: Decision(
        T.DONE, S.SKIPPED, A.RELAX, error=False, counted=True, link=LinkState.SENT, outcome="link_sent"
    ),
    E.LINK_CONFIRMED: Decision(
        T.DONE,
        S.SKIPPED,
        error=False,
        counted=True,
        link=LinkState.SENT,
        outcome="link_sent",
        logged="delivered_confirmed",
    ),
    E.JOINED_VIA_LINK: Decision(
        T.DONE, S.SUCCEEDED, error=False, link=LinkState.JOINED, outcome="joined_via_link"
    ),
    E.LINK_EXPIRED: Decision(T.DONE, S.SKIPPED, link=LinkState.EXPIRED, outcome="link_expired"),
}
# What settle is handed: every platform answer, and the engine's answers for a step that raised.
SETTLED: list[Key] = [*OutcomeKind, *{key for key in RAISED.values() if isinstance(key, EngineOutcome)}]


def account() -> LeasedAccount:
    acc = world.account()
    acc.bucket.multiplier = MULTIPLIER
    return acc


def answer(key: Key, event: AccountEvent | None = None) -> Outcome | Raised:
    if isinstance(key, OutcomeKind):
        return Outcome(key, SECONDS, DETAIL, event)
    return Raised(key, DETAIL)


# --- the table ----------------------------------------------------------------------------


def test_every_outcome_kind_and_engine_outcome_has_one_row() -> None:
    assert set(DECISIONS) == {*OutcomeKind, *EngineOutcome}
    assert set(PINNED) == set(DECISIONS)  # every row is pinned below
    assert not {k.value for k in OutcomeKind} & {e.value for e in EngineOutcome}  # one key space


@pytest.mark.parametrize("key", list(PINNED))
def test_the_table_is_as_decided(key: Key) -> None:
    row = DECISIONS[key]
    pinned = PINNED[key]
    assert dataclasses.replace(row, reason=None) == dataclasses.replace(
        pinned, logged=pinned.logged or pinned.outcome
    )


def test_every_engine_outcome_has_a_way_in() -> None:
    ways_in = [
        *RAISED.values(),
        *RECOVERED.values(),
        *RECONCILED.values(),
        *REFUSED.values(),
        *BARRED.values(),
        *LINK_OFFERED.values(),  # settle, in a task that offers links
        *LINK_MESSAGE.values(),  # settle, of a link's message
        E.JOINED_VIA_LINK,  # mark_joined
        E.LINK_EXPIRED,  # mark_expired
        E.NOT_ACTED,  # give_back
        E.CLAIM_LOST,  # release_lost_claim
        E.DEAD_AT_START,  # retire
        E.LEASE_LOST,  # refused, by a replica that no longer leases the account
        E.CONTACTS_FULL,  # short_of_room
        E.LINKS_FULL,  # short_of_room, of a link due
    ]
    assert {key for key in ways_in if isinstance(key, EngineOutcome)} == set(EngineOutcome)
    assert set(RECONCILED) == {
        (verdict, task, link) for verdict in Verdict for task in TaskStatus for link in (False, True)
    }
    assert set(REFUSED) == set(AccountStatus)


def test_recover_has_a_row_for_every_task_type() -> None:
    # recover joins its rows on the task type: a type without one would never be recovered
    assert set(RECOVERED) == set(get_args(TaskType))


def test_what_a_step_that_raised_counts_as() -> None:
    # an invite is idempotent (a retry is safe); a message may have gone out: never re-sent
    assert {call.value: key for call, key in RAISED.items()} == {
        "check_invite_right": K.TRANSIENT,
        "invite_to_group": K.TRANSIENT,
        "template": K.TRANSIENT,
        "send_message": E.DRIVER_ERROR,
        "create_invite_link": K.TRANSIENT,
        "send_invite_link": E.DRIVER_ERROR,
        "invite_link": K.TRANSIENT,
    }


@pytest.mark.parametrize("key", list(DECISIONS))
def test_retry_failed_requeues_exactly_the_retryable_rows(key: Key) -> None:
    assert (DECISIONS[key].outcome in RETRYABLE_OUTCOMES) is DECISIONS[key].retryable


def test_the_derived_sets() -> None:
    assert RETRYABLE_OUTCOMES == (
        "account_dead",
        "chat_unavailable",
        "flood_wait",
        "no_admin_right",
        "peer_flood",
        "transient",
    )
    assert {"flood_wait", "peer_flood", "account_dead", "transient", "delivery_unknown", "driver_error"} == (
        BREAKER_ERRORS
    )
    assert KEPT_TASK_ACCOUNT_STATUSES == (TA.BLOCKED, TA.EXCLUDED)


# --- settle: every row it is handed, every cell -------------------------------------------

# each account effect as seen on the account and in the change it writes (None: none)
_ACCOUNT_SEEN: dict[AccountEffect, Callable[[LeasedAccount, AccountChange | None], bool]] = {
    A.NONE: lambda acc, change: (
        acc.bucket.multiplier == MULTIPLIER
        and acc.bucket.cooldown_until is None
        and acc.driving
        and change is None
    ),
    A.RELAX: lambda acc, change: acc.bucket.multiplier < MULTIPLIER and acc.bucket.cooldown_until is None,
    A.COOL_DOWN: lambda acc, change: (
        acc.bucket.cooldown_until == NOW + timedelta(seconds=SECONDS + SETTINGS.flood_wait_margin_seconds)
        and acc.bucket.multiplier == 2 * MULTIPLIER
        and change is not None
        and (change.status, change.flood_waits) == (AccountStatus.COOLDOWN, 1)
    ),
    A.SPAM_FLAG: lambda acc, change: (
        acc.bucket.cooldown_until == NOW + timedelta(seconds=SETTINGS.peer_flood_cooldown_seconds)
        and change is not None
        and (change.status, change.peer_floods) == (AccountStatus.COOLDOWN, 1)
    ),
    A.BLOCK: lambda acc, change: (
        acc.blocked
        and not acc.driving
        and acc.status is AccountStatus.BLOCKED
        and change is not None
        and change.status is AccountStatus.BLOCKED
    ),
    A.REST: lambda acc, change: acc.bucket.cooldown_until == NOW + REFUSED_REST and acc.driving,
    A.STOP: lambda acc, change: acc.blocked and acc.held and not acc.driving and change is None,
    A.LET_GO: lambda acc, change: not acc.held and not acc.driving and not acc.blocked,
}
_TASK_SEEN: dict[TaskEffect, Callable[[Registry, Entry], bool]] = {
    X.NONE: lambda reg, entry: reg.tasks_for("a1") == [TASK] and entry.pause_reason is None,
    X.LEAVE: lambda reg, entry: reg.tasks_for("a1") == [] and entry.pause_reason is None,
    X.PAUSE: lambda reg, entry: (
        reg.tasks_for("a1") == [TASK]
        and entry.pause_reason == f"the group grp refuses: {DETAIL}; fix it, then resume the task"
    ),
}


def _seen(acc: LeasedAccount, change: AccountChange | None) -> list[AccountEffect]:
    return [effect for effect, seen in _ACCOUNT_SEEN.items() if seen(acc, change)]


@pytest.mark.parametrize("key", SETTLED)
def test_settle_applies_every_cell(key: Key) -> None:
    d = DECISIONS[key]
    acc = account()
    reg = registry(acc)
    entry = settle(SETTINGS, reg, NOW, acc, TASK, answer(key), claim(2))
    target, log, task_account = entry.target, entry.log, entry.task_account
    assert target is not None
    assert log is not None
    assert task_account is not None
    # fate, status, gives_back, error, outcome, logged
    fates = {
        T.DONE: (d.status, NOW, NOW),
        T.REQUEUE: (d.status, None, None if d.ahead else NOW),
        T.RETRY: (S.PENDING, None, NOW + timedelta(seconds=2 * SETTINGS.retry_backoff_seconds)),
    }
    assert (target.status, target.processed_at, target.next_attempt_at) == fates[d.fate]
    assert target.attempts == (1 if d.gives_back else 2)
    assert target.error_message == (DETAIL if d.error else None)
    assert (target.outcome, log.status, log.action) == (d.outcome, d.logged, "invite_to_group")
    assert target.result == {"account_id": "a1", "detail": DETAIL}
    # account, task, task_account
    assert _seen(acc, entry.account) == [d.account]
    assert [effect for effect, seen in _TASK_SEEN.items() if seen(reg, entry)] == [d.task]
    bucket_says = TA.COOLDOWN if acc.bucket.cooling(NOW) else TA.ACTIVE
    assert task_account.status == (d.task_account or bucket_says)
    assert task_account.stats == {d.outcome: 1}
    assert (entry.blocked_reason is not None) is (d.task_account is TA.BLOCKED)
    # breaker, opt_out, counted
    assert entry.breaker is d.breaker
    assert entry.opt_out == ((("u:someone", f"opted out: {DETAIL}")) if d.opt_out else None)
    assert (acc.usage.invites_sent, acc.usage.channels_used) == ((1, ["grp"]) if d.counted else (0, []))
    # what settle cannot do, no row it is handed asks for
    assert (d.recorded, d.refund, d.reason, d.link, target.link_state) == (True, False, None, None, None)


# an invite task that offers one-use links, and the claim of a target whose link is due
OFFERING = msgspec.structs.replace(TASK, settings=TaskSettings(privacy_fallback="invite_link"))


@pytest.mark.parametrize("key", list(OutcomeKind))
def test_an_invite_task_offering_links_turns_a_privacy_refusal_into_a_link_due(key: Key) -> None:
    acc = account()
    offered = settle(SETTINGS, registry(acc), NOW, acc, OFFERING, answer(key), claim(2))
    plain = settle(SETTINGS, registry(account()), NOW, account(), TASK, answer(key), claim(2))
    assert offered.target is not None
    assert plain.target is not None
    if key is K.PRIVACY_RESTRICTED:
        d = DECISIONS[E.LINK_DUE]
        assert (offered.target.status, offered.target.link_state, offered.target.attempts) == (
            S.PENDING,
            LinkState.DUE,
            1,  # the invite's attempt is not the message's
        )
        assert (offered.target.outcome, offered.target.error_message, offered.target.next_attempt_at) == (
            d.outcome,
            None,
            None,  # at the head of the queue: sent before anyone new is invited
        )
    else:  # every other answer to an invite is as in any invite task
        assert offered.target == plain.target


@pytest.mark.parametrize("key", list(OutcomeKind))
def test_the_answer_to_a_links_message_is_a_messages_and_never_offers_again(key: Key) -> None:
    acc = account()
    link_claim = dataclasses.replace(claim(2), link_due=True)
    entry = settle(SETTINGS, registry(acc), NOW, acc, OFFERING, answer(key), link_claim)
    assert entry.target is not None
    assert entry.log is not None
    assert entry.log.action == "send_invite_link"
    d = DECISIONS[E.LINK_SENT if key is K.SUCCESS else key]
    assert (entry.target.status, entry.target.outcome, entry.target.link_state) == (
        S.PENDING if d.fate is T.RETRY else d.status,
        d.outcome,
        d.link,
    )
    assert entry.target.link_state is not LinkState.DUE  # refused for privacy now: no second offer
    # a link's message is a message in the account's usage, not an invite
    assert (acc.usage.messages_sent, acc.usage.invites_sent) == ((1, 0) if d.counted else (0, 0))


@pytest.mark.parametrize("key", [k for k in SETTLED if DECISIONS[k].fate is T.RETRY])
def test_settle_ends_a_retried_target_with_its_status_once_the_attempts_are_spent(key: Key) -> None:
    acc = account()
    entry = settle(SETTINGS, registry(acc), NOW, acc, TASK, answer(key), claim(3))
    assert entry.target is not None
    assert (entry.target.status, entry.target.processed_at, entry.target.error_message) == (
        DECISIONS[key].status,
        NOW,
        f"gave up after 3 attempts: {DETAIL}",
    )


@pytest.mark.parametrize("key", SETTLED)
def test_settle_reports_the_adapters_event_and_nothing_else(key: Key) -> None:
    silent = account()
    assert settle(SETTINGS, registry(silent), NOW, silent, TASK, answer(key), claim(2)).report is None
    assert silent.usage.success
    if isinstance(key, EngineOutcome):  # the engine's own answers carry no event of the platform
        return
    told = account()
    entry = settle(
        SETTINGS, registry(told), NOW, told, TASK, answer(key, AccountEvent.UNKNOWN_ERROR), claim(2)
    )
    assert entry.report == (AccountEvent.UNKNOWN_ERROR, f"{key}: {DETAIL} ({SECONDS:g} s)")
    assert (told.usage.success, told.usage.error_type, told.usage.error_message) == (
        False,
        "unknown_error",
        DETAIL,
    )


@pytest.mark.parametrize("key", SETTLED)
def test_a_failed_check_of_the_right_touches_no_target(key: Key) -> None:
    d = DECISIONS[key]
    acc = account()
    entry = settle(SETTINGS, registry(acc), NOW, acc, TASK, answer(key), None)
    assert entry.target is None
    assert entry.opt_out is None
    assert entry.log is not None
    assert (entry.log.action, entry.log.status, entry.log.target_id) == ("check_invite_right", d.logged, None)
    if d.account is A.NONE:  # a check failed for now rests the account before it is asked again
        rested = NOW + timedelta(seconds=SETTINGS.retry_backoff_seconds)
        assert acc.bucket.cooldown_until == (rested if d.fate is T.RETRY else None)


# --- the other appliers -------------------------------------------------------------------


def test_a_claim_not_acted_on_goes_back_as_its_row_says() -> None:
    d = DECISIONS[E.NOT_ACTED]
    acc = account()
    entry = give_back(acc, TASK, claim(2), NOW, "not acted on: why")
    assert entry.target is not None
    assert d.fate is T.REQUEUE  # what give_back applies: back at once, nothing else touched
    assert (entry.target.status, entry.target.outcome, entry.target.attempts) == (
        d.status,
        d.outcome,
        1 if d.gives_back else 2,
    )
    assert (entry.target.processed_at, entry.target.next_attempt_at, entry.target.error_message) == (
        None,
        NOW,
        "not acted on: why",
    )
    assert entry.target.link_state is d.link
    assert entry.breaker is d.breaker
    assert (entry.log, entry.account, entry.task_account, entry.report) == (None, None, None, None)
    assert _seen(acc, entry.account) == [d.account]


@pytest.mark.parametrize("event", [AccountEvent.PHONE_NUMBER_BANNED, None])
def test_an_account_dead_at_start_up_is_retired_as_its_row_says(event: AccountEvent | None) -> None:
    d = DECISIONS[E.DEAD_AT_START]
    acc = account()
    retired = retire(SETTINGS, acc, Outcome(K.ACCOUNT_DEAD, detail="USER_DEACTIVATED_BAN", event=event), NOW)
    assert _seen(acc, retired.account) == [d.account]
    assert (retired.account.status, retired.account.reason) == (
        AccountStatus.BLOCKED,
        "account dead: USER_DEACTIVATED_BAN",
    )
    assert retired.task_status is d.task_account
    if event is None:  # the adapter named nothing: nothing is reported
        assert (retired.report, acc.usage.success) == (None, True)
    else:
        assert retired.report == (event, "account dead: USER_DEACTIVATED_BAN")
        assert (acc.usage.success, acc.usage.error_type) == (False, event.value)


@pytest.mark.parametrize("held", [True, False])
@pytest.mark.parametrize("status", list(AccountStatus))
def test_a_refused_reservation_does_what_its_row_says(status: AccountStatus, held: bool) -> None:
    acc = account()
    acc.status = status
    refused(SETTINGS, acc, held, NOW)
    d = DECISIONS[REFUSED[status] if held else E.LEASE_LOST]
    assert _seen(acc, None) == [d.account]


@pytest.mark.parametrize(
    ("opens_in", "rests"),
    [
        (timedelta(hours=3), ROOM_RECHECK),
        (timedelta(seconds=40), timedelta(seconds=40)),
        (None, ROOM_RECHECK),  # no window open: a contacts limit of 0
        (timedelta(seconds=-5), ROOM_RECHECK),
    ],
)
def test_an_account_short_of_room_rests_until_its_window_closes_or_a_recheck(
    opens_in: timedelta | None, rests: timedelta
) -> None:
    acc = account()
    short_of_room(SETTINGS, acc, True, None if opens_in is None else NOW + opens_in, NOW)
    assert DECISIONS[E.CONTACTS_FULL].account is A.REST  # in memory only, for as long as said
    assert acc.bucket.cooldown_until == NOW + rests
    assert acc.driving
    gone = account()
    short_of_room(SETTINGS, gone, False, NOW, NOW)
    assert _seen(gone, None) == [DECISIONS[E.LEASE_LOST].account]


# --- the parameters of the SQL statements -------------------------------------------------


def test_close_queues_receives_what_a_closed_tasks_pending_targets_become() -> None:
    # what the CASE on the task's status said before the table decided it
    assert closed_rows() == (
        ClosedRow(TaskStatus.CANCELLED, S.CANCELLED, "task_cancelled"),
        ClosedRow(TaskStatus.FAILED, S.CANCELLED, "task_failed"),
    )
    assert msgspec.json.decode(CLOSED_JSON) == list(msgspec.to_builtins(closed_rows()))
    assert set(CLOSED) == {TaskStatus.CANCELLED, TaskStatus.FAILED}


def test_recover_receives_every_cell_of_its_rows() -> None:
    rows = recovered_rows()
    assert [row.task_type for row in rows] == list(RECOVERED)
    for row in rows:
        d = DECISIONS[RECOVERED[row.task_type]]
        assert row == RecoveredRow(
            row.task_type,
            status=d.status or S.PENDING,
            recorded=d.recorded,
            outcome=d.outcome,
            error_message=d.reason if d.error else None,
            requeue=d.fate is T.REQUEUE,
            give_back=d.gives_back,
        )
    assert msgspec.json.decode(RECOVERED_JSON, type=tuple[RecoveredRow, ...]) == rows


def test_recover_makes_what_it_made_before() -> None:
    message, invite = (row for row in recovered_rows())
    assert message == RecoveredRow(
        "send_messages",
        S.UNCERTAIN,
        recorded=True,
        outcome="lease_expired",
        error_message="the worker sending this message stopped before recording whether it was delivered; "
        "it is not re-sent unless the platform shows it never went out",
        requeue=False,
        give_back=False,
    )
    assert (invite.task_type, invite.status, invite.recorded, invite.requeue, invite.give_back) == (
        "invite_to_group",
        S.PENDING,
        False,
        True,
        False,
    )


def test_the_claim_closes_the_barred_as_the_table_says() -> None:
    assert barred_rows() == (
        BarredRow("suppressed", S.SKIPPED, "suppressed", "on the suppression list"),
        BarredRow(
            "recently_contacted",
            S.SKIPPED,
            "recently_contacted",
            "contacted by another of your tasks within the last {days} days",
        ),
    )
    assert msgspec.json.decode(BARRED_JSON, type=tuple[BarredRow, ...]) == barred_rows()
    # a new suppression takes the person's pending targets out with the same words
    skip = queries(SQL_DIR)["suppressions.skip_pending_targets"]
    assert f"outcome = '{E.SUPPRESSED.value}', error_message = '{DECISIONS[E.SUPPRESSED].reason}'" in skip


def test_release_lost_claim_receives_the_cells_of_its_row() -> None:
    d = DECISIONS[E.CLAIM_LOST]
    assert {
        "status": d.status,
        "requeue": d.fate is T.REQUEUE,
        "give_back": d.gives_back,
        "refund": d.refund,
    } == LOST_CLAIM
    # untouched, so as if never claimed: due now, the attempt and the reservation given back
    assert LOST_CLAIM == {"status": S.PENDING, "requeue": True, "give_back": True, "refund": True}


def test_the_link_watcher_receives_the_cells_of_its_rows() -> None:
    joined, expired = DECISIONS[E.JOINED_VIA_LINK], DECISIONS[E.LINK_EXPIRED]
    assert {
        "joined_status": joined.status,
        "joined_outcome": joined.outcome,
        "joined_link": joined.link,
        "expired_status": expired.status,
        "expired_outcome": expired.outcome,
        "expired_link": expired.link,
        "expired_reason": expired.reason,
        "action": "invite_link",
    } == LINK_WATCH
    assert (LINK_WATCH["joined_status"], LINK_WATCH["joined_link"]) == (S.SUCCEEDED, LinkState.JOINED)
    assert LINK_WATCH["expired_reason"] == "the one-use invite link ran out unused: revoked"


def test_reconcile_settle_receives_every_cell_of_its_rows() -> None:
    rows = reconciled_rows()
    assert [(row.verdict, row.task_status, row.link) for row in rows] == list(RECONCILED)
    for row in rows:
        d = DECISIONS[RECONCILED[row.verdict, row.task_status, row.link]]
        assert d.reason is not None
        assert row == ReconciledRow(
            row.verdict,
            row.task_status,
            row.link,
            status=d.status or S.PENDING,
            outcome=d.outcome,
            link_state=d.link,
            logged=d.logged,
            reason=d.reason,
            error_message=d.reason if d.error else None,
            requeue=d.fate is T.REQUEUE,
            give_back=d.gives_back,
            refund=d.refund,
            counted=d.counted,
        )
    assert msgspec.json.decode(RECONCILED_JSON, type=tuple[ReconciledRow, ...]) == rows


@pytest.mark.parametrize("task", list(TaskStatus))
def test_a_links_message_in_doubt_is_a_message_and_sent_is_a_link_sent(task: TaskStatus) -> None:
    rows = {(row.verdict, row.link): row for row in reconciled_rows() if row.task_status is task}
    for verdict in (Verdict.NOT_SENT, Verdict.UNKNOWN):  # as any message's
        assert msgspec.structs.replace(rows[verdict, True], link=False) == rows[verdict, False]
    sent = rows[Verdict.SENT, True]
    assert (sent.status, sent.outcome, sent.link_state, sent.logged, sent.counted) == (
        S.SKIPPED,
        "link_sent",
        LinkState.SENT,
        "delivered_confirmed",
        True,
    )


UNSENT = "its worker stopped before sending it (the platform shows no such message): back in the queue"


@pytest.mark.parametrize("task", list(TaskStatus))
def test_reconcile_settle_makes_what_it_made_before(task: TaskStatus) -> None:
    rows = {row.verdict: row for row in reconciled_rows() if row.task_status is task and not row.link}
    sent, unknown, unsent = rows[Verdict.SENT], rows[Verdict.UNKNOWN], rows[Verdict.NOT_SENT]
    assert (sent.status, sent.outcome, sent.logged, sent.error_message, sent.counted) == (
        S.SUCCEEDED,
        "delivered_confirmed",
        "delivered_confirmed",
        None,
        True,
    )
    assert sent.reason == "delivered: the platform shows the message sent after its worker stopped"
    assert (unknown.status, unknown.outcome, unknown.logged, unknown.requeue, unknown.give_back) == (
        S.UNCERTAIN,
        "delivery_unknown",
        "delivery_unknown",
        False,
        False,
    )
    assert unknown.error_message == (
        "the worker sending this message stopped before recording whether it was delivered, "
        "and the platform could not tell; it is not re-sent"
    )
    closed = {
        TaskStatus.COMPLETED: (
            S.FAILED,
            "not_sent",
            "not sent: its worker stopped before sending it, and the task had completed meanwhile",
        ),
        TaskStatus.CANCELLED: (S.CANCELLED, "task_cancelled", UNSENT),
        TaskStatus.FAILED: (S.CANCELLED, "task_failed", UNSENT),
    }
    assert (unsent.status, unsent.outcome, unsent.error_message) == closed.get(
        task, (S.PENDING, "not_sent", UNSENT)
    )
    assert (unsent.logged, unsent.requeue, unsent.give_back, unsent.refund) == (
        "not_sent",
        task not in closed,
        True,
        True,
    )
    assert (sent.refund, sent.give_back, unknown.refund, unknown.counted, unsent.counted) == (False,) * 5
