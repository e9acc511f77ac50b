"""A stand-in for Telegram's servers, the one fake in the Telegram adapter's tests.

``StandInClient`` is a real ``pyrogram.Client`` whose network session is a real
``pyrogram.session.Session`` with its transport cut off: ``start``/``stop`` open nothing and
``send`` (the point every raw request of the session goes through, under ``Session.invoke``'s
own FloodWait and retry handling) hands the request to ``TelegramServer``. Everything above it
- the high-level methods, peer storage, session-string loading, ``RPCError.raise_it`` picking
the error class for a code and message - is the installed kurigram's own code.

The server answers with real raw ``types`` from a small world of people and groups, or, where
a test scripted it, with an ``RpcError`` (raised through Pyrogram's own ``raise_it``, as a real
answer is) or a Python exception.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

import pyrogram
from pyrogram import raw
from pyrogram.errors import RPCError
from pyrogram.raw.core import TLObject
from pyrogram.session import Session

ME_ID = 777000111
OWNER_ID = 1
DATE = 1_700_000_000

Answer = Any  # a raw TLObject, a raw.types.RpcError, an exception, or a callable(query) -> one of those


def rpc_error(code: int, message: str) -> raw.types.RpcError:
    return raw.types.RpcError(error_code=code, error_message=message)


def user(user_id: int, username: str | None = None, phone: str | None = None, **flags: Any) -> raw.types.User:
    return raw.types.User(
        id=user_id,
        access_hash=user_id * 7 + 3,
        first_name=f"User {user_id}",
        username=username,
        phone=phone,
        **flags,
    )


def channel(channel_id: int, username: str | None = None, *, broadcast: bool = False) -> raw.types.Channel:
    return raw.types.Channel(
        id=channel_id,
        title=f"Group {channel_id}",
        photo=raw.types.ChatPhotoEmpty(),
        date=DATE,
        access_hash=channel_id * 11 + 5,
        username=username,
        megagroup=not broadcast,
        broadcast=broadcast,
    )


def basic_group(chat_id: int) -> raw.types.Chat:
    return raw.types.Chat(
        id=chat_id,
        title=f"Basic group {chat_id}",
        photo=raw.types.ChatPhotoEmpty(),
        participants_count=3,
        date=DATE,
        version=1,
    )


def marked(channel_id: int) -> int:
    """The id Pyrogram's methods use for a channel (-100...)."""
    return pyrogram.utils.get_channel_id(channel_id)


def peer_of(group: raw.types.Channel | raw.types.Chat) -> Any:
    if isinstance(group, raw.types.Channel):
        return raw.types.PeerChannel(channel_id=group.id)
    return raw.types.PeerChat(chat_id=group.id)


def updates(users: list[Any] | None = None) -> raw.types.Updates:
    return raw.types.Updates(updates=[], users=users or [], chats=[], date=DATE, seq=0)


