"""The sandbox learns invite links as Telegram's one-use links behave: made, sent in a message,
used (or not) by the person after a while, read back, revoked; and people who refuse invites
for privacy but accept messages, whom such links are for."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import msgspec
import pytest

from invite.kernel.clock import VirtualClock
from invite.platforms.base import AccountData, Outcome, OutcomeKind, RateLimits, Target
from invite.platforms.sandbox import (
    ActionKind,
    MemoryRecord,
    SandboxFactory,
    SandboxProfile,
    SandboxStrategy,
    sends_per_target,
)

LIMITS = RateLimits(daily_quota=40, daily_quota_with_link=10, min_pause_seconds=15.0)
ONE = AccountData(id="acc-1", user_id="tenant-1")
GROUP = "-1001234567890"
DAY = timedelta(days=1)
EVERYONE_JOINS = SandboxProfile(link_join_rate=1.0)
LINK = re.compile(r"^https://t\.me/\+[A-Za-z0-9_-]{16}$")


def world(
    profile: SandboxProfile = EVERYONE_JOINS,
    record: MemoryRecord | None = None,
    clock: VirtualClock | None = None,
) -> tuple[SandboxFactory, VirtualClock]:
    clock = clock or VirtualClock()
    return SandboxFactory(clock, limits=LIMITS, profile=profile, seed=5, record=record), clock


async def link(strategy: SandboxStrategy, expires_at: datetime) -> str:
    made = await strategy.create_invite_link(GROUP, expires_at)
    assert made.outcome == Outcome(OutcomeKind.SUCCESS)
    assert made.link is not None
    assert made.link.expires_at == expires_at
    return made.link.url


async def send(strategy: SandboxStrategy, person: str, url: str, random_id: int = 1) -> None:
    text = f"Join us: {url}"
    assert (await strategy.send_message(Target.from_key(person), text, random_id)).kind is OutcomeKind.SUCCESS


async def test_links_look_like_telegrams_and_each_one_is_new_and_recorded() -> None:
    factory, clock = world()
    strategy = factory.for_account(ONE)
    urls = [await link(strategy, clock.now() + DAY) for _ in range(3)]

    assert all(LINK.match(url) for url in urls)
    assert len(set(urls)) == 3
    made = [a for a in factory.record.actions if a.action is ActionKind.LINK]  # type: ignore[attr-defined]
    assert [(a.link_url, a.group_id, a.expires_at) for a in made] == [
        (u, GROUP, clock.now() + DAY) for u in urls
    ]
    assert sends_per_target(made) == {}  # nobody got anything
    # the same seed, account and count make the same link: a restarted process agrees
    again, _ = world()
    assert await link(again.for_account(ONE), clock.now() + DAY) == urls[0]


async def test_a_person_sent_a_link_joins_through_it_after_a_while() -> None:
    factory, clock = world()
    strategy = factory.for_account(ONE)
    url = await link(strategy, clock.now() + DAY)
    sent = clock.now()
    await send(strategy, "u:alice", url)

    assert (await strategy.link_joins(GROUP, [url])).joins == []  # not yet
    await clock.sleep(2 * 3600)
    answer = await strategy.link_joins(GROUP, [url])

    assert answer.outcome == Outcome(OutcomeKind.SUCCESS)
    [join] = answer.joins
    assert (join.url, join.keys) == (url, ("u:alice",))
    assert sent + timedelta(minutes=5) <= join.at <= sent + timedelta(hours=2)
    assert (await strategy.link_joins("-100999", [url])).joins == []  # another group's links
    # a member now: an invite is answered as Telegram answers one of a member
    invited = await strategy.invite_to_group(Target.from_key("u:alice"), GROUP)
    assert (invited.kind, invited.detail) == (OutcomeKind.ALREADY_MEMBER, "USER_ALREADY_PARTICIPANT")


async def test_link_join_rate_is_the_share_of_people_sent_a_link_who_use_it() -> None:
    factory, clock = world(SandboxProfile(link_join_rate=0.3))
    strategy = factory.for_account(ONE)
    urls = []
    for n in range(400):
        url = await link(strategy, clock.now() + DAY)
        await send(strategy, f"u:person{n}", url, random_id=n)
        urls.append(url)
    await clock.sleep(3 * 3600)

    joins = (await strategy.link_joins(GROUP, urls)).joins

    assert len(joins) / 400 == pytest.approx(0.3, abs=0.06)
    assert [j.at for j in joins] == sorted(j.at for j in joins)


async def test_one_link_lets_one_person_in() -> None:
    factory, clock = world()
    strategy = factory.for_account(ONE)
    url = await link(strategy, clock.now() + DAY)
    await send(strategy, "u:alice", url, random_id=1)
    await send(strategy, "u:bob", url, random_id=2)
    await clock.sleep(3 * 3600)

    [join] = (await strategy.link_joins(GROUP, [url])).joins

    loser = ({"u:alice", "u:bob"} - set(join.keys)).pop()
    assert (await strategy.invite_to_group(Target.from_key(loser), GROUP)).kind is OutcomeKind.SUCCESS


async def test_nobody_joins_through_a_link_revoked_or_expired_before_they_open_it() -> None:
    factory, clock = world(SandboxProfile(link_join_rate=1.0, link_join_after_seconds=(3600.0, 3600.0)))
    strategy = factory.for_account(ONE)
    revoked = await link(strategy, clock.now() + DAY)
    expiring = await link(strategy, clock.now() + timedelta(minutes=30))
    kept = await link(strategy, clock.now() + DAY)
    for n, (person, url) in enumerate([("u:a", revoked), ("u:b", expiring), ("u:c", kept)]):
        await send(strategy, person, url, random_id=n)
    await clock.sleep(1800)
    assert await strategy.revoke_invite_link(GROUP, revoked) == Outcome(OutcomeKind.SUCCESS)
    await clock.sleep(3600)

    assert [j.keys for j in (await strategy.link_joins(GROUP, [revoked, expiring, kept])).joins] == [("u:c",)]
    # revoked after the join: the join stands
    assert await strategy.revoke_invite_link(GROUP, kept) == Outcome(OutcomeKind.SUCCESS)
    assert len((await strategy.link_joins(GROUP, [kept])).joins) == 1


async def test_revoking_a_link_the_world_does_not_have_is_done_and_records_nothing() -> None:
    factory, _ = world()

    outcome = await factory.for_account(ONE).revoke_invite_link(GROUP, "https://t.me/+nothing")

    assert outcome.kind is OutcomeKind.SUCCESS
    assert factory.record.actions == []  # type: ignore[attr-defined]


async def test_a_second_replica_sees_the_links_the_joins_and_the_revokes() -> None:
    record = MemoryRecord()
    first, clock = world(record=record)
    second, _ = world(record=record, clock=clock)
    url = await link(first.for_account(ONE), clock.now() + DAY)
    late = await link(first.for_account(ONE), clock.now() + DAY)
    await send(second.for_account(ONE), "u:alice", url, random_id=1)  # the other replica sends it
    await clock.sleep(3 * 3600)

    joins = (await second.for_account(ONE).link_joins(GROUP, [url])).joins
    assert joins == (await first.for_account(ONE).link_joins(GROUP, [url])).joins
    assert [j.keys for j in joins] == [("u:alice",)]

    assert (await second.for_account(ONE).revoke_invite_link(GROUP, late)).kind is OutcomeKind.SUCCESS
    await send(first.for_account(ONE), "u:bob", late, random_id=2)
    await clock.sleep(3 * 3600)
    assert (await first.for_account(ONE).link_joins(GROUP, [late])).joins == []


async def test_links_are_refused_as_telegram_refuses_them() -> None:
    profile = SandboxProfile(groups_without_right=frozenset({GROUP}), dead_accounts=frozenset({"acc-2"}))
    factory, clock = world(profile)
    strategy = factory.for_account(ONE)

    no_right = await strategy.create_invite_link(GROUP, clock.now() + DAY)
    past = await strategy.create_invite_link("-100777", clock.now())
    dead = await factory.for_account(AccountData(id="acc-2", user_id="t")).create_invite_link(
        "-100777", clock.now() + DAY
    )

    assert (no_right.outcome.kind, no_right.outcome.detail, no_right.link) == (
        OutcomeKind.NO_ADMIN_RIGHT,
        "CHAT_ADMIN_REQUIRED",
        None,
    )
    assert (past.outcome.kind, past.outcome.detail) == (OutcomeKind.CHAT_UNAVAILABLE, "EXPIRE_DATE_INVALID")
    assert dead.outcome.kind is OutcomeKind.ACCOUNT_DEAD


async def test_an_account_in_a_flood_wait_makes_no_link_and_reads_no_joins() -> None:
    factory, clock = world(
        SandboxProfile(link_join_rate=1.0, flood_wait_rate=1.0, flood_wait_seconds=(90.0,))
    )
    strategy = factory.for_account(ONE)

    made = await strategy.create_invite_link(GROUP, clock.now() + DAY)
    joins = await strategy.link_joins(GROUP, [])

    assert (made.outcome.kind, made.outcome.seconds, made.link) == (OutcomeKind.FLOOD_WAIT, 90.0, None)
    assert (joins.outcome.kind, joins.outcome.seconds) == (OutcomeKind.FLOOD_WAIT, 90.0)


async def test_people_who_refuse_invites_for_privacy_still_accept_messages() -> None:
    factory, _ = world(SandboxProfile(invite_privacy_rate=1.0))
    strategy = factory.for_account(ONE)
    alice = Target.from_key("u:alice")

    invited = await strategy.invite_to_group(alice, GROUP)

    assert (invited.kind, invited.detail) == (OutcomeKind.PRIVACY_RESTRICTED, "USER_PRIVACY_RESTRICTED")
    assert (await strategy.send_message(alice, "hello", 1)).kind is OutcomeKind.SUCCESS
    assert (await strategy.add_to_contacts(alice)).kind is OutcomeKind.SUCCESS


async def test_a_person_who_refuses_invites_and_joins_through_a_link_is_a_member() -> None:
    factory, clock = world(SandboxProfile(invite_privacy_rate=1.0, link_join_rate=1.0))
    strategy = factory.for_account(ONE)
    alice = Target.from_key("u:alice")
    assert (await strategy.invite_to_group(alice, GROUP)).kind is OutcomeKind.PRIVACY_RESTRICTED
    await send(strategy, alice.key, await link(strategy, clock.now() + DAY))
    await clock.sleep(3 * 3600)

    assert (await strategy.invite_to_group(alice, GROUP)).kind is OutcomeKind.ALREADY_MEMBER


def test_the_profiles_and_their_checks() -> None:
    zero, realistic = SandboxProfile.zero(), SandboxProfile.realistic()
    assert (zero.invite_privacy_rate, zero.link_join_rate) == (0.0, 0.0)
    assert realistic.invite_privacy_rate > 0
    assert realistic.link_join_rate > 0
    # the invite refusals of the realistic profile stay what they were
    assert realistic.privacy_restricted_rate + realistic.invite_privacy_rate == pytest.approx(0.12)
    parsed = SandboxProfile.parse('{"invite_privacy_rate": 0.2, "link_join_rate": 0.5}')
    assert (parsed.invite_privacy_rate, parsed.link_join_rate) == (0.2, 0.5)
    with pytest.raises(ValueError, match="invite_privacy_rate"):
        SandboxProfile(privacy_restricted_rate=0.6, invite_privacy_rate=0.5)
    with pytest.raises(ValueError, match="link_join_after_seconds"):
        SandboxProfile(link_join_after_seconds=(600.0, 60.0))
    with pytest.raises(msgspec.ValidationError):
        SandboxProfile.parse('{"link_join_rate": 1.5}')


async def test_a_join_is_dated_between_the_profiles_bounds() -> None:
    factory, clock = world(SandboxProfile(link_join_rate=1.0, link_join_after_seconds=(60.0, 120.0)))
    strategy = factory.for_account(ONE)
    url = await link(strategy, clock.now() + DAY)
    sent = clock.now()
    await send(strategy, "u:alice", url)
    await clock.sleep(120)

    [join] = (await strategy.link_joins(GROUP, [url])).joins
    assert (join.url, join.keys) == (url, ("u:alice",))
    assert sent + timedelta(seconds=60) <= join.at <= sent + timedelta(seconds=120)
