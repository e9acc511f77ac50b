"""The Telegram adapter on a real socket: the installed kurigram ``Client``, unchanged, against the
loopback MTProto server (``tests.mtproto.server``), reached through a session the real
``telethon`` made and ``sessions.py`` converted. The server decrypts only what was encrypted
with that session's auth key, so every passing test here proves the conversion end to end.

Each test shows one failure of issue 19 on the wire; each fails on the adapter before its fix.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrogram
import pytest
from pyrogram import raw

from invite.engine.actions import message_random_id
from invite.kernel.clock import VirtualClock
from invite.platforms.base import AccountData, AccountEvent, Outcome, OutcomeKind, Target, TargetKind
from invite.platforms.telegram import TelegramFactory, TelegramStrategy
from invite.platforms.telegram.sessions import parse_session
from tests.mtproto.server import MTProtoServer
from tests.mtproto.world import DATE, ME_ID, OWNER_ID, basic_group, rpc_error
from tests.unit.telegram.conftest import telethon_session, wire_key

ALICE = Target(TargetKind.USERNAME, "alice")
PHONE = "+79991234567"
CALL_TIMEOUT = 1.0


@pytest.fixture
def world(loopback: MTProtoServer) -> MTProtoServer:
    loopback.world.add_person(5001, username="alice")
    loopback.world.add_person(5002, phone=PHONE)
    loopback.world.add_group(900, username="group")
    return loopback


async def closed(server: MTProtoServer, account: AccountData) -> None:
    """Once the server has seen the account's socket close: none open, never two at once."""
    key = wire_key(account)
    for _ in range(100):
        if server.open_now[key] == 0:
            break
        await asyncio.sleep(0.01)
    assert server.open_now[key] == 0, "a connection stayed open on the account's key"
    assert server.most_at_once[key] == 1, "the account's key was connected twice at once"


@pytest.fixture
async def wired(
    world: MTProtoServer, wire_account: AccountData, wire_factory: Callable[..., TelegramFactory]
) -> AsyncIterator[TelegramStrategy]:
    """A strategy connected over the wire; closed at the end with no connection left behind."""
    strategy = wire_factory(call_timeout_seconds=CALL_TIMEOUT).for_account(wire_account)
    outcome = await strategy.initialize_client(wire_account)
    assert outcome == Outcome(OutcomeKind.SUCCESS, detail=f"connected as user {ME_ID}")
    yield strategy
    await strategy.close()
    await closed(world, wire_account)
    assert world.world.unexpected == []


# --- 1. the real client on the wire -------------------------------------------------------------
async def test_the_installed_client_speaks_mtproto_through_a_converted_telethon_session(
    wired: TelegramStrategy, world: MTProtoServer, wire_account: AccountData
) -> None:
    since = datetime.now(UTC)
    world.world.now = int(time.time())  # Telegram dates the messages sent from here on
    assert parse_session(wire_account.session).address == ("127.0.0.1", world.port)

    assert await wired.send_message(ALICE, "Hello Alice", 11) == Outcome(OutcomeKind.SUCCESS)
    assert await wired.invite_to_group(ALICE, "@group") == Outcome(
        OutcomeKind.SUCCESS, detail="added; in the group's member list"
    )
    assert await wired.check_invite_right("@group") == Outcome(OutcomeKind.SUCCESS, detail="creator")
    assert await wired.was_message_sent(ALICE, since) is True

    [sent] = world.calls(raw.functions.messages.SendMessage)
    assert (sent.message, sent.random_id) == ("Hello Alice", 11)
    assert world.connects[wire_key(wire_account)] == 1
    # the protocol as Telegram speaks it, all of it read by the client: a new session, the salt
    # corrected (the client starts with 0), pongs, the Config gzip_packed, several in a container
    assert {"new_session_created", "bad_server_salt", "pong", "gzip_packed", "msg_container"} <= set(
        world.sent
    )


# --- 2.1 close() leaves no connection ----------------------------------------------------------
def watchdog_every_fifth_of_a_second(**options: Any) -> pyrogram.Client:
    """The installed Client, with its updates watchdog firing at once instead of after 15 min."""
    client = pyrogram.Client(**options)
    client.UPDATES_WATCHDOG_INTERVAL = 0.2  # type: ignore[assignment]  # an int in kurigram
    return client