class TelegramServer:
    """Telegram as far as the adapter asks it: people, groups, contacts, and scripted answers."""

    def __init__(self) -> None:
        self.me = user(ME_ID, username="campaign_account", is_self=True)
        self.owner = user(OWNER_ID)  # who created the groups and promoted their admins
        self.people: dict[int, raw.types.User] = {}
        self.groups: dict[int, raw.types.Channel] = {}
        self.basic_groups: dict[int, raw.types.Chat] = {}
        self.phones: dict[str, int] = {}  # who a phone import finds
        self.postponed_phones: set[str] = set()  # answered in retry_contacts
        self.contacts: set[int] = set()  # the account's contacts
        self.participant: Any = raw.types.ChannelParticipantCreator(
            user_id=ME_ID, admin_rights=raw.types.ChatAdminRights()
        )
        self.missing_invitees: list[raw.types.MissingInvitee] = []
        self.dialog_pages: list[list[Any]] = []  # pages of Channel and Chat
        self.scripted: dict[type, Answer] = {}
        self.refuse_connect: BaseException | None = None

        self.clients: list[Any] = []
        self.connects = 0
        self.sessions_stopped = 0
        self.requests: list[Any] = []  # as sent, wrappers included
        self.calls: list[Any] = []  # the functions inside the wrappers
        self.raised: list[BaseException] = []
        self.unexpected: list[str] = []
        self.sent_messages: list[Any] = []  # messages.SendMessage requests
        self.dialogs: dict[int, list[raw.types.Message]] = {}  # per person, oldest first
        self.now = DATE  # the date Telegram gives the messages sent from here on
        self.deleted_contacts: list[int] = []
        self._message_ids = itertools.count(1)

    # --- world --------------------------------------------------------------------------------
    def add_person(
        self, user_id: int, username: str | None = None, phone: str | None = None
    ) -> raw.types.User:
        person = user(user_id, username=username, phone=phone)
        self.people[user_id] = person
        if phone:
            self.phones[phone] = user_id
        return person

    def add_group(self, channel_id: int, username: str | None = None, *, broadcast: bool = False) -> int:
        self.groups[channel_id] = channel(channel_id, username, broadcast=broadcast)
        return marked(channel_id)

    def add_basic_group(self, chat_id: int) -> int:
        self.basic_groups[chat_id] = basic_group(chat_id)
        return -chat_id

    def add_message(self, user_id: int, *, out: bool, date: int) -> raw.types.Message:
        """A message in the account's dialog with ``user_id``, sent by the account (``out``) or to it."""
        message = raw.types.Message(
            id=next(self._message_ids),
            peer_id=raw.types.PeerUser(user_id=user_id),
            from_id=None if out else raw.types.PeerUser(user_id=user_id),
            date=date,
            message="hello",
            out=out,
        )
        self.dialogs.setdefault(user_id, []).append(message)
        return message

    def script(self, function: type, answer: Answer) -> None:
        """Answer every call of ``function`` with ``answer`` from now on."""
        self.scripted[function] = answer

    def called(self, function: type) -> list[Any]:
        return [call for call in self.calls if isinstance(call, function)]

    # --- the wire -------------------------------------------------------------------------------
    async def connect(self) -> None:
        self.connects += 1
        if self.refuse_connect is not None:
            raise self.refuse_connect

    async def answer(self, request: Any) -> Any:
        self.requests.append(request)
        query = request.query if isinstance(request, raw.functions.InvokeWithoutUpdates) else request
        self.calls.append(query)
        handler = self.scripted.get(type(query)) or self._handlers().get(type(query))
        if handler is None:
            self.unexpected.append(type(query).QUALNAME)
            raise RuntimeError(f"the stand-in has no answer for {type(query).QUALNAME}")
        result = handler if isinstance(handler, TLObject | BaseException) else handler(query)
        if inspect.isawaitable(result):
            result = await result
        try:
            if isinstance(result, raw.types.RpcError):
                RPCError.raise_it(result, type(query))
            if isinstance(result, BaseException):
                raise result
        except BaseException as exc:
            self.raised.append(exc)
            raise
        return result

    def _handlers(self) -> dict[type, Callable[[Any], Any]]:
        f = raw.functions
        return {
            f.users.GetFullUser: self._get_full_user,
            f.contacts.ResolveUsername: self._resolve_username,
            f.users.GetUsers: lambda query: [],  # an id with no access hash: Telegram returns nobody
            f.channels.GetChannels: lambda query: raw.types.messages.Chats(chats=[]),
            f.contacts.GetContacts: self._get_contacts,
            f.contacts.ImportContacts: self._import_contacts,
            f.contacts.DeleteContacts: self._delete_contacts,
            f.contacts.AddContact: self._add_contact,
            f.messages.GetChats: self._get_chats,
            f.channels.InviteToChannel: self._invite,
            f.messages.AddChatUser: self._invite,
            f.messages.SendMessage: self._send_message,
            f.channels.GetParticipant: self._get_participant,
            f.messages.GetDialogs: self._get_dialogs,
            f.messages.GetHistory: self._get_history,
        }

    def _get_full_user(self, query: raw.functions.users.GetFullUser) -> Any:
        full = raw.types.UserFull(
            id=ME_ID,
            settings=raw.types.PeerSettings(),
            notify_settings=raw.types.PeerNotifySettings(),
            common_chats_count=0,
        )
        return raw.types.users.UserFull(full_user=full, chats=[], users=[self.me])

    def _resolve_username(self, query: raw.functions.contacts.ResolveUsername) -> Any:
        name = query.username.lower()
        for person in self.people.values():
            if (person.username or "").lower() == name:
                return raw.types.contacts.ResolvedPeer(
                    peer=raw.types.PeerUser(user_id=person.id), chats=[], users=[person]
                )
        for group in self.groups.values():
            if (group.username or "").lower() == name:
                return raw.types.contacts.ResolvedPeer(
                    peer=raw.types.PeerChannel(channel_id=group.id), chats=[group], users=[]
                )
        return rpc_error(400, "USERNAME_NOT_OCCUPIED")

    def _get_contacts(self, query: Any) -> Any:
        contacts = [raw.types.Contact(user_id=i, mutual=False) for i in sorted(self.contacts)]
        return raw.types.contacts.Contacts(
            contacts=contacts, saved_count=0, users=[self.people[i] for i in sorted(self.contacts)]
        )

    def _import_contacts(self, query: Any) -> Any:
        imported: list[Any] = []
        retry: list[int] = []
        users: list[Any] = []
        for contact in query.contacts:
            phone = contact.phone
            if phone in self.postponed_phones:
                retry.append(contact.client_id)
            elif phone in self.phones:
                user_id = self.phones[phone]
                imported.append(raw.types.ImportedContact(user_id=user_id, client_id=contact.client_id))
                users.append(self.people[user_id])
                self.contacts.add(user_id)
        return raw.types.contacts.ImportedContacts(
            imported=imported, popular_invites=[], retry_contacts=retry, users=users
        )

    def _delete_contacts(self, query: Any) -> Any:
        ids = [peer.user_id for peer in query.id]
        self.deleted_contacts.extend(ids)
        self.contacts.difference_update(ids)
        return updates([self.people[i] for i in ids])

    def _add_contact(self, query: Any) -> Any:
        self.contacts.add(query.id.user_id)
        return updates([self.people[query.id.user_id]])

    def _get_chats(self, query: Any) -> Any:
        return raw.types.messages.Chats(
            chats=[self.basic_groups[i] for i in query.id if i in self.basic_groups]
        )

    def _invite(self, query: Any) -> Any:
        return raw.types.messages.InvitedUsers(
            updates=updates(), missing_invitees=list(self.missing_invitees)
        )

    def _send_message(self, query: raw.functions.messages.SendMessage) -> Any:
        self.sent_messages.append(query)
        peer: Any = query.peer
        message = self.add_message(peer.user_id, out=True, date=self.now)
        return raw.types.UpdateShortSentMessage(
            id=message.id, pts=1, pts_count=1, date=message.date, out=True
        )

    def _get_history(self, query: Any) -> Any:
        """Newest first, older than ``offset_id`` when one is given, ``limit`` at a time."""
        user_id = query.peer.user_id
        if user_id not in self.people:
            return rpc_error(400, "PEER_ID_INVALID")
        newest_first = sorted(self.dialogs.get(user_id, []), key=lambda m: m.id, reverse=True)
        older = [m for m in newest_first if not query.offset_id or m.id < query.offset_id]
        page: list[Any] = older[: query.limit]
        users: list[Any] = [self.people[user_id], self.me]
        if len(page) < len(newest_first):
            return raw.types.messages.MessagesSlice(
                count=len(newest_first), messages=page, topics=[], chats=[], users=users
            )
        return raw.types.messages.Messages(messages=page, topics=[], chats=[], users=users)

    def _get_participant(self, query: Any) -> Any:
        channel_id = query.channel.channel_id
        if channel_id not in self.groups:
            return rpc_error(400, "CHANNEL_PRIVATE")
        return raw.types.channels.ChannelParticipant(
            participant=self.participant, chats=[self.groups[channel_id]], users=[self.me, self.owner]
        )

    def _get_dialogs(self, query: Any) -> Any:
        page_index = 0 if query.offset_id == 0 else query.offset_id  # top_message numbers the page
        page: list[Any] = self.dialog_pages[page_index] if page_index < len(self.dialog_pages) else []
        dialogs: list[Any] = [
            raw.types.Dialog(
                peer=peer_of(group),
                top_message=page_index + 1,
                read_inbox_max_id=0,
                read_outbox_max_id=0,
                unread_count=0,
                unread_mentions_count=0,
                unread_reactions_count=0,
                unread_poll_votes_count=0,
                notify_settings=raw.types.PeerNotifySettings(),
            )
            for group in page
        ]
        messages: list[Any] = [
            raw.types.Message(id=page_index + 1, peer_id=peer_of(group), date=DATE, message="")
            for group in page
        ]
        total = sum(len(p) for p in self.dialog_pages)
        return raw.types.messages.DialogsSlice(
            count=total, dialogs=dialogs, messages=messages, chats=page, users=[]
        )


class StandInSession(Session):
    """A real Pyrogram session whose transport is the stand-in server."""

    def __init__(
        self, client: pyrogram.Client, server: TelegramServer, dc_id: int, auth_key: bytes, test_mode: bool
    ):
        super().__init__(client, dc_id, "stand-in", 0, auth_key, test_mode)
        self.server = server

    async def start(self) -> None:
        await self.server.connect()
        self.is_started.set()

    async def stop(self) -> None:
        self.server.sessions_stopped += 1
        self.is_started.clear()

    async def send(self, data: Any, wait_response: bool = True, timeout: float = Session.WAIT_TIMEOUT) -> Any:
        return await self.server.answer(data)


class StandInClient(pyrogram.Client):
    """``pyrogram.Client`` connected to the stand-in server instead of Telegram's data centres."""

    def __init__(self, *args: Any, server: TelegramServer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server = server
        self.init_kwargs = kwargs
        server.clients.append(self)

    async def get_session(self, *args: Any, **kwargs: Any) -> Session:
        session = StandInSession(
            self,
            self.server,
            await self.storage.dc_id(),
            await self.storage.auth_key(),
            await self.storage.test_mode(),
        )
        await session.start()
        return session
