"""TelegramStrategy's one-use invite links on a real socket: the installed kurigram ``Client``
against the loopback MTProto server, whose world makes links, lets people join through them
(``World.join_by_link``) and revokes them as Telegram does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from pyrogram import raw

from invite.platforms.base import (
    AccountData,
    AccountEvent,
    InviteLink,
    LinkJoin,
    LinkJoins,
    LinkMade,
    Outcome,
    OutcomeKind,
)
from invite.platforms.telegram import TelegramFactory, TelegramStrategy
from tests.mtproto.server import MTProtoServer
from tests.mtproto.world import DATE, rpc_error

GROUP = "@group"
CHANNEL_ID = 900
DAY = 86_400
SUCCESS = Outcome(OutcomeKind.SUCCESS)


def at(date: int) -> datetime:
    return datetime.fromtimestamp(date, UTC)


@pytest.fixture
async def wired(
    loopback: MTProtoServer, wire_account: AccountData, wire_factory: Callable[..., TelegramFactory]
) -> AsyncIterator[TelegramStrategy]:
    world = loopback.world
    world.add_person(5001, username="Alice")
    world.add_person(5002, username="bob")
    world.add_person(5003, phone="79990001122")  # shows their number
    world.add_group(CHANNEL_ID, username="group")
    strategy = wire_factory(call_timeout_seconds=2.0).for_account(wire_account)
    assert (await strategy.initialize_client(wire_account)).kind is OutcomeKind.SUCCESS
    yield strategy
    await strategy.close()
    assert world.unexpected == []


async def made(strategy: TelegramStrategy, expires: int = DATE + DAY) -> str:
    answer = await strategy.create_invite_link(GROUP, at(expires))
    assert answer.outcome == SUCCESS
    assert answer.link is not None
    return answer.link.url


async def test_a_link_is_made_for_one_person_until_the_expiry_asked_for(
    wired: TelegramStrategy, loopback: MTProtoServer
) -> None:
    answer = await wired.create_invite_link(GROUP, at(DATE + DAY))

    [sent] = loopback.calls(raw.functions.messages.ExportChatInvite)
    assert (sent.usage_limit, sent.expire_date) == (1, DATE + DAY)
    assert isinstance(sent.peer, raw.types.InputPeerChannel)
    assert sent.peer.channel_id == CHANNEL_ID
    [url] = loopback.world.invite_links
    assert url.startswith("https://t.me/+")
    assert answer == LinkMade(SUCCESS, InviteLink(url, at(DATE + DAY)))


async def test_the_joins_are_read_back_with_every_key_of_the_person_oldest_first(
    wired: TelegramStrategy, loopback: MTProtoServer
) -> None:
    world = loopback.world
    first, second, unused = await made(wired), await made(wired), await made(wired)
    assert world.join_by_link(second, 5003, DATE + 300)
    assert world.join_by_link(first, 5001, DATE + 600)
    assert not world.join_by_link(first, 5002, DATE + 900)  # one use: Bob can't follow Alice in

    answer = await wired.link_joins(GROUP, [first, second, unused])

    assert answer == LinkJoins(
        [
            LinkJoin(second, ("id:5003", "p:+79990001122"), at(DATE + 300)),
            LinkJoin(first, ("id:5001", "u:alice"), at(DATE + 600)),
        ],
        SUCCESS,
    )
    assert len(loopback.calls(raw.functions.messages.GetChatInviteImporters)) == 3  # one per link


async def test_an_expired_link_lets_nobody_in(wired: TelegramStrategy, loopback: MTProtoServer) -> None:
    url = await made(wired, expires=DATE + 3600)

    assert not loopback.world.join_by_link(url, 5001, DATE + 3600)
    assert (await wired.link_joins(GROUP, [url])).joins == []


async def test_a_revoked_link_is_revoked_on_telegram_and_lets_nobody_in(
    wired: TelegramStrategy, loopback: MTProtoServer
) -> None:
    url = await made(wired)

    assert await wired.revoke_invite_link(GROUP, url) == SUCCESS

    [sent] = loopback.calls(raw.functions.messages.EditExportedChatInvite)
    assert (sent.link, sent.revoked) == (url, True)
    assert not loopback.world.join_by_link(url, 5001, DATE + 60)


async def test_revoking_a_link_telegram_no_longer_has_is_done(
    wired: TelegramStrategy, loopback: MTProtoServer
) -> None:
    outcome = await wired.revoke_invite_link(GROUP, "https://t.me/+gone")

    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.detail.startswith("INVITE_HASH_EXPIRED")
    assert loopback.errors_sent == ["INVITE_HASH_EXPIRED"]


async def test_a_link_telegram_no_longer_has_has_nobody_and_the_others_are_read(
    wired: TelegramStrategy, loopback: MTProtoServer
) -> None:
    url = await made(wired)
    assert loopback.world.join_by_link(url, 5002, DATE + 60)

    answer = await wired.link_joins(GROUP, ["https://t.me/+gone", url])

    assert answer == LinkJoins([LinkJoin(url, ("id:5002", "u:bob"), at(DATE + 60))], SUCCESS)


async def test_a_flood_wait_on_export_is_the_answer_with_its_seconds(
    wired: TelegramStrategy, loopback: MTProtoServer
) -> None:
    loopback.world.script(raw.functions.messages.ExportChatInvite, rpc_error(420, "FLOOD_WAIT_300"))

    answer = await wired.create_invite_link(GROUP, at(DATE + DAY))

    assert answer == LinkMade(Outcome(OutcomeKind.FLOOD_WAIT, 300.0, "FLOOD_WAIT_X", AccountEvent.FLOOD_WAIT))
    assert len(loopback.calls(raw.functions.messages.ExportChatInvite)) == 1  # not slept through


async def test_a_flood_wait_while_reading_joins_is_the_answer(
    wired: TelegramStrategy, loopback: MTProtoServer
) -> None:
    url = await made(wired)
    loopback.world.join_by_link(url, 5001, DATE + 60)
    loopback.world.script(raw.functions.messages.GetChatInviteImporters, rpc_error(420, "FLOOD_WAIT_42"))

    answer = await wired.link_joins(GROUP, [url])

    assert (answer.joins, answer.outcome.kind, answer.outcome.seconds) == ([], OutcomeKind.FLOOD_WAIT, 42)


async def test_an_account_that_is_not_an_admin_may_not_make_links(
    wired: TelegramStrategy, loopback: MTProtoServer
) -> None:
    loopback.world.script(raw.functions.messages.ExportChatInvite, rpc_error(400, "CHAT_ADMIN_REQUIRED"))

    answer = await wired.create_invite_link(GROUP, at(DATE + DAY))

    assert answer == LinkMade(Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail="CHAT_ADMIN_REQUIRED"))


async def test_an_expiry_in_the_past_is_refused_as_for_every_link(wired: TelegramStrategy) -> None:
    answer = await wired.create_invite_link(GROUP, at(DATE - 60))

    assert answer == LinkMade(Outcome(OutcomeKind.CHAT_UNAVAILABLE, detail="EXPIRE_DATE_INVALID"))


async def test_without_a_client_nothing_is_asked(
    wire_factory: Callable[..., TelegramFactory], wire_account: AccountData, loopback: MTProtoServer
) -> None:
    strategy = wire_factory().for_account(wire_account)

    link = await strategy.create_invite_link(GROUP, at(DATE + DAY))
    joins = await strategy.link_joins(GROUP, ["https://t.me/+x"])
    revoked = await strategy.revoke_invite_link(GROUP, "https://t.me/+x")

    assert {link.outcome.kind, joins.outcome.kind, revoked.kind} == {OutcomeKind.TRANSIENT}
    assert loopback.delivered == []


async def test_a_basic_group_gets_its_links_the_same_way(
    wired: TelegramStrategy, loopback: MTProtoServer
) -> None:
    world = loopback.world
    chat_id = world.add_basic_group(77)
    world.dialog_pages = [[world.basic_groups[77]]]  # met in the account's dialogs
    group = str(chat_id)

    answer = await wired.create_invite_link(group, at(DATE + DAY))
    assert answer.link is not None
    assert world.join_by_link(answer.link.url, 5002, DATE + 120)

    [sent] = loopback.calls(raw.functions.messages.ExportChatInvite)
    assert sent.peer == raw.types.InputPeerChat(chat_id=77)
    joins = await wired.link_joins(group, [answer.link.url])
    assert joins == LinkJoins([LinkJoin(answer.link.url, ("id:5002", "u:bob"), at(DATE + 120))], SUCCESS)
    assert await wired.revoke_invite_link(group, answer.link.url) == SUCCESS
