"""TelegramStrategy against the stand-in server: connecting, finding people and groups, acting."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from pyrogram import raw

from invite.kernel.settings import Settings
from invite.platforms.base import (
    AccountData,
    AccountEvent,
    Outcome,
    OutcomeKind,
    RateLimits,
    Target,
    TargetKind,
)
from invite.platforms.refs import chat_ref
from invite.platforms.telegram import TelegramFactory, TelegramStrategy
from invite.platforms.telegram.strategy import HISTORY_PAGE, HISTORY_PAGES, UNKNOWN_USER_ID
from tests.unit.telegram.conftest import API_HASH, API_ID, LIMITS, telethon_session
from tests.unit.telegram.standin import (
    DATE,
    ME_ID,
    OWNER_ID,
    TelegramServer,
    basic_group,
    channel,
    marked,
    rpc_error,
)

SUCCESS = Outcome(OutcomeKind.SUCCESS)
INVITED = Outcome(OutcomeKind.SUCCESS, detail="added; in the group's member list")
ALICE = Target(TargetKind.USERNAME, "alice")
PHONE = "+79991234567"


@pytest.fixture
def world(server: TelegramServer) -> TelegramServer:
    server.add_person(5001, username="alice")
    server.add_person(5002, phone=PHONE)
    server.add_group(900, username="group")
    return server


# --- connecting -------------------------------------------------------------------------------
async def test_a_telethon_session_connects_with_its_dc_and_key_and_learns_the_user_id(
    make_factory: Callable[..., TelegramFactory], server: TelegramServer
) -> None:
    key = os.urandom(256)
    account = AccountData(id="acc-7", user_id="42", session=telethon_session(4, "149.154.167.91", 443, key))
    strategy = make_factory().for_account(account)

    outcome = await strategy.initialize_client(account)

    assert outcome == Outcome(OutcomeKind.SUCCESS, detail=f"connected as user {ME_ID}")
    [client] = server.clients
    assert (await client.storage.dc_id(), await client.storage.auth_key()) == (4, key)
    assert await client.storage.user_id() == ME_ID
    assert client.storage.in_memory
    assert (await client.storage.server_address(), await client.storage.port()) == ("149.154.167.91", 443)
    assert client.init_kwargs | {"no_updates": True, "sleep_threshold": 0} == client.init_kwargs
    assert all(isinstance(r, raw.functions.InvokeWithoutUpdates) for r in server.requests)
    await strategy.close()


async def test_the_client_is_started_once_reused_and_stopped_on_close(
    strategy: TelegramStrategy, account: AccountData, world: TelegramServer
) -> None:
    assert await strategy.initialize_client(account) == Outcome(
        OutcomeKind.SUCCESS, detail="already connected"
    )
    assert await strategy.send_message(ALICE, "one", 101) == SUCCESS
    assert await strategy.send_message(ALICE, "two", 102) == SUCCESS
    assert (world.connects, len(world.clients)) == (1, 1)

    await strategy.close()

    assert world.sessions_stopped == 1
    assert not world.clients[0].is_connected
    assert await strategy.send_message(ALICE, "three", 103) == Outcome(
        OutcomeKind.TRANSIENT, detail="client not initialized"
    )


async def test_an_unreadable_session_is_left_out_not_dead_and_without_a_connection(
    make_factory: Callable[..., TelegramFactory], server: TelegramServer
) -> None:
    account = AccountData(id="acc-1", user_id="42", session="garbage")
    alerts = REGISTRY.get_sample_value("invite_integration_errors_total", {"service": "account_session"}) or 0

    outcome = await make_factory().for_account(account).initialize_client(account)

    # ours to fix, not the account's: never retired, nothing for the platform to hear
    assert outcome == Outcome(
        OutcomeKind.TRANSIENT, detail="invalid session: not a Telethon or Pyrogram session string"
    )
    assert outcome.event is None
    assert server.connects == 0
    # the metric behind the InviteIntegrationFailing alert: the reason is visible, not silent
    assert (
        REGISTRY.get_sample_value("invite_integration_errors_total", {"service": "account_session"})
        == alerts + 1
    )


async def test_a_revoked_session_is_a_dead_account_and_the_client_is_let_go(
    make_factory: Callable[..., TelegramFactory], account: AccountData, server: TelegramServer
) -> None:
    server.script(raw.functions.users.GetFullUser, rpc_error(401, "AUTH_KEY_UNREGISTERED"))

    outcome = await make_factory().for_account(account).initialize_client(account)

    assert outcome == Outcome(
        OutcomeKind.ACCOUNT_DEAD, detail="AUTH_KEY_UNREGISTERED", event=AccountEvent.AUTH_KEY_ERROR
    )
    assert not server.clients[0].is_connected


async def test_no_connection_is_transient(
    make_factory: Callable[..., TelegramFactory], account: AccountData, server: TelegramServer
) -> None:
    server.refuse_connect = ConnectionRefusedError("connection refused")

    outcome = await make_factory().for_account(account).initialize_client(account)

    assert outcome == Outcome(OutcomeKind.TRANSIENT, detail="network: ConnectionRefusedError")


async def test_a_connection_that_hangs_times_out_as_transient(
    make_factory: Callable[..., TelegramFactory], account: AccountData, server: TelegramServer
) -> None:
    async def hang(query: object) -> object:
        await asyncio.Event().wait()  # Telegram never answers
        raise AssertionError("unreachable")

    server.script(raw.functions.users.GetFullUser, hang)
    strategy = make_factory(connect_timeout_seconds=0.05).for_account(account)

    outcome = await strategy.initialize_client(account)

    assert outcome == Outcome(OutcomeKind.TRANSIENT, detail="network: TimeoutError")
    assert not server.clients[0].is_connected


async def test_cancelling_the_connection_lets_the_client_go(
    make_factory: Callable[..., TelegramFactory], account: AccountData, server: TelegramServer
) -> None:
    answering = asyncio.Event()

    async def hang(query: object) -> object:
        answering.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    server.script(raw.functions.users.GetFullUser, hang)
    connecting = asyncio.create_task(make_factory().for_account(account).initialize_client(account))
    await answering.wait()

    connecting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert not server.clients[0].is_connected


async def test_a_flood_wait_under_pyrogram_s_own_threshold_still_reaches_the_engine(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.script(raw.functions.messages.SendMessage, rpc_error(420, "FLOOD_WAIT_5"))

    outcome = await strategy.send_message(ALICE, "hello", 104)

    assert outcome == Outcome(
        OutcomeKind.FLOOD_WAIT, seconds=5.0, detail="FLOOD_WAIT_X", event=AccountEvent.FLOOD_WAIT
    )
    assert len(world.called(raw.functions.messages.SendMessage)) == 1  # not slept through and retried


# --- people ------------------------------------------------------------------------------------
async def test_a_username_is_resolved_and_invited(strategy: TelegramStrategy, world: TelegramServer) -> None:
    outcome = await strategy.invite_to_group(Target(TargetKind.USERNAME, "@Alice"), "@group")

    assert outcome == INVITED
    [invite] = world.called(raw.functions.channels.InviteToChannel)
    assert (invite.channel.channel_id, [u.user_id for u in invite.users]) == (900, [5001])
    assert invite.users[0].access_hash == world.people[5001].access_hash


async def test_a_username_nobody_has_is_not_found(strategy: TelegramStrategy, world: TelegramServer) -> None:
    outcome = await strategy.invite_to_group(Target(TargetKind.USERNAME, "nobody_here"), "@group")

    assert outcome == Outcome(OutcomeKind.NOT_FOUND, detail="USERNAME_NOT_OCCUPIED")
    assert world.called(raw.functions.channels.InviteToChannel) == []


async def test_a_groups_username_is_not_a_person(strategy: TelegramStrategy, world: TelegramServer) -> None:
    outcome = await strategy.send_message(Target(TargetKind.USERNAME, "group"), "hello", 105)

    assert outcome.kind is OutcomeKind.NOT_FOUND
    assert world.sent_messages == []


async def test_a_numeric_id_the_account_has_met_is_used(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    assert await strategy.send_message(ALICE, "first, by username", 106) == SUCCESS

    outcome = await strategy.send_message(Target(TargetKind.USER_ID, "5001"), "then by id", 107)

    assert outcome == SUCCESS
    assert [m.peer.user_id for m in world.sent_messages] == [5001, 5001]


async def test_a_numeric_id_the_account_never_met_says_so(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    outcome = await strategy.send_message(Target(TargetKind.USER_ID, "5002"), "hello", 108)

    assert outcome == Outcome(OutcomeKind.NOT_FOUND, detail=f"PEER_ID_INVALID: {UNKNOWN_USER_ID}")
    assert world.called(raw.functions.users.GetUsers)  # Pyrogram asked Telegram before giving up
    assert world.sent_messages == []


async def test_a_phone_is_imported_acted_on_and_the_contact_deleted(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    target = Target(TargetKind.PHONE, PHONE, {"first_name": "Boris", "last_name": "P"})

    outcome = await strategy.invite_to_group(target, "@group")

    assert outcome == INVITED
    [imported] = world.called(raw.functions.contacts.ImportContacts)
    assert [(c.phone, c.first_name, c.last_name) for c in imported.contacts] == [(PHONE, "Boris", "P")]
    [invite] = world.called(raw.functions.channels.InviteToChannel)
    assert invite.users[0].user_id == 5002
    assert world.deleted_contacts == [5002]
    assert world.contacts == set()


async def test_imported_contacts_are_kept_when_configured(
    make_factory: Callable[..., TelegramFactory], account: AccountData, world: TelegramServer
) -> None:
    strategy = make_factory(keep_imported_contacts=True).for_account(account)
    await strategy.initialize_client(account)

    assert await strategy.send_message(Target(TargetKind.PHONE, PHONE), "hello", 109) == SUCCESS

    assert world.deleted_contacts == []
    assert world.contacts == {5002}
    await strategy.close()


async def test_a_contact_the_account_already_had_is_never_deleted(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.contacts.add(5002)

    assert await strategy.send_message(Target(TargetKind.PHONE, PHONE), "hello", 110) == SUCCESS

    assert world.deleted_contacts == []
    assert world.contacts == {5002}


async def test_the_contact_is_deleted_even_when_the_action_fails(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.script(raw.functions.messages.SendMessage, rpc_error(403, "USER_PRIVACY_RESTRICTED"))

    outcome = await strategy.send_message(Target(TargetKind.PHONE, PHONE), "hello", 111)

    assert outcome == Outcome(OutcomeKind.PRIVACY_RESTRICTED, detail="USER_PRIVACY_RESTRICTED")
    assert world.deleted_contacts == [5002]


async def test_a_phone_telegram_does_not_import_is_not_found(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    outcome = await strategy.send_message(Target(TargetKind.PHONE, "+15550000000"), "hello", 112)

    assert outcome.kind is OutcomeKind.NOT_FOUND
    assert outcome.detail.startswith("phone not imported")
    assert world.sent_messages == []


async def test_a_phone_in_retry_contacts_rests_the_accounts_phone_imports(
    make_factory: Callable[..., TelegramFactory], account: AccountData, world: TelegramServer
) -> None:
    world.postponed_phones.add(PHONE)
    factory = make_factory(phone_import_rest_seconds=3600.0)
    strategy = factory.for_account(account)
    await strategy.initialize_client(account)

    first = await strategy.send_message(Target(TargetKind.PHONE, PHONE), "hello", 113)
    world.postponed_phones.clear()  # Telegram would take it now, but the account rests its imports
    again = await strategy.send_message(Target(TargetKind.PHONE, PHONE), "hello", 113)
    await strategy.close()
    next_lease = factory.for_account(account)  # the rest outlives the lease's strategy
    await next_lease.initialize_client(account)
    later = await next_lease.send_message(Target(TargetKind.PHONE, PHONE), "hello", 113)
    await next_lease.close()

    assert first.kind is OutcomeKind.TRANSIENT
    assert first.detail.startswith("retry_contacts: Telegram postponed this import; phone imports rest until")
    assert again.kind is later.kind is OutcomeKind.TRANSIENT
    assert again.detail.startswith("retry_contacts: phone imports rest until")
    assert len(world.called(raw.functions.contacts.ImportContacts)) == 1
    assert world.sent_messages == []


async def test_a_phone_among_the_accounts_contacts_is_not_imported_again(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.contacts.add(5002)  # the owner's own contact, under the name they gave it

    outcome = await strategy.send_message(Target(TargetKind.PHONE, PHONE, {"first_name": "X"}), "hello", 115)

    assert outcome == SUCCESS
    assert world.called(raw.functions.contacts.ImportContacts) == []
    assert [m.peer.user_id for m in world.sent_messages] == [5002]
    assert world.deleted_contacts == []


async def test_add_to_contacts_keeps_the_contact(strategy: TelegramStrategy, world: TelegramServer) -> None:
    assert await strategy.add_to_contacts(Target(TargetKind.PHONE, PHONE)) == SUCCESS
    assert (
        await strategy.add_to_contacts(Target(TargetKind.USERNAME, "alice", {"first_name": "Alice"}))
        == SUCCESS
    )

    [added] = world.called(raw.functions.contacts.AddContact)
    assert (added.id.user_id, added.first_name) == (5001, "Alice")
    assert world.contacts == {5001, 5002}
    assert world.deleted_contacts == []


# --- inviting and messaging --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("premium_would_allow_invite", "premium_required_for_pm", "reason"),
    [
        (True, None, "their privacy settings let only contacts and Premium users add them"),
        (
            None,
            True,
            "their privacy settings let only contacts add them, and only Premium users message them",
        ),
        (None, None, "their privacy settings keep them out"),
    ],
)
async def test_a_person_left_out_by_add_chat_members_is_privacy_restricted(
    strategy: TelegramStrategy,
    world: TelegramServer,
    premium_would_allow_invite: bool | None,
    premium_required_for_pm: bool | None,
    reason: str,
) -> None:
    world.missing_invitees = [
        raw.types.MissingInvitee(
            user_id=5001,
            premium_would_allow_invite=premium_would_allow_invite,
            premium_required_for_pm=premium_required_for_pm,
        )
    ]

    outcome = await strategy.invite_to_group(ALICE, "@group")

    assert outcome == Outcome(OutcomeKind.PRIVACY_RESTRICTED, detail=f"MISSING_INVITEE: not added, {reason}")


async def test_the_message_text_is_sent_as_is(strategy: TelegramStrategy, world: TelegramServer) -> None:
    text = "Hi **Alice**, see <b>https://example.com</b> __now__"

    assert await strategy.send_message(ALICE, text, 116) == SUCCESS

    [sent] = world.sent_messages
    assert (sent.message, sent.entities) == (text, None)


@pytest.mark.parametrize(
    ("group_id", "expected"),
    [
        ("@group", "group"),
        ("group", "group"),
        ("https://t.me/group", "group"),
        ("t.me/group/", "group"),
        ("-1001234567890", -1001234567890),
        ("https://t.me/+AbCdEf123", None),
        ("https://t.me/joinchat/AbCdEf", None),
        ("not a group!", None),
    ],
)
def test_group_references(group_id: str, expected: int | str | None) -> None:
    assert chat_ref(group_id) == expected


async def test_an_unknown_group_is_unavailable(strategy: TelegramStrategy, world: TelegramServer) -> None:
    outcome = await strategy.invite_to_group(ALICE, "@no_such_group")

    assert outcome == Outcome(
        OutcomeKind.CHAT_UNAVAILABLE, detail="USERNAME_NOT_OCCUPIED: this account can't find the group"
    )
    assert world.called(raw.functions.channels.InviteToChannel) == []


async def test_a_private_invite_link_is_unavailable(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    outcome = await strategy.invite_to_group(ALICE, "https://t.me/+AbCdEf123")

    assert outcome.kind is OutcomeKind.CHAT_UNAVAILABLE
    assert world.calls == [raw.functions.users.GetFullUser(id=raw.types.InputUserSelf())]


async def test_a_numeric_group_id_is_found_in_the_accounts_dialogs(
    strategy: TelegramStrategy, server: TelegramServer
) -> None:
    server.add_person(5001, username="alice")
    server.add_group(901)
    server.add_group(902)
    server.dialog_pages = [[server.groups[901]], [server.groups[902]]]

    outcome = await strategy.invite_to_group(ALICE, str(marked(902)))

    assert outcome == INVITED
    assert len(server.called(raw.functions.messages.GetDialogs)) == 2
    [invite] = server.called(raw.functions.channels.InviteToChannel)
    assert invite.channel.channel_id == 902


async def test_a_basic_group_is_found_by_id_and_invited_into_with_its_own_call(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    group_id = world.add_basic_group(321)
    world.missing_invitees = [raw.types.MissingInvitee(user_id=5001)]

    outcome = await strategy.invite_to_group(ALICE, str(group_id))

    assert outcome == Outcome(
        OutcomeKind.PRIVACY_RESTRICTED,
        detail="MISSING_INVITEE: not added, their privacy settings keep them out",
    )
    [added] = world.called(raw.functions.messages.AddChatUser)
    assert (added.chat_id, added.user_id.user_id) == (321, 5001)


async def test_a_numeric_group_id_not_in_the_dialogs_is_unavailable(
    strategy: TelegramStrategy, server: TelegramServer
) -> None:
    server.add_group(901)
    server.dialog_pages = [[server.groups[901]]]

    outcome = await strategy.check_invite_right(str(marked(999)))

    assert outcome == Outcome(
        OutcomeKind.CHAT_UNAVAILABLE, detail="PEER_ID_INVALID: this account can't find the group"
    )


# --- the admin check -----------------------------------------------------------------------------


def admin(rights: raw.types.ChatAdminRights) -> raw.types.ChannelParticipantAdmin:
    return raw.types.ChannelParticipantAdmin(
        user_id=ME_ID, promoted_by=OWNER_ID, date=1_700_000_000, is_self=True, admin_rights=rights
    )


@pytest.mark.parametrize(
    ("participant", "expected"),
    [
        (
            raw.types.ChannelParticipantCreator(user_id=ME_ID, admin_rights=raw.types.ChatAdminRights()),
            Outcome(OutcomeKind.SUCCESS, detail="creator"),
        ),
        (
            admin(raw.types.ChatAdminRights(invite_users=True)),
            Outcome(OutcomeKind.SUCCESS, detail="administrator with the right to invite"),
        ),
        (
            admin(raw.types.ChatAdminRights(ban_users=True)),
            Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail="administrator without the right to invite"),
        ),
        (
            raw.types.ChannelParticipantSelf(user_id=ME_ID, inviter_id=OWNER_ID, date=1_700_000_000),
            Outcome(OutcomeKind.SUCCESS, detail="member; the group lets members add people"),
        ),
    ],
    ids=["creator", "admin-with-invite", "admin-without-invite", "member"],
)
async def test_the_invite_right_is_read_from_the_accounts_own_membership(
    strategy: TelegramStrategy, world: TelegramServer, participant: object, expected: Outcome
) -> None:
    world.participant = participant

    assert await strategy.check_invite_right("@group") == expected

    [asked] = world.called(raw.functions.channels.GetParticipant)
    assert isinstance(asked.participant, raw.types.InputPeerSelf)


NO_INVITES = raw.types.ChatBannedRights(until_date=0, invite_users=True)
MEMBER_OF_CHANNEL = raw.types.ChannelParticipantSelf(user_id=ME_ID, inviter_id=OWNER_ID, date=DATE)


async def test_a_member_may_not_invite_where_the_groups_default_rights_forbid_it(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.participant = MEMBER_OF_CHANNEL
    world.groups[900] = channel(900, "group", default_banned_rights=NO_INVITES)

    outcome = await strategy.check_invite_right("@group")

    assert outcome == Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail="member; only admins may add people here")


async def test_a_member_of_a_broadcast_channel_may_not_invite(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.participant = MEMBER_OF_CHANNEL
    world.groups[900] = channel(900, "group", broadcast=True)

    outcome = await strategy.check_invite_right("@group")

    assert outcome == Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail="member; only admins may add people here")


@pytest.mark.parametrize(
    ("rights", "kind"), [(None, OutcomeKind.SUCCESS), (NO_INVITES, OutcomeKind.NO_ADMIN_RIGHT)]
)
async def test_any_member_of_a_basic_group_may_invite_unless_its_rights_forbid_it(
    strategy: TelegramStrategy, world: TelegramServer, rights: object, kind: OutcomeKind
) -> None:
    chat_id = world.add_basic_group(77)
    world.basic_groups[77] = basic_group(77, default_banned_rights=rights)
    world.basic_group_role = raw.types.ChatParticipant(user_id=ME_ID, inviter_id=OWNER_ID, date=DATE)
    world.dialog_pages = [[world.basic_groups[77]]]

    assert (await strategy.check_invite_right(str(chat_id))).kind is kind


@pytest.mark.parametrize("group_id", ["12345", "-1" + "0" * 20, "-2000000000000"])
def test_a_group_id_out_of_telegrams_ranges_or_a_persons_is_no_group(group_id: str) -> None:
    assert chat_ref(group_id) is None


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (400, "USER_NOT_PARTICIPANT", Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail="USER_NOT_PARTICIPANT")),
        (406, "CHANNEL_PRIVATE", Outcome(OutcomeKind.CHAT_UNAVAILABLE, detail="CHANNEL_PRIVATE")),
    ],
)
async def test_the_invite_right_when_the_group_shuts_the_account_out(
    strategy: TelegramStrategy, world: TelegramServer, code: int, message: str, expected: Outcome
) -> None:
    world.script(raw.functions.channels.GetParticipant, rpc_error(code, message))

    assert await strategy.check_invite_right("@group") == expected


# --- limits and the factory ----------------------------------------------------------------------
def test_the_providers_daily_limit_lowers_the_quota(make_factory: Callable[..., TelegramFactory]) -> None:
    factory = make_factory()

    assert factory.for_account(AccountData(id="a", user_id="1")).get_rate_limits() == LIMITS
    assert factory.for_account(AccountData(id="a", user_id="1", daily_limit=50)).get_rate_limits() == LIMITS
    assert factory.for_account(
        AccountData(id="a", user_id="1", daily_limit=30)
    ).get_rate_limits() == RateLimits(30, 10, LIMITS.min_pause_seconds)
    assert factory.for_account(
        AccountData(id="a", user_id="1", daily_limit=5)
    ).get_rate_limits() == RateLimits(5, 5, LIMITS.min_pause_seconds)


def test_the_factory_from_settings() -> None:
    settings = Settings(telegram_api_id=API_ID, telegram_api_hash=API_HASH, daily_quota=20)

    factory = TelegramFactory.from_settings(settings)

    assert factory.driver == "telegram"
    limits = factory.for_account(AccountData(id="a", user_id="1")).get_rate_limits()
    assert limits == RateLimits(20, settings.daily_quota_with_link, settings.min_pause_seconds)
    with pytest.raises(ValueError, match="TELEGRAM_API_ID"):
        TelegramFactory.from_settings(Settings())


# --- did a message go out? -------------------------------------------------------------------------
def at(date: int) -> datetime:
    return datetime.fromtimestamp(date, UTC)


async def test_a_message_the_account_sent_is_found_in_its_dialog(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.now = DATE + 100
    assert await strategy.send_message(ALICE, "hello", 114) == SUCCESS
    world.add_message(5001, out=False, date=DATE + 160)  # Alice answered

    assert await strategy.was_message_sent(ALICE, at(DATE + 100)) is True
    assert await strategy.was_message_sent(ALICE, at(DATE + 100 + 600)) is False
    [history, *_] = world.called(raw.functions.messages.GetHistory)
    assert history.peer.user_id == 5001


@pytest.mark.parametrize(
    ("sent_at", "expected"),
    [(DATE - 10, True), (DATE - 40, False)],
    ids=["within-the-clock-tolerance", "before-the-attempt"],
)
async def test_a_message_dated_a_little_before_the_attempt_still_counts(
    strategy: TelegramStrategy, world: TelegramServer, sent_at: int, expected: bool
) -> None:
    world.add_message(5001, out=True, date=sent_at)

    assert await strategy.was_message_sent(ALICE, at(DATE)) is expected


async def test_only_the_persons_own_messages_since_then_are_not_a_send(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.add_message(5001, out=True, date=DATE - 3600)  # an earlier campaign's
    world.add_message(5001, out=False, date=DATE + 5)

    assert await strategy.was_message_sent(ALICE, at(DATE)) is False


async def test_the_dialog_is_read_page_by_page_back_to_the_attempt(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.add_message(5001, out=True, date=DATE)
    for n in range(70):  # a chatty answer pushes the send to the second page
        world.add_message(5001, out=False, date=DATE + 1 + n)

    assert await strategy.was_message_sent(ALICE, at(DATE)) is True

    pages = world.called(raw.functions.messages.GetHistory)
    first, second = pages
    assert first.offset_id == 0
    assert second.offset_id == min(m.id for m in world.dialogs[5001][-HISTORY_PAGE:])


async def test_a_dialog_too_long_to_read_back_cannot_tell(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.add_message(5001, out=True, date=DATE)
    for n in range(HISTORY_PAGE * HISTORY_PAGES):
        world.add_message(5001, out=False, date=DATE + 1 + n)

    assert await strategy.was_message_sent(ALICE, at(DATE)) is None
    assert len(world.called(raw.functions.messages.GetHistory)) == HISTORY_PAGES


async def test_a_phone_is_looked_up_for_the_check_and_the_contact_deleted(
    strategy: TelegramStrategy, world: TelegramServer
) -> None:
    world.add_message(5002, out=True, date=DATE)

    assert await strategy.was_message_sent(Target(TargetKind.PHONE, PHONE), at(DATE)) is True
    assert world.deleted_contacts == [5002]


@pytest.mark.parametrize(
    "target",
    [Target(TargetKind.USERNAME, "nobody_here"), Target(TargetKind.USER_ID, "5002")],
    ids=["unknown-username", "never-met-id"],
)
async def test_a_person_the_account_cannot_find_cannot_tell(
    strategy: TelegramStrategy, world: TelegramServer, target: Target
) -> None:
    assert await strategy.was_message_sent(target, at(DATE)) is None
    assert world.called(raw.functions.messages.GetHistory) == []


@pytest.mark.parametrize(
    ("code", "message"), [(420, "FLOOD_WAIT_5"), (401, "AUTH_KEY_UNREGISTERED"), (400, "PEER_ID_INVALID")]
)
async def test_an_error_while_reading_the_dialog_cannot_tell(
    strategy: TelegramStrategy, world: TelegramServer, code: int, message: str
) -> None:
    world.script(raw.functions.messages.GetHistory, rpc_error(code, message))

    assert await strategy.was_message_sent(ALICE, at(DATE)) is None
    assert len(world.called(raw.functions.messages.GetHistory)) == 1  # not slept through nor retried


async def test_a_network_failure_while_reading_cannot_tell(
    make_factory: Callable[..., TelegramFactory], account: AccountData, world: TelegramServer
) -> None:
    world.script(raw.functions.messages.GetHistory, ConnectionResetError("reset by peer"))
    strategy = make_factory(call_timeout_seconds=0.5).for_account(account)  # kurigram: 10 tries, 1 s apart
    await strategy.initialize_client(account)

    assert await strategy.was_message_sent(ALICE, at(DATE)) is None
    await strategy.close()


async def test_without_a_client_it_cannot_tell(
    make_factory: Callable[..., TelegramFactory], account: AccountData, world: TelegramServer
) -> None:
    strategy = make_factory().for_account(account)

    assert await strategy.was_message_sent(ALICE, at(DATE)) is None
    assert world.calls == []
