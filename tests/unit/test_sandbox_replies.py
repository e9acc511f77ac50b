"""The sandbox learns replies: people it messaged answer as its profile says, as Telegram's
dialogs would show them to ``read_replies``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from invite.kernel.clock import VirtualClock
from invite.platforms.base import AccountData, OutcomeKind, RateLimits, Target
from invite.platforms.sandbox import MemoryRecord, SandboxFactory, SandboxProfile

LIMITS = RateLimits(daily_quota=40, daily_quota_with_link=10, min_pause_seconds=15.0)
ONE = AccountData(id="acc-1", user_id="tenant-1")
OTHER = AccountData(id="acc-2", user_id="tenant-1")


def world(profile: SandboxProfile, record: MemoryRecord | None = None) -> tuple[SandboxFactory, VirtualClock]:
    clock = VirtualClock()
    return SandboxFactory(clock, limits=LIMITS, profile=profile, seed=3, record=record), clock


async def test_people_answer_the_account_that_wrote_to_them_after_the_profiles_delay() -> None:
    profile = SandboxProfile(reply_rate=0.5, opt_out_reply_rate=0.25, reply_after_seconds=300)
    factory, clock = world(profile)
    start = clock.now()
    sender = factory.for_account(ONE)
    people = [Target.from_key(f"u:person{i}") for i in range(40)]
    for n, person in enumerate(people):
        assert (await sender.send_message(person, "hello", n)).kind is OutcomeKind.SUCCESS

    assert (await sender.read_replies(start)).replies == []  # nobody answered yet
    await clock.sleep(300)
    answer = await sender.read_replies(start)

    assert answer.outcome.kind is OutcomeKind.SUCCESS
    texts = {r.keys: r.text for r in answer.replies}
    stops = {k for k, text in texts.items() if text == profile.opt_out_reply_text}
    assert 10 <= len(texts) < 40
    assert 0 < len(stops) < len(texts)
    assert all(r.at == start + timedelta(seconds=300) for r in answer.replies)
    assert {k for (k,) in texts} <= {p.key for p in people}
    # the same answers for another process on the record, none for an account that wrote to nobody
    again = SandboxFactory(clock, limits=LIMITS, profile=profile, seed=3, record=factory.record)
    assert (await again.for_account(ONE).read_replies(start)).replies == answer.replies
    assert (await factory.for_account(OTHER).read_replies(start)).replies == []
    # read from later on: those answers are behind
    assert (await sender.read_replies(start + timedelta(seconds=301))).replies == []


async def test_an_account_in_a_flood_wait_or_dead_reads_nothing() -> None:
    factory, clock = world(SandboxProfile(reply_rate=1.0, flood_wait_rate=1.0, flood_wait_seconds=(120.0,)))
    start = clock.now()
    sender = factory.for_account(ONE)
    assert (await sender.send_message(Target.from_key("u:x"), "hi", 1)).kind is OutcomeKind.FLOOD_WAIT

    answer = await sender.read_replies(start)
    assert (answer.replies, answer.outcome.kind) == ([], OutcomeKind.FLOOD_WAIT)
    assert 0 < answer.outcome.seconds <= 120

    dead, _ = world(SandboxProfile(reply_rate=1.0, dead_accounts=frozenset({"acc-1"})))
    assert (await dead.for_account(ONE).read_replies(start)).outcome.kind is OutcomeKind.ACCOUNT_DEAD


def test_the_reply_rates_are_shares_of_everyone() -> None:
    with pytest.raises(ValueError, match="reply_rate"):
        SandboxProfile(reply_rate=0.7, opt_out_reply_rate=0.4)