async def test_close_leaves_no_connection_even_after_a_failed_updates_watchdog(
    world: MTProtoServer, wire_account: AccountData, wire_factory: Callable[..., TelegramFactory]
) -> None:
    # kurigram's watchdog asks updates.getState; when that fails, Client.stop raised before it
    # disconnected, and the socket stayed up on the account's key
    world.world.script(raw.functions.updates.GetState, rpc_error(400, "STATE_BROKEN"))
    factory = wire_factory(client_factory=watchdog_every_fifth_of_a_second)
    strategy = factory.for_account(wire_account)
    assert (await strategy.initialize_client(wire_account)).kind is OutcomeKind.SUCCESS
    await asyncio.sleep(0.6)

    await strategy.close()

    await closed(world, wire_account)
    # the next holder of the key connects once the last one has gone, never beside it
    successor = factory.for_account(wire_account)
    assert (await successor.initialize_client(wire_account)).kind is OutcomeKind.SUCCESS
    await successor.close()
    await closed(world, wire_account)
    assert world.connects[wire_key(wire_account)] == 2


# --- 2.2 a lost answer never sends twice ------------------------------------------------------
async def test_a_lost_answer_is_settled_by_the_same_random_id_and_delivered_once(
    wired: TelegramStrategy, world: MTProtoServer, wire_account: AccountData
) -> None:
    random_id = message_random_id(uuid.uuid4(), uuid.uuid4())
    world.lose_answer(raw.functions.messages.SendMessage)  # carried out; the socket drops before the answer

    outcome = await wired.send_message(ALICE, "Hello", random_id)
    later = await wired.send_message(ALICE, "Hello", random_id)  # any later attempt: same id

    # not TRANSIENT (which sent it again under a new id): asked again under the same one
    assert outcome == later == Outcome(OutcomeKind.SUCCESS, detail="RANDOM_ID_DUPLICATE")
    assert [m.random_id for m in world.world.sent_messages] == [random_id]  # delivered once
    assert [m.random_id for m in world.calls(raw.functions.messages.SendMessage)] == [random_id] * 3
    assert world.connects[wire_key(wire_account)] == 2  # kurigram reconnected after the drop


async def test_a_send_whose_answers_never_come_is_of_unknown_fate(
    wired: TelegramStrategy, world: MTProtoServer
) -> None:
    world.delay(raw.functions.messages.SendMessage, 60)

    outcome = await wired.send_message(ALICE, "Hello", 77)

    assert outcome == Outcome(
        OutcomeKind.DELIVERY_UNKNOWN, detail="no answer to the send: network: TimeoutError"
    )


def test_the_random_id_belongs_to_the_person_in_the_task() -> None:
    task, person, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    same = {message_random_id(task, person) for _ in range(3)}

    assert len(same) == 1
    assert message_random_id(task, other) not in same
    assert message_random_id(uuid.uuid4(), person) not in same
    assert all(-(2**63) <= value < 2**63 for value in same)  # Telegram's random_id is a long


