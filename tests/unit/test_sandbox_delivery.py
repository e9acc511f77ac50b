"""The sandbox answers "did this account message this person since then?" from its record."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from invite.kernel.clock import VirtualClock
from invite.platforms.base import AccountData, OutcomeKind, RateLimits, Target
from invite.platforms.sandbox import JsonlRecord, SandboxFactory, SandboxProfile, SandboxRecord

LIMITS = RateLimits(daily_quota=40, daily_quota_with_link=10, min_pause_seconds=15.0)
ALICE = Target.from_key("u:alice")


def account(n: int) -> AccountData:
    return AccountData(id=f"acc-{n}", user_id="tenant-1")


def sandbox(
    clock: VirtualClock, profile: SandboxProfile | None = None, record: SandboxRecord | None = None
) -> SandboxFactory:
    return SandboxFactory(clock, limits=LIMITS, profile=profile, seed=7, record=record)


async def test_a_message_sent_by_the_account_since_then_is_found() -> None:
    clock = VirtualClock()
    world = sandbox(clock)
    one, two = world.for_account(account(1)), world.for_account(account(2))
    before = clock.now()
    clock.advance(10)
    attempt = clock.now()
    assert (await one.send_message(ALICE, "hi", 1)).kind is OutcomeKind.SUCCESS

    assert await one.was_message_sent(ALICE, attempt) is True
    assert await one.was_message_sent(ALICE, before) is True
    assert await one.was_message_sent(ALICE, attempt + timedelta(seconds=1)) is False  # an older send
    assert await two.was_message_sent(ALICE, before) is False  # another account's dialog
    assert await one.was_message_sent(Target.from_key("u:bob"), before) is False


async def test_an_invite_or_a_refused_message_is_no_message() -> None:
    clock = VirtualClock()
    since = clock.now()
    restricted = sandbox(clock, SandboxProfile(privacy_restricted_rate=1.0)).for_account(account(1))
    assert (await restricted.send_message(ALICE, "hi", 1)).kind is OutcomeKind.PRIVACY_RESTRICTED
    assert await restricted.was_message_sent(ALICE, since) is False

    inviting = sandbox(clock).for_account(account(1))
    assert (await inviting.invite_to_group(ALICE, "-100123")).kind is OutcomeKind.SUCCESS
    assert await inviting.was_message_sent(ALICE, since) is False


async def test_a_dead_account_or_a_person_nobody_finds_cannot_tell() -> None:
    clock = VirtualClock()
    since = clock.now()
    dead = sandbox(clock, SandboxProfile(dead_accounts=frozenset({"acc-1"}))).for_account(account(1))
    assert await dead.was_message_sent(ALICE, since) is None

    nobody = sandbox(clock, SandboxProfile(not_found_rate=1.0)).for_account(account(1))
    assert await nobody.was_message_sent(ALICE, since) is None


async def test_another_process_on_the_same_record_knows_what_a_killed_one_sent(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    clock = VirtualClock()
    since = clock.now()
    killed = sandbox(clock, record=JsonlRecord(path)).for_account(account(1))
    later = sandbox(clock, record=JsonlRecord(path)).for_account(account(1))  # built before the send
    assert (await killed.send_message(ALICE, "hi", 1)).kind is OutcomeKind.SUCCESS

    assert await later.was_message_sent(ALICE, since) is True
    assert (
        await sandbox(clock, record=JsonlRecord(path)).for_account(account(1)).was_message_sent(ALICE, since)
        is True
    )
