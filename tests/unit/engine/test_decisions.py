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
from invite.platforms.base import AccountEvent, OutcomeKind


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
    assert {"flood_wait", "peer_flood", "account_dead", "transient"} == BREAKER_ERRORS


def test_dead_account_event_names_the_cause() -> None:
    assert dead_account_event("AUTH_KEY_UNREGISTERED") is AccountEvent.AUTH_KEY_ERROR
    assert dead_account_event("PHONE_NUMBER_BANNED") is AccountEvent.PHONE_NUMBER_BANNED
    assert dead_account_event("USER_DEACTIVATED_BAN") is AccountEvent.USER_DEACTIVATED