# --- 2.3 no writable working directory needed --------------------------------------------------
async def test_an_unknown_error_is_read_once_without_a_writable_working_directory(
    wired: TelegramStrategy, world: MTProtoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # nothing can be written here, not even by root
    world.world.script(raw.functions.messages.SendMessage, rpc_error(400, "SOMETHING_NEW_7"))

    outcome = await wired.send_message(ALICE, "Hello", 5)

    assert outcome == Outcome(OutcomeKind.TRANSIENT, detail="SOMETHING_NEW_X")
    assert len(world.calls(raw.functions.messages.SendMessage)) == 1  # not resent ten times


# --- 2.5 a dead auth key ---------------------------------------------------------------------
DEAD_KEY = Outcome(
    OutcomeKind.ACCOUNT_DEAD,
    detail="AuthKeyNotFound: transport error -404",
    event=AccountEvent.AUTH_KEY_ERROR,
)


async def test_an_auth_key_telegram_does_not_know_is_a_dead_account_at_connect(
    world: MTProtoServer, wire_account: AccountData, wire_factory: Callable[..., TelegramFactory]
) -> None:
    world.kill_key(wire_key(wire_account))
    strategy = wire_factory().for_account(wire_account)
    started = time.monotonic()

    outcome = await strategy.initialize_client(wire_account)

    assert outcome == DEAD_KEY
    assert time.monotonic() - started < 5  # not the 30 s connect timeout
    await closed(world, wire_account)


async def test_an_auth_key_that_dies_mid_campaign_is_a_dead_account(
    wired: TelegramStrategy, world: MTProtoServer, wire_account: AccountData
) -> None:
    world.kill_key(wire_key(wire_account))

    assert await wired.invite_to_group(ALICE, "@group") == DEAD_KEY
    assert world.transport_errors >= 1


# --- 2.6 a FloodWait at connect -----------------------------------------------------------------
async def test_a_flood_wait_at_connect_keeps_the_account_away_until_it_is_over(
    world: MTProtoServer, wire_account: AccountData, wire_factory: Callable[..., TelegramFactory]
) -> None:
    clock = VirtualClock()
    factory = wire_factory(clock=clock)
    world.world.script(raw.functions.users.GetFullUser, rpc_error(420, "FLOOD_WAIT_120"))

    first = await factory.for_account(wire_account).initialize_client(wire_account)
    clock.advance(60)
    inside = await factory.for_account(wire_account).initialize_client(wire_account)
    clock.advance(61)
    del world.world.scripted[raw.functions.users.GetFullUser]
    after = factory.for_account(wire_account)
    over = await after.initialize_client(wire_account)
    await after.close()

    assert first == Outcome(OutcomeKind.FLOOD_WAIT, 120.0, "FLOOD_WAIT_X", event=AccountEvent.FLOOD_WAIT)
    assert inside.kind is OutcomeKind.FLOOD_WAIT
    assert inside.seconds == pytest.approx(60.0)
    assert over.kind is OutcomeKind.SUCCESS
    assert world.connects[wire_key(wire_account)] == 2  # none inside the wait
    await closed(world, wire_account)


# --- 2.7 the errors that were missing -------------------------------------------------------------
@pytest.mark.parametrize(
    ("function", "code", "message", "expected"),
    [
        (
            raw.functions.messages.SendMessage,
            420,
            "FROZEN_METHOD_INVALID",
            Outcome(
                OutcomeKind.ACCOUNT_DEAD, detail="FROZEN_METHOD_INVALID", event=AccountEvent.USER_DEACTIVATED
            ),
        ),
        (
            raw.functions.messages.SendMessage,
            403,
            "ALLOW_PAYMENT_REQUIRED_10",
            Outcome(OutcomeKind.PRIVACY_RESTRICTED, detail="ALLOW_PAYMENT_REQUIRED_X"),
        ),
        (
            raw.functions.messages.SendMessage,
            400,
            "MESSAGE_TOO_LONG",
            Outcome(OutcomeKind.CHAT_UNAVAILABLE, detail="MESSAGE_TOO_LONG"),
        ),
        (
            raw.functions.channels.InviteToChannel,
            403,
            "CHAT_ADMIN_INVITE_REQUIRED",
            Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail="CHAT_ADMIN_INVITE_REQUIRED"),
        ),
        (
            raw.functions.channels.InviteToChannel,
            400,
            "BOTS_TOO_MUCH",
            Outcome(OutcomeKind.TARGET_UNAVAILABLE, detail="BOTS_TOO_MUCH"),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_the_errors_that_were_missing_have_their_meaning(
    wired: TelegramStrategy, world: MTProtoServer, function: type, code: int, message: str, expected: Outcome
) -> None:
    world.world.script(function, rpc_error(code, message))

    if function is raw.functions.messages.SendMessage:
        outcome = await wired.send_message(ALICE, "Hello", 9)
    else:
        outcome = await wired.invite_to_group(ALICE, "@group")

    assert outcome == expected
    assert len(world.calls(function)) == 1


# --- 2.8 phantom adds ---------------------------------------------------------------------------
async def test_inviting_a_current_member_is_already_member_not_a_new_invite(
    wired: TelegramStrategy, world: MTProtoServer
) -> None:
    world.world.members[900] = {5001}  # Telegram answers such an invite with no error and no update

    outcome = await wired.invite_to_group(ALICE, "@group")

    assert outcome == Outcome(
        OutcomeKind.ALREADY_MEMBER, detail="already a member: Telegram's answer added no one"
    )
    [asked] = world.calls(raw.functions.channels.GetParticipant)
    assert asked.participant.user_id == 5001


async def test_an_invite_telegram_answers_but_does_not_carry_out_is_not_counted(
    wired: TelegramStrategy, world: MTProtoServer
) -> None:
    nothing = raw.types.messages.InvitedUsers(
        updates=raw.types.Updates(updates=[], users=[], chats=[], date=DATE, seq=0), missing_invitees=[]
    )
    world.world.script(raw.functions.channels.InviteToChannel, nothing)

    outcome = await wired.invite_to_group(ALICE, "@group")

    assert outcome.kind is OutcomeKind.TARGET_UNAVAILABLE
    assert "not in the group" in outcome.detail


# --- 2.9 phones ------------------------------------------------------------------------------------
async def test_a_phone_already_among_the_contacts_is_not_imported_again(
    wired: TelegramStrategy, world: MTProtoServer
) -> None:
    world.world.contacts.add(5002)

    assert await wired.send_message(Target(TargetKind.PHONE, PHONE), "Hello", 3) == Outcome(
        OutcomeKind.SUCCESS
    )
    assert world.calls(raw.functions.contacts.ImportContacts) == []
    assert world.calls(raw.functions.contacts.DeleteContacts) == []  # the owner's contact stays


# --- 2.10 the right to invite --------------------------------------------------------------------
async def test_a_plain_member_of_a_basic_group_may_invite(
    wired: TelegramStrategy, world: MTProtoServer
) -> None:
    chat_id = world.world.add_basic_group(77)
    world.world.basic_group_role = raw.types.ChatParticipant(user_id=ME_ID, inviter_id=OWNER_ID, date=DATE)
    world.world.dialog_pages = [[basic_group(77)]]

    outcome = await wired.check_invite_right(str(chat_id))

    assert outcome == Outcome(OutcomeKind.SUCCESS, detail="member; the group lets members add people")


# --- 2.11 no call waits forever ----------------------------------------------------------------------
async def test_a_silent_server_holds_an_action_no_longer_than_the_call_timeout(
    wired: TelegramStrategy, world: MTProtoServer
) -> None:
    world.delay(raw.functions.contacts.ResolveUsername, 60)
    started = time.monotonic()

    outcome = await wired.invite_to_group(ALICE, "@group")

    assert outcome == Outcome(OutcomeKind.TRANSIENT, detail="network: TimeoutError")
    assert time.monotonic() - started < CALL_TIMEOUT + 1.5  # kurigram alone: 15 s a try, ten tries


# --- 2.12 IPv6 ------------------------------------------------------------------------------------------
async def test_an_ipv6_session_connects_over_ipv6(wire_factory: Callable[..., TelegramFactory]) -> None:
    server = MTProtoServer(host="::1")
    try:
        await server.start()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    key = os.urandom(256)
    server.add_key(key)
    account = AccountData(
        id="acc-v6", user_id="42", session=telethon_session(address="::1", port=server.port, key=key)
    )
    strategy = wire_factory().for_account(account)
    try:
        assert (await strategy.initialize_client(account)).kind is OutcomeKind.SUCCESS
        assert parse_session(account.session).test_mode is False
    finally:
        await strategy.close()
        await closed(server, account)
        await server.close()


def test_ipv6_test_dc_sessions_are_test_dc_sessions() -> None:
    for address in ("2001:b28:f23d:f001::e", "2001:67c:4e8:f002::e", "2001:b28:f23d:f003::e"):
        assert parse_session(telethon_session(2, address, 80)).test_mode is True
    assert parse_session(telethon_session(2, "2001:67c:4e8:f002::a", 443)).test_mode is False
