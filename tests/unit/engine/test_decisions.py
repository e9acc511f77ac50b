"""The decision table covers every outcome, and its rules hold as the issue states them."""

from __future__ import annotations

import pytest

from invite.engine.decisions import (
    BREAKER_ERRORS,
    DECISIONS,
    AccountEffect,
    TargetFate,
    TaskEffect,
    dead_account_event,
    decide,
)
from invite.platforms.base import AccountEvent, Outcome, OutcomeKind


def test_every_outcome_has_a_decision() -> None:
    assert set(DECISIONS) == set(OutcomeKind)


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (OutcomeKind.SUCCESS, "succeeded"),
        (OutcomeKind.ALREADY_MEMBER, "succeeded"),
        (OutcomeKind.PRIVACY_RESTRICTED, "skipped"),
        (OutcomeKind.NOT_FOUND, "skipped"),
        (OutcomeKind.TARGET_UNAVAILABLE, "skipped"),
    ],
)
def test_answers_about_the_person_end_the_target(kind: OutcomeKind, status: str) -> None:
    decision = decide(kind)
    assert (decision.fate, decision.status, decision.breaker) == (TargetFate.DONE, status, False)


@pytest.mark.parametrize(
    ("kind", "account", "task"),
    [
        (OutcomeKind.FLOOD_WAIT, AccountEffect.COOL_DOWN, TaskEffect.NONE),
        (OutcomeKind.PEER_FLOOD, AccountEffect.SPAM_FLAG, TaskEffect.NONE),
        (OutcomeKind.ACCOUNT_DEAD, AccountEffect.BLOCK, TaskEffect.NONE),
        (OutcomeKind.NO_ADMIN_RIGHT, AccountEffect.NONE, TaskEffect.LEAVE),
        (OutcomeKind.CHAT_UNAVAILABLE, AccountEffect.NONE, TaskEffect.PAUSE),
    ],
)
def test_refusals_of_the_account_put_the_person_back_uncounted(
    kind: OutcomeKind, account: AccountEffect, task: TaskEffect
) -> None:
    decision = decide(kind)
    assert (decision.fate, decision.account, decision.task) == (TargetFate.REQUEUE, account, task)


def test_transient_errors_retry_and_count_for_the_breaker() -> None:
    assert decide(OutcomeKind.TRANSIENT).fate is TargetFate.RETRY
    assert {"flood_wait", "peer_flood", "account_dead", "transient", "delivery_unknown"} == BREAKER_ERRORS


def test_a_message_of_unknown_fate_is_uncertain_and_never_sent_again() -> None:
    decision = decide(OutcomeKind.DELIVERY_UNKNOWN)
    assert (decision.fate, decision.status, decision.breaker) == (TargetFate.DONE, "uncertain", True)


def test_dead_account_event_is_the_drivers_not_guessed_from_the_text() -> None:
    banned = Outcome(
        OutcomeKind.ACCOUNT_DEAD, detail="USER_DEACTIVATED_BAN", event=AccountEvent.PHONE_NUMBER_BANNED
    )
    assert dead_account_event(banned) is AccountEvent.PHONE_NUMBER_BANNED
    unread = Outcome(OutcomeKind.ACCOUNT_DEAD, detail="invalid SESSION, AUTH_KEY in the words")
    assert dead_account_event(unread) is AccountEvent.USER_DEACTIVATED  # the table's default
