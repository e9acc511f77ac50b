"""TelegramStrategy.read_replies: what people wrote to the account, from its dialogs, as typed answers.

Against the stand-in server (the installed kurigram above ``Session.send``), and once over a real
socket on the loopback MTProto server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from pyrogram import raw

from invite.platforms.base import AccountData, Outcome, OutcomeKind, Replies, Reply, Target, TargetKind
from invite.platforms.telegram import TelegramFactory, TelegramStrategy
from invite.platforms.telegram.strategy import DIALOGS_PAGE
from tests.mtproto.server import MTProtoServer
from tests.mtproto.world import World, user
from tests.unit.telegram.standin import DATE, TelegramServer, rpc_error

ALICE_KEYS = ("id:5001", "u:alice")
SUCCESS = Outcome(OutcomeKind.SUCCESS)


def at(date: int) -> datetime:
    return datetime.fromtimestamp(date, UTC)


def people(world: World) -> World:
    world.add_person(5001, username="Alice")
    world.add_person(5002, username="bob")
    return world


@pytest.fixture
def world(server: TelegramServer) -> TelegramServer:
    people(server)
    return server


async def test_the_incoming_messages_since_then_are_read_with_every_key_of_the_person(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.add_message(5001, out=True, date=DATE - 3600)
    world.add_message(5001, out=False, date=DATE - 3000, text="an old answer")  # before the poll
    world.add_message(5001, out=True, date=DATE + 10)
    world.add_message(5001, out=False, date=DATE + 20, text="Stop")
    world.add_message(5002, out=True, date=DATE + 5)  # Bob never answered
    world.add_message(5002, out=False, date=DATE + 30, text="Who is this?")

    answer = await strategy.read_replies(at(DATE))

    assert answer == Replies(
        [
            Reply(ALICE_KEYS, at(DATE + 20), "Stop"),
            Reply(("id:5002", "u:bob"), at(DATE + 30), "Who is this?"),
        ],
        SUCCESS,
    )


async def test_dialogs_last_active_before_the_poll_are_not_opened(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.add_message(5002, out=False, date=DATE - 600)  # Bob's dialog is older than the poll
    world.add_message(5001, out=False, date=DATE + 60)

    answer = await strategy.read_replies(at(DATE))

    assert [r.keys for r in answer.replies] == [ALICE_KEYS]
    assert [h.peer.user_id for h in world.called(raw.functions.messages.GetHistory)] == [5001]


async def test_the_dialogs_are_paged_back_to_the_poll(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    for n in range(DIALOGS_PAGE + 20):  # more people wrote than one page holds
        world.add_person(6000 + n)
        world.add_message(6000 + n, out=False, date=DATE + 1 + n)

    answer = await strategy.read_replies(at(DATE))

    assert len(answer.replies) == DIALOGS_PAGE + 20
    assert len(world.called(raw.functions.messages.GetDialogs)) == 2


async def test_bots_and_the_account_itself_are_not_replies(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.people[7001] = user(7001, username="somebot", bot=True)
    world.add_message(7001, out=False, date=DATE + 5)
    world.add_message(5001, out=False, date=DATE + 6)

    answer = await strategy.read_replies(at(DATE))

    assert [r.keys for r in answer.replies] == [ALICE_KEYS]


async def test_a_reply_from_someone_reached_by_phone_names_the_phone_target(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    phone = "+79990001122"
    world.add_person(5003)  # Telegram does not show their number
    world.phones[phone] = 5003
    assert await strategy.send_message(Target(TargetKind.PHONE, phone), "hello", 7) == SUCCESS
    world.add_message(5003, out=False, date=DATE + 50, text="ok")

    answer = await strategy.read_replies(at(DATE))

    assert [r.keys for r in answer.replies] == [("id:5003", f"p:{phone}")]


@pytest.mark.parametrize("function", [raw.functions.messages.GetDialogs, raw.functions.messages.GetHistory])
async def test_a_flood_wait_while_polling_is_the_answer_not_slept_through(
    strategy: TelegramStrategy, world: TelegramServer, function: type
) -> None:
    world.add_message(5001, out=False, date=DATE + 60)
    world.script(function, rpc_error(420, "FLOOD_WAIT_240"))

    answer = await strategy.read_replies(at(DATE))

    assert answer.replies == []
    assert (answer.outcome.kind, answer.outcome.seconds) == (OutcomeKind.FLOOD_WAIT, 240)
    assert len(world.called(function)) == 1


async def test_a_dead_session_while_polling_is_the_answer(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.script(raw.functions.messages.GetDialogs, rpc_error(401, "AUTH_KEY_UNREGISTERED"))

    answer = await strategy.read_replies(at(DATE))

    assert (answer.replies, answer.outcome.kind) == ([], OutcomeKind.ACCOUNT_DEAD)


async def test_without_a_client_nothing_is_read(
    make_factory: Callable[..., TelegramFactory], account: AccountData, world: TelegramServer
) -> None:
    answer = await make_factory().for_account(account).read_replies(at(DATE))

    assert (answer.replies, answer.outcome.kind) == ([], OutcomeKind.TRANSIENT)
    assert world.calls == []


def test_a_reply_keeps_its_text_out_of_its_repr() -> None:
    assert "Stop" not in repr(Reply(ALICE_KEYS, at(DATE), "Stop"))


# --- on the wire --------------------------------------------------------------------------------
@pytest.fixture
async def wired(
    loopback: MTProtoServer, wire_account: AccountData, wire_factory: Callable[..., TelegramFactory]
) -> AsyncIterator[TelegramStrategy]:
    people(loopback.world)
    strategy = wire_factory(call_timeout_seconds=2.0).for_account(wire_account)
    assert (await strategy.initialize_client(wire_account)).kind is OutcomeKind.SUCCESS
    yield strategy
    await strategy.close()
    assert loopback.world.unexpected == []


async def test_replies_are_read_over_the_wire(wired: TelegramStrategy, loopback: MTProtoServer) -> None:
    loopback.world.add_message(5001, out=True, date=DATE)
    loopback.world.add_message(5001, out=False, date=DATE + 30, text="Не пишите мне")

    answer = await wired.read_replies(at(DATE))

    assert answer == Replies([Reply(ALICE_KEYS, at(DATE + 30), "Не пишите мне")], SUCCESS)
