"""The sandbox Telegram driver and the sandbox accounts provider."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from invite.kernel.clock import VirtualClock
from invite.kernel.settings import ROOT, Settings, SettingsError
from invite.platforms.base import (
    AccountData,
    AccountEvent,
    AccountsProvider,
    LeasePurpose,
    Outcome,
    OutcomeKind,
    RateLimits,
    StrategyFactory,
    Target,
    UsageStats,
)
from invite.platforms.sandbox import (
    RANDOM_ID_DUPLICATE,
    ActionKind,
    JsonlRecord,
    MemoryRecord,
    SandboxAccounts,
    SandboxFactory,
    SandboxProfile,
    SandboxRecord,
    read_record,
    sends_per_target,
)

LIMITS = RateLimits(daily_quota=40, daily_quota_with_link=10, min_pause_seconds=15.0)
GROUP = "-1001234567890"

RANDOM_IDS = itertools.count(1)  # a fresh random_id for every message these tests send


def account(n: int = 1) -> AccountData:
    return AccountData(id=f"acc-{n}", user_id="tenant-1")


def people(count: int) -> list[Target]:
    return [Target.from_key(f"u:person{i}") for i in range(count)]


def factory(
    profile: SandboxProfile | None = None,
    *,
    seed: int = 7,
    clock: VirtualClock | None = None,
    record: SandboxRecord | None = None,
) -> SandboxFactory:
    return SandboxFactory(clock or VirtualClock(), limits=LIMITS, profile=profile, seed=seed, record=record)


MIXED = SandboxProfile(
    not_found_rate=0.1,
    privacy_restricted_rate=0.2,
    already_member_rate=0.1,
    flood_wait_rate=0.05,
    transient_rate=0.05,
)


async def test_zero_profile_always_succeeds_and_never_sleeps() -> None:
    clock = VirtualClock()
    start = clock.now()
    strategies: StrategyFactory = factory(SandboxProfile.zero(), clock=clock)
    strategy = strategies.for_account(account())
    assert strategy.driver == strategies.driver == "sandbox"
    outcomes = [await strategy.invite_to_group(t, GROUP) for t in people(50)]
    outcomes += [await strategy.send_message(t, "hi", next(RANDOM_IDS)) for t in people(50)]
    outcomes += [await strategy.add_to_contacts(t) for t in people(50)]
    assert {o.kind for o in outcomes} == {OutcomeKind.SUCCESS}
    assert clock.now() == start
    assert strategy.get_rate_limits() == LIMITS


async def test_answers_depend_on_seed_account_and_target_not_on_call_order() -> None:
    # one account per person: a FloodWait refuses the rest of an account's calls for a while
    pairs = [(account(n), target) for n, target in enumerate(people(300))]

    async def answers(
        sandbox: SandboxFactory, order: list[tuple[AccountData, Target]]
    ) -> dict[str, OutcomeKind]:
        return {t.key: (await sandbox.for_account(a).invite_to_group(t, GROUP)).kind for a, t in order}

    first = await answers(factory(MIXED), pairs)
    assert await answers(factory(MIXED), pairs[::-1]) == first
    assert len(set(first.values())) == 6
    assert await answers(factory(MIXED, seed=8), pairs) != first


async def test_rates_come_out_near_the_profile() -> None:
    sandbox = factory(MIXED)
    kinds = Counter(
        [
            (await sandbox.for_account(account(n)).invite_to_group(t, GROUP)).kind
            for n, t in enumerate(people(4000))
        ]
    )
    share = {kind: count / 4000 for kind, count in kinds.items()}
    # attempt-level answers first (10 %), then the person's own properties on what is left
    assert share[OutcomeKind.FLOOD_WAIT] == pytest.approx(0.05, abs=0.015)
    assert share[OutcomeKind.TRANSIENT] == pytest.approx(0.05, abs=0.015)
    assert share[OutcomeKind.NOT_FOUND] == pytest.approx(0.9 * 0.1, abs=0.015)
    assert share[OutcomeKind.PRIVACY_RESTRICTED] == pytest.approx(0.9 * 0.2, abs=0.02)
    assert share[OutcomeKind.ALREADY_MEMBER] == pytest.approx(0.9 * 0.1, abs=0.015)
    assert share[OutcomeKind.SUCCESS] == pytest.approx(0.9 * 0.6, abs=0.03)


async def test_a_persons_privacy_holds_for_every_account_and_every_retry() -> None:
    sandbox = factory(SandboxProfile(privacy_restricted_rate=0.5, transient_rate=0.3))
    one, two = sandbox.for_account(account(1)), sandbox.for_account(account(2))
    restricted = None
    for target in people(40):
        if (await one.send_message(target, "hello", next(RANDOM_IDS))).kind is OutcomeKind.PRIVACY_RESTRICTED:
            restricted = target
            break
    assert restricted is not None
    retries = [(await acc.send_message(restricted, "hello", next(RANDOM_IDS))).kind for acc in (one, two) * 5]
    assert set(retries) <= {OutcomeKind.PRIVACY_RESTRICTED, OutcomeKind.TRANSIENT}
    assert OutcomeKind.PRIVACY_RESTRICTED in retries


async def test_a_person_invited_once_is_already_a_member_the_second_time() -> None:
    sandbox = factory()
    one, two = sandbox.for_account(account(1)), sandbox.for_account(account(2))
    person = Target.from_key("u:alice")
    assert (await one.invite_to_group(person, GROUP)).kind is OutcomeKind.SUCCESS
    assert (await two.invite_to_group(person, GROUP)).kind is OutcomeKind.ALREADY_MEMBER
    assert (await two.invite_to_group(person, "-100999")).kind is OutcomeKind.SUCCESS


async def test_a_second_message_to_the_same_person_is_sent_and_counted_twice() -> None:
    record = MemoryRecord()
    strategy = factory(record=record).for_account(account())
    alice, bob = Target.from_key("u:alice"), Target.from_key("id:42")
    for target in (alice, alice, bob):
        assert (await strategy.send_message(target, "Hello!", next(RANDOM_IDS))).kind is OutcomeKind.SUCCESS
    counts = sends_per_target(record.actions, ActionKind.MESSAGE)
    assert sorted(counts.values()) == [1, 2]
    assert [a.attempt for a in record.actions if a.target_key == "u:alice"] == [0, 1]
    assert b"Hello" not in msgspec.json.encode(record.actions)


async def test_a_message_under_a_random_id_already_sent_is_not_sent_again(tmp_path: Path) -> None:
    path = tmp_path / "record.jsonl"
    clock = VirtualClock()
    one = factory(clock=clock, record=JsonlRecord(path)).for_account(account(1))
    alice = Target.from_key("u:alice")

    first = await one.send_message(alice, "Hello!", 4242)
    again = await one.send_message(alice, "Hello!", 4242)
    # another process on the same record (a replica, or this one restarted after a crash)
    restarted = factory(clock=clock, record=JsonlRecord(path)).for_account(account(1))
    after_restart = await restarted.send_message(alice, "Hello!", 4242)
    other_account = (
        await factory(clock=clock, record=JsonlRecord(path))
        .for_account(account(2))
        .send_message(alice, "Hello!", 4242)
    )

    assert first == Outcome(OutcomeKind.SUCCESS)
    assert again == after_restart == Outcome(OutcomeKind.SUCCESS, detail=RANDOM_ID_DUPLICATE)
    assert other_account == Outcome(OutcomeKind.SUCCESS)  # Telegram keeps random_ids per sender
    sent = read_record(path)
    assert [(a.account_id, a.random_id) for a in sent] == [("acc-1", 4242), ("acc-2", 4242)]
    assert sorted(sends_per_target(sent, ActionKind.MESSAGE).values()) == [2]  # one from each account


async def test_a_duplicate_found_after_the_latency_is_not_sent_either() -> None:
    clock = VirtualClock()
    record = MemoryRecord()
    made = factory(SandboxProfile(latency_seconds=(1.0, 1.0)), clock=clock, record=record)
    alice = Target.from_key("u:alice")
    # two attempts under one random_id in flight at once (a hung worker and its successor)
    first, second = await asyncio.gather(
        made.for_account(account()).send_message(alice, "Hi", 7),
        made.for_account(account()).send_message(alice, "Hi", 7),
    )

    assert sorted([first.detail, second.detail]) == ["", RANDOM_ID_DUPLICATE]
    assert len(record.actions) == 1


async def test_flood_wait_refuses_the_account_until_the_wait_is_over() -> None:
    clock = VirtualClock()
    sandbox = factory(SandboxProfile(flood_wait_rate=0.3, flood_wait_seconds=(120.0,)), clock=clock)
    strategy, other = sandbox.for_account(account(1)), sandbox.for_account(account(2))
    first = None
    for target in people(50):
        outcome = await strategy.invite_to_group(target, GROUP)
        if outcome.kind is OutcomeKind.FLOOD_WAIT:
            first = outcome
            break
    assert first is not None
    assert first.seconds == 120.0
    clock.advance(100)
    again = await strategy.invite_to_group(Target.from_key("u:someone_new"), GROUP)
    assert again.kind is OutcomeKind.FLOOD_WAIT
    assert again.seconds == pytest.approx(20.0)
    still_waiting = "FLOOD_WAIT_X (still waiting)"
    assert again.detail == still_waiting
    assert (await other.invite_to_group(people(1)[0], "-100777")).detail != still_waiting
    clock.advance(21)
    assert (await strategy.invite_to_group(people(1)[0], "-100555")).detail != still_waiting


async def test_flood_wait_range_gives_whole_seconds_within_it() -> None:
    profile = SandboxProfile(flood_wait_rate=1.0, flood_wait_range=(10.0, 20.0))
    sandbox = factory(profile)
    waits = {
        (await sandbox.for_account(account(n)).invite_to_group(Target.from_key("u:x"), GROUP)).seconds
        for n in range(30)
    }
    assert all(10 <= w <= 20 and w == int(w) for w in waits)
    assert len(waits) > 3


async def test_peer_flood_comes_after_k_answered_actions_of_that_account() -> None:
    sandbox = factory(SandboxProfile(peer_flood_after=3))
    strategy, other = sandbox.for_account(account(1)), sandbox.for_account(account(2))
    kinds = [(await strategy.send_message(t, "hi", next(RANDOM_IDS))).kind for t in people(6)]
    assert kinds == [OutcomeKind.SUCCESS] * 3 + [OutcomeKind.PEER_FLOOD] * 3
    assert (await other.send_message(people(1)[0], "hi", next(RANDOM_IDS))).kind is OutcomeKind.SUCCESS


async def test_an_account_dies_after_n_actions_and_stays_dead() -> None:
    sandbox = factory(SandboxProfile(death_after=2))
    strategy = sandbox.for_account(account(1))
    kinds = [(await strategy.invite_to_group(t, GROUP)).kind for t in people(4)]
    assert kinds == [OutcomeKind.SUCCESS] * 2 + [OutcomeKind.ACCOUNT_DEAD] * 2
    assert (await strategy.initialize_client(account(1))).kind is OutcomeKind.ACCOUNT_DEAD
    assert (await strategy.check_invite_right(GROUP)).kind is OutcomeKind.ACCOUNT_DEAD
    assert (await sandbox.for_account(account(2)).initialize_client(account(2))).kind is OutcomeKind.SUCCESS


async def test_a_death_rate_kills_some_accounts_for_good() -> None:
    sandbox = factory(SandboxProfile(death_rate=0.05))
    dead = 0
    for n in range(20):
        strategy = sandbox.for_account(account(n))
        kinds = [(await strategy.send_message(t, "hi", next(RANDOM_IDS))).kind for t in people(20)]
        if OutcomeKind.ACCOUNT_DEAD in kinds:
            dead += 1
            first = kinds.index(OutcomeKind.ACCOUNT_DEAD)
            assert set(kinds[first:]) == {OutcomeKind.ACCOUNT_DEAD}
    assert 0 < dead < 20


async def test_dead_accounts_and_groups_without_the_right() -> None:
    sandbox = factory(
        SandboxProfile(dead_accounts=frozenset({"acc-2"}), groups_without_right=frozenset({"-100666"}))
    )
    alive, dead = sandbox.for_account(account(1)), sandbox.for_account(account(2))
    assert (await alive.initialize_client(account(1))).kind is OutcomeKind.SUCCESS
    assert (await dead.initialize_client(account(2))).kind is OutcomeKind.ACCOUNT_DEAD
    assert (await alive.check_invite_right(GROUP)).kind is OutcomeKind.SUCCESS
    no_right = await alive.check_invite_right("-100666")
    assert no_right.kind is OutcomeKind.NO_ADMIN_RIGHT
    assert no_right.detail == "CHAT_ADMIN_REQUIRED"
    assert (
        await dead.send_message(Target.from_key("u:bob"), "hi", next(RANDOM_IDS))
    ).kind is OutcomeKind.ACCOUNT_DEAD


async def test_a_frozen_account_connects_and_reads_but_every_action_is_refused() -> None:
    sandbox = factory(SandboxProfile(frozen_accounts=frozenset({"acc-1"})))
    frozen = sandbox.for_account(account(1))
    assert (await frozen.initialize_client(account(1))).kind is OutcomeKind.SUCCESS  # read-only
    for answer in (
        await frozen.check_invite_right(GROUP),
        await frozen.invite_to_group(Target.from_key("u:ann"), GROUP),
        await frozen.send_message(Target.from_key("u:bob"), "hi", next(RANDOM_IDS)),
    ):
        # as the Telegram adapter's error table says of a frozen account
        assert (answer.kind, answer.detail) == (OutcomeKind.ACCOUNT_DEAD, "FROZEN_METHOD_INVALID")
    assert (await frozen.initialize_client(account(1))).kind is OutcomeKind.SUCCESS  # still frozen, not dead
    assert await frozen.was_message_sent(Target.from_key("u:bob"), datetime(2026, 1, 1, tzinfo=UTC)) is False


async def test_latency_is_slept_on_the_injected_clock() -> None:
    clock = VirtualClock()
    start = clock.now()
    record = MemoryRecord()
    strategy = factory(SandboxProfile(latency_seconds=(2.0, 4.0)), clock=clock, record=record).for_account(
        account()
    )
    for target in people(5):
        before = clock.now()
        await strategy.send_message(target, "hi", next(RANDOM_IDS))
        assert 2.0 <= (clock.now() - before).total_seconds() <= 4.0
    assert record.actions[0].at > start
    assert [a.at for a in record.actions] == sorted(a.at for a in record.actions)


async def test_the_jsonl_record_brings_a_restarted_sandbox_back_to_the_same_state(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.jsonl"
    clock = VirtualClock()
    profile = SandboxProfile(death_after=3, flood_wait_rate=0.0)
    before = factory(profile, clock=clock, record=JsonlRecord(path))
    alice = Target.from_key("u:alice")
    one = before.for_account(account(1))
    assert (await one.invite_to_group(alice, GROUP)).kind is OutcomeKind.SUCCESS
    await one.send_message(alice, "hi", next(RANDOM_IDS))
    await one.send_message(alice, "hi", next(RANDOM_IDS))
    assert (await one.send_message(alice, "hi", next(RANDOM_IDS))).kind is OutcomeKind.ACCOUNT_DEAD

    after = factory(profile, clock=clock, record=JsonlRecord(path))
    assert (
        await after.for_account(account(2)).invite_to_group(alice, GROUP)
    ).kind is OutcomeKind.ALREADY_MEMBER
    assert (
        await after.for_account(account(1)).initialize_client(account(1))
    ).kind is OutcomeKind.ACCOUNT_DEAD
    actions = read_record(path)
    assert len(actions) == 5
    assert [a.attempt for a in actions if a.action is ActionKind.MESSAGE] == [0, 1, 2]
    assert sends_per_target(actions)[(ActionKind.MESSAGE, actions[1].destination, "u:alice")] == 2


async def test_two_replicas_on_one_record_see_each_others_actions(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    clock = VirtualClock()
    replica_a = factory(clock=clock, record=JsonlRecord(path)).for_account(account(1))
    replica_b = factory(clock=clock, record=JsonlRecord(path)).for_account(account(2))
    bob = Target.from_key("u:bob")
    assert (await replica_a.invite_to_group(bob, GROUP)).kind is OutcomeKind.SUCCESS
    assert (await replica_b.invite_to_group(bob, GROUP)).kind is OutcomeKind.ALREADY_MEMBER
    assert [a.attempt for a in read_record(path)] == [0, 1]


def test_a_line_cut_short_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    record = JsonlRecord(path)
    good = msgspec.json.encode(
        {
            "at": "2026-01-05T09:00:00Z",
            "account_id": "acc-1",
            "action": "message",
            "target_key": "u:a",
            "attempt": 0,
            "outcome": "success",
        }
    )
    path.write_bytes(good + b"\n" + good[:20])
    assert len(read_record(path)) == 1
    actions, position = record.read_since(0)
    assert len(actions) == 1
    assert position == len(good) + 1
    record.close()


_WRITER = """
import asyncio, sys
from invite.kernel.clock import RealClock
from invite.platforms.base import AccountData, RateLimits, Target
from invite.platforms.sandbox import JsonlRecord, SandboxFactory

