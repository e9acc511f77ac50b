"""Applying the decision table to one answer: the bucket now, the rest as an entry to commit."""

from __future__ import annotations

from datetime import timedelta

from invite.engine.decisions import EngineOutcome, Raised
from invite.engine.outcomes import settle
from invite.engine.registry import RunningTask
from invite.platforms.base import AccountEvent, Outcome, OutcomeKind
from tests.unit.engine.world import NOW, SETTINGS, TASK, account, claim, registry

K = OutcomeKind


def test_success_ends_the_target_and_relaxes_the_account() -> None:
    acc = account()
    acc.bucket.multiplier = 2.0
    entry = settle(SETTINGS, registry(acc), NOW, acc, TASK, Outcome(K.SUCCESS), claim())
    assert entry.target is not None
    assert (entry.target.status, entry.target.outcome, entry.target.error_message) == (
        "succeeded",
        "success",
        None,
    )
    assert entry.account is not None
    assert entry.account.multiplier == acc.bucket.multiplier == 1.95
    assert acc.usage.invites_sent == 1
    assert acc.usage.channels_used == ["grp"]


def test_flood_wait_cools_the_account_and_puts_the_person_back_uncounted() -> None:
    acc = account()
    entry = settle(
        SETTINGS,
        registry(acc),
        NOW,
        acc,
        TASK,
        Outcome(K.FLOOD_WAIT, 420.0, "FLOOD_WAIT_X", event=AccountEvent.FLOOD_WAIT),
        claim(2),
    )
    assert entry.target is not None
    assert (entry.target.status, entry.target.attempts, entry.target.next_attempt_at) == ("pending", 1, NOW)
    assert acc.bucket.cooldown_until == NOW + timedelta(seconds=420 + SETTINGS.flood_wait_margin_seconds)
    assert acc.bucket.multiplier == 2.0
    assert entry.account is not None
    assert (entry.account.status, entry.account.flood_waits) == ("cooldown", 1)
    assert entry.task_account is not None
    assert entry.task_account.status == "cooldown"
    assert entry.report is not None
    assert entry.report[0] is AccountEvent.FLOOD_WAIT
    assert entry.breaker


def test_a_slow_mode_wait_rests_the_account_but_is_not_reported() -> None:
    # the adapter's table names no event for a chat's slow mode (the chat's limit, not the
    # account's): the decision table has no event of its own to put in its place
    acc = account()
    entry = settle(
        SETTINGS, registry(acc), NOW, acc, TASK, Outcome(K.FLOOD_WAIT, 30.0, "SLOWMODE_WAIT_X"), claim()
    )
    assert acc.bucket.cooldown_until == NOW + timedelta(seconds=30 + SETTINGS.flood_wait_margin_seconds)
    assert entry.report is None
    assert acc.usage.success


def test_peer_flood_rests_the_account_for_the_long_cooldown() -> None:
    acc = account()
    entry = settle(SETTINGS, registry(acc), NOW, acc, TASK, Outcome(K.PEER_FLOOD), claim())
    assert acc.bucket.cooldown_until == NOW + timedelta(seconds=SETTINGS.peer_flood_cooldown_seconds)
    assert entry.account is not None
    assert entry.account.peer_floods == 1
    assert entry.task_account is not None
    assert entry.task_account.stats == {"peer_flood": 1}


def test_dead_account_is_blocked_and_stops() -> None:
    acc = account()
    entry = settle(
        SETTINGS,
        registry(acc),
        NOW,
        acc,
        TASK,
        Outcome(K.ACCOUNT_DEAD, detail="AUTH_KEY_UNREGISTERED", event=AccountEvent.AUTH_KEY_ERROR),
        claim(),
    )
    assert not acc.driving
    assert acc.blocked
    assert entry.blocked_reason == "account dead: AUTH_KEY_UNREGISTERED"
    assert entry.report is not None
    assert entry.report[0] is AccountEvent.AUTH_KEY_ERROR
    assert entry.target is not None
    assert entry.target.status == "pending"


def test_no_admin_right_takes_the_account_off_the_task() -> None:
    acc = account()
    reg = registry(acc)
    entry = settle(
        SETTINGS, reg, NOW, acc, TASK, Outcome(K.NO_ADMIN_RIGHT, detail="CHAT_ADMIN_REQUIRED"), None
    )
    assert reg.tasks_for(acc.id) == []
    assert entry.task_account is not None
    assert entry.task_account.status == "excluded"
    assert "no right to invite into grp" in (entry.task_account.reason or "")
    assert entry.log is not None
    assert entry.log.action == "check_invite_right"
    assert entry.target is None


def test_chat_unavailable_pauses_the_task_with_a_reason() -> None:
    acc = account()
    entry = settle(
        SETTINGS,
        registry(acc),
        NOW,
        acc,
        TASK,
        Outcome(K.CHAT_UNAVAILABLE, detail="CHANNEL_PRIVATE"),
        claim(),
    )
    assert entry.pause_reason == "the group grp refuses: CHANNEL_PRIVATE; fix it, then resume the task"
    assert entry.target is not None
    assert (entry.target.status, entry.target.attempts) == ("pending", 0)


def test_transient_backs_off_exponentially_then_fails_with_the_reason() -> None:
    acc = account()
    second = settle(SETTINGS, registry(acc), NOW, acc, TASK, Outcome(K.TRANSIENT, detail="TIMEOUT"), claim(2))
    assert second.target is not None
    assert (second.target.status, second.target.next_attempt_at) == ("pending", NOW + timedelta(seconds=60))
    last = settle(SETTINGS, registry(acc), NOW, acc, TASK, Outcome(K.TRANSIENT, detail="TIMEOUT"), claim(3))
    assert last.target is not None
    assert (last.target.status, last.target.error_message) == ("failed", "gave up after 3 attempts: TIMEOUT")


def test_a_message_whose_send_raised_is_uncertain_never_retried() -> None:
    acc = account()
    messages = RunningTask(
        **{**{f: getattr(TASK, f) for f in TASK.__struct_fields__}, "task_type": "send_messages"}
    )
    entry = settle(
        SETTINGS,
        registry(acc),
        NOW,
        acc,
        messages,
        Raised(EngineOutcome.DRIVER_ERROR, "driver error: boom"),
        claim(),
    )
    assert entry.target is not None
    assert (entry.target.status, entry.target.outcome) == ("uncertain", "driver_error")