async def main() -> None:
    sandbox = SandboxFactory(RealClock(), limits=RateLimits(40, 10, 15.0), record=JsonlRecord(sys.argv[1]))
    strategy = sandbox.for_account(AccountData(id="acc-1", user_id="t"))
    for i in range(25):
        await strategy.send_message(Target.from_key(f"u:p{i}"), "hi", i + 1)
    print("sent", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_a_process_killed_with_sigkill_leaves_every_action_in_the_record(tmp_path: Path) -> None:
    path = tmp_path / "killed.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"sent\n"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    counts = sends_per_target(read_record(path))
    assert len(counts) == 25
    assert set(counts.values()) == {1}


def test_profiles_parse_from_a_name_or_json_and_refuse_nonsense() -> None:
    assert SandboxProfile.parse("zero") == SandboxProfile.zero()
    assert SandboxProfile.parse(" realistic ") == SandboxProfile.realistic()
    parsed = SandboxProfile.parse('{"flood_wait_rate": 0.2, "peer_flood_after": 5, "dead_accounts": ["a"]}')
    assert parsed.flood_wait_rate == 0.2
    assert parsed.peer_flood_after == 5
    assert parsed.dead_accounts == frozenset({"a"})
    for bad in (
        '{"flood_wait_rate": 1.5}',
        '{"not_found_rate": 0.6, "privacy_restricted_rate": 0.6}',
        '{"latency_seconds": [3, 1]}',
        '{"flood_wait_seconds": []}',
        '{"no_such_field": 1}',
        "fast",
    ):
        with pytest.raises(msgspec.DecodeError):
            SandboxProfile.parse(bad)
    with pytest.raises(ValueError, match="transient_rate"):
        SandboxProfile(flood_wait_rate=0.7, transient_rate=0.7)


async def test_from_settings_takes_limits_profile_seed_and_record(tmp_path: Path) -> None:
    path = tmp_path / "from-settings.jsonl"
    settings = Settings(
        daily_quota=30,
        daily_quota_with_link=5,
        min_pause_seconds=20.0,
        sandbox_profile='{"peer_flood_after": 1}',
        sandbox_record_path=str(path),
        sandbox_seed=3,
    )
    sandbox = SandboxFactory.from_settings(settings, VirtualClock())
    assert isinstance(sandbox.record, JsonlRecord)
    strategy = sandbox.for_account(account())
    assert strategy.get_rate_limits() == RateLimits(30, 5, 20.0)
    assert (
        await strategy.send_message(Target.from_key("u:a"), "x", next(RANDOM_IDS))
    ).kind is OutcomeKind.SUCCESS
    assert (
        await strategy.send_message(Target.from_key("u:b"), "x", next(RANDOM_IDS))
    ).kind is OutcomeKind.PEER_FLOOD
    assert len(read_record(path)) == 2
    assert SandboxFactory.from_settings(Settings(), VirtualClock()).profile == SandboxProfile.realistic()
    with pytest.raises(SettingsError, match="SANDBOX_PROFILE"):
        SandboxFactory.from_settings(Settings(sandbox_profile='{"transient_rate": 2}'), VirtualClock())


async def test_sandbox_accounts_give_each_tenant_stable_accounts_and_remember_what_they_heard() -> None:
    sandbox = SandboxAccounts(3)
    provider: AccountsProvider = sandbox
    accounts = await provider.list_accounts("42")
    assert [a.id for a in accounts] == ["sandbox-42-1", "sandbox-42-2", "sandbox-42-3"]
    assert [a.label for a in accounts] == ["Sandbox account 1", "Sandbox account 2", "Sandbox account 3"]
    assert accounts == await provider.list_accounts("42")
    leased = await provider.lease("sandbox-42-2", "42", LeasePurpose.INVITE_CAMPAIGN)
    assert leased is not None
    assert leased.session == ""
    assert leased.user_id == "42"
    assert leased.lease_seconds is None  # never runs out: renewing just finds it again
    assert await provider.renew("sandbox-42-2", "42", LeasePurpose.INVITE_CAMPAIGN) == leased
    assert (
        await provider.lease("sandbox-42-2", "43", LeasePurpose.INVITE_CAMPAIGN) is None
    )  # not that tenant's
    await provider.release("sandbox-42-2", "42", UsageStats(invites_sent=3))
    await provider.report("sandbox-42-1", "42", AccountEvent.FLOOD_WAIT, "FloodWait 30 s")
    assert sandbox.leases == [("sandbox-42-2", "42", LeasePurpose.INVITE_CAMPAIGN)]
    assert sandbox.releases[0].usage.invites_sent == 3
    assert sandbox.reports[0].event is AccountEvent.FLOOD_WAIT
    assert len(await SandboxAccounts.from_settings(Settings()).list_accounts("42")) == 5
