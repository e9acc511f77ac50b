"""A small Telegram world: people (some keeping strangers from adding them to groups:
``World.forbid_invites``), groups, the account's contacts and dialogs, invite links (made,
used through ``World.join_by_link``, revoked), scripted answers.

``World.reply`` answers one raw function (the query inside every wrapper) the way Telegram
would, with real ``pyrogram.raw`` objects: a TL object, a list (a TL vector), or an
``RpcError``. Both the loopback MTProto server (``tests.mtproto.server``) and the stand-in at
``Session.send`` (``tests.unit.telegram.standin``) answer from it.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyrogram
from pyrogram import raw
from pyrogram.raw.core import TLObject

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


def channel(
    channel_id: int, username: str | None = None, *, broadcast: bool = False, **flags: Any
) -> raw.types.Channel:
    return raw.types.Channel(
        id=channel_id,
        title=f"Group {channel_id}",
        photo=raw.types.ChatPhotoEmpty(),
        date=DATE,
        access_hash=channel_id * 11 + 5,
        username=username,
        megagroup=not broadcast,
        broadcast=broadcast,
        **flags,
    )


def basic_group(chat_id: int, **flags: Any) -> raw.types.Chat:
    return raw.types.Chat(
        id=chat_id,
        title=f"Basic group {chat_id}",
        photo=raw.types.ChatPhotoEmpty(),
        participants_count=3,
        date=DATE,
        version=1,
        **flags,
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


@dataclass
class InviteLinkState:
    """An invite link the world made: into which group, until when, for how many, who used it."""

    url: str
    group: int  # the channel's or the basic group's id
    expire_date: int | None
    usage_limit: int | None
    date: int
    revoked: bool = False
    importers: list[tuple[int, int]] = field(default_factory=list)  # (user id, date), in join order

    def exported(self) -> raw.types.ChatInviteExported:
        return raw.types.ChatInviteExported(
            link=self.url,
            admin_id=ME_ID,
            date=self.date,
            revoked=self.revoked,
            permanent=False,
            expire_date=self.expire_date,
            usage_limit=self.usage_limit,
            usage=len(self.importers) or None,
        )


class World:
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
        self.missing_invitees: list[raw.types.MissingInvitee] = []  # left out of every add
        # people whose privacy lets only their contacts add them to groups (privacyKeyChatInvite),
        # as ``forbid_invites`` set it; messages stay open to everyone
        self.invite_privacy: dict[int, raw.types.MissingInvitee] = {}
        # pages of Channel and Chat; none: the dialogs are those with people (``dialogs``)
        self.dialog_pages: list[list[Any]] = []
        self.scripted: dict[type, Answer] = {}

        self.requests: list[Any] = []  # as sent, wrappers included
        self.calls: list[Any] = []  # the functions inside the wrappers
        self.unexpected: list[str] = []
        self.sent_messages: list[Any] = []  # messages.SendMessage requests
        self.dialogs: dict[int, list[raw.types.Message]] = {}  # per person, oldest first
        self.now = DATE  # the date Telegram gives the messages sent from here on
        self.deleted_contacts: list[int] = []
        self.members: dict[int, set[int]] = {}  # group (channel or basic group id) → its members
        self.basic_group_role: Any = raw.types.ChatParticipantCreator(user_id=ME_ID)
        self.random_ids: set[int] = set()  # of the messages sent: Telegram's duplicate check
        self.invite_links: dict[str, InviteLinkState] = {}  # by URL
        self._message_ids = itertools.count(1)
        self._link_numbers = itertools.count(1)

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

    def add_message(self, user_id: int, *, out: bool, date: int, text: str = "hello") -> raw.types.Message:
        """A message in the account's dialog with ``user_id``, sent by the account (``out``) or to it."""
        message = raw.types.Message(
            id=next(self._message_ids),
            peer_id=raw.types.PeerUser(user_id=user_id),
            from_id=None if out else raw.types.PeerUser(user_id=user_id),
            date=date,
            message=text,
            out=out,
        )
        self.dialogs.setdefault(user_id, []).append(message)
        return message

    def forbid_invites(
        self, user_id: int, *, premium_would_allow_invite: bool = False, premium_required_for_pm: bool = False
    ) -> None:
        """``user_id``'s privacy lets only their contacts add them to groups (and Premium users,
        with ``premium_would_allow_invite``); anyone may still message them. Anyone else's add
        leaves them out, as Telegram answers since layer 166: no error, a ``MissingInvitee``."""
        self.invite_privacy[user_id] = raw.types.MissingInvitee(
            user_id=user_id,
            premium_would_allow_invite=premium_would_allow_invite or None,
            premium_required_for_pm=premium_required_for_pm or None,
        )

    def join_by_link(self, url: str, user_id: int, date: int) -> bool:
        """``user_id`` opens the link at ``date`` (a Unix time); whether Telegram lets them in: not
        through a link revoked, expired by then or used up, nor into a group they are in."""
        link = self.invite_links.get(url)
        if link is None or link.revoked:
            return False
        expired = link.expire_date is not None and date >= link.expire_date
        used_up = link.usage_limit is not None and len(link.importers) >= link.usage_limit
        members = self.members.setdefault(link.group, set())
        if expired or used_up or user_id in members:
            return False
        members.add(user_id)
        link.importers.append((user_id, date))
        return True

    def script(self, function: type, answer: Answer) -> None:
        """Answer every call of ``function`` with ``answer`` from now on."""
        self.scripted[function] = answer

    def called(self, function: type) -> list[Any]:
        return [call for call in self.calls if isinstance(call, function)]

    async def reply(self, request: Any) -> Any:
        """The answer to ``request`` (wrappers included): a TL object, a list, an RpcError or an
        exception (a test's scripted failure)."""
        self.requests.append(request)
        query = request.query if isinstance(request, raw.functions.InvokeWithoutUpdates) else request
        self.calls.append(query)
        handler = self.scripted.get(type(query)) or self._handlers().get(type(query))
        if handler is None:
            self.unexpected.append(type(query).QUALNAME)
            return RuntimeError(f"the world has no answer for {type(query).QUALNAME}")
        result = handler if isinstance(handler, TLObject | BaseException) else handler(query)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _handlers(self) -> dict[type, Callable[[Any], Any]]:
        f = raw.functions
        return {
            f.users.GetFullUser: self._get_full_user,
            f.contacts.ResolveUsername: self._resolve_username,
            f.users.GetUsers: lambda query: [],  # an id with no access hash: Telegram returns nobody
            f.channels.GetChannels: lambda query: raw.types.messages.Chats(
                chats=[self.groups[c.channel_id] for c in query.id if c.channel_id in self.groups]
            ),
            f.contacts.GetContacts: self._get_contacts,
            f.contacts.ImportContacts: self._import_contacts,
            f.contacts.DeleteContacts: self._delete_contacts,
            f.contacts.AddContact: self._add_contact,
            f.messages.GetChats: self._get_chats,
            f.channels.InviteToChannel: self._invite,
            f.messages.AddChatUser: self._invite,
            f.messages.GetFullChat: self._get_full_chat,
            f.updates.GetState: lambda query: raw.types.updates.State(
                pts=1, qts=0, date=self.now, seq=0, unread_count=0
            ),
            f.messages.SendMessage: self._send_message,
            f.channels.GetParticipant: self._get_participant,
            f.messages.GetDialogs: self._get_dialogs,
            f.messages.GetHistory: self._get_history,
            f.messages.ExportChatInvite: self._export_chat_invite,
            f.messages.GetChatInviteImporters: self._get_chat_invite_importers,
            f.messages.EditExportedChatInvite: self._edit_exported_chat_invite,
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
        """Adds whoever is not missing (``missing_invitees``, and those whose privacy keeps the
        account out, ``invite_privacy``, unless they are its contacts): a service message for
        each one added now; a current member of a supergroup adds nothing and no error (a basic
        group answers USER_ALREADY_PARTICIPANT)."""
        basic = isinstance(query, raw.functions.messages.AddChatUser)
        group = query.chat_id if basic else query.channel.channel_id
        wanted = [query.user_id.user_id] if basic else [u.user_id for u in query.users]
        kept_out = [
            self.invite_privacy[u] for u in wanted if u in self.invite_privacy and u not in self.contacts
        ]
        missing_invitees = [*self.missing_invitees, *kept_out]
        missing = {m.user_id for m in missing_invitees}
        members = self.members.setdefault(group, set())
        if basic and wanted[0] in members:
            return rpc_error(400, "USER_ALREADY_PARTICIPANT")
        added = [u for u in wanted if u not in missing and u not in members]
        members.update(added)
        peer: Any = raw.types.PeerChat(chat_id=group) if basic else raw.types.PeerChannel(channel_id=group)
        news: list[Any] = []
        for user_id in added:
            message = raw.types.MessageService(
                id=next(self._message_ids),
                peer_id=peer,
                from_id=raw.types.PeerUser(user_id=ME_ID),
                date=self.now,
                action=raw.types.MessageActionChatAddUser(users=[user_id]),
            )
            news.append(
                raw.types.UpdateNewMessage(message=message, pts=1, pts_count=1)
                if basic
                else raw.types.UpdateNewChannelMessage(message=message, pts=1, pts_count=1)
            )
        people: list[Any] = [self.people[u] for u in added if u in self.people]
        return raw.types.messages.InvitedUsers(
            updates=raw.types.Updates(updates=news, users=people, chats=[], date=self.now, seq=0),
            missing_invitees=missing_invitees,
        )

    def _get_full_chat(self, query: Any) -> Any:
        chat = self.basic_groups.get(query.chat_id)
        if chat is None:
            return rpc_error(400, "CHAT_ID_INVALID")
        others = [
            raw.types.ChatParticipant(user_id=u, inviter_id=ME_ID, date=DATE)
            for u in sorted(self.members.get(query.chat_id, set()))
        ]
        participants = raw.types.ChatParticipants(
            chat_id=chat.id, participants=[self.basic_group_role, *others], version=1
        )
        full = raw.types.ChatFull(
            id=chat.id, about="", participants=participants, notify_settings=raw.types.PeerNotifySettings()
        )
        users: list[Any] = [
            self.me,
            self.owner,
            *(self.people[u] for u in self.members.get(query.chat_id, set()) if u in self.people),
        ]
        return raw.types.messages.ChatFull(full_chat=full, chats=[chat], users=users)

    def _send_message(self, query: raw.functions.messages.SendMessage) -> Any:
        if query.random_id in self.random_ids:
            return rpc_error(400, "RANDOM_ID_DUPLICATE")
        self.random_ids.add(query.random_id)
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

    def _group_of(self, peer: Any) -> int | None:
        if isinstance(peer, raw.types.InputPeerChannel):
            return peer.channel_id if peer.channel_id in self.groups else None
        if isinstance(peer, raw.types.InputPeerChat):
            return peer.chat_id if peer.chat_id in self.basic_groups else None
        return None

    def _export_chat_invite(self, query: raw.functions.messages.ExportChatInvite) -> Any:
        """A new link, as Telegram checks its expiry (not past) and usage limit (1 to 99999)."""
        group = self._group_of(query.peer)
        if group is None:
            return rpc_error(400, "CHANNEL_PRIVATE")
        if query.expire_date is not None and query.expire_date <= self.now:
            return rpc_error(400, "EXPIRE_DATE_INVALID")
        if query.usage_limit is not None and not 1 <= query.usage_limit <= 99_999:
            return rpc_error(400, "USAGE_LIMIT_INVALID")
        url = f"https://t.me/+link{next(self._link_numbers):012d}"
        link = InviteLinkState(url, group, query.expire_date, query.usage_limit, self.now)
        self.invite_links[url] = link
        return link.exported()

    def _link(self, peer: Any, url: str) -> InviteLinkState | raw.types.RpcError:
        link = self.invite_links.get(url)
        if link is None or link.group != self._group_of(peer):
            return rpc_error(400, "INVITE_HASH_EXPIRED")
        return link

    def _get_chat_invite_importers(self, query: raw.functions.messages.GetChatInviteImporters) -> Any:
        """Who joined through the link, newest first, older than the offset date, ``limit`` at a time."""
        link = self._link(query.peer, query.link or "")
        if isinstance(link, raw.types.RpcError):
            return link
        newest_first = sorted(link.importers, key=lambda i: i[1], reverse=True)
        page = [i for i in newest_first if not query.offset_date or i[1] < query.offset_date][: query.limit]
        return raw.types.messages.ChatInviteImporters(
            count=len(link.importers),
            importers=[raw.types.ChatInviteImporter(user_id=u, date=d) for u, d in page],
            users=[self.people[u] for u, _ in page if u in self.people],
        )

    def _edit_exported_chat_invite(self, query: raw.functions.messages.EditExportedChatInvite) -> Any:
        link = self._link(query.peer, query.link)
        if isinstance(link, raw.types.RpcError):
            return link
        link.revoked = link.revoked or bool(query.revoked)
        return raw.types.messages.ExportedChatInvite(invite=link.exported(), users=[self.me])

    def _get_participant(self, query: Any) -> Any:
        """The account itself (``participant``), or a person: a member or USER_NOT_PARTICIPANT."""
        channel_id = query.channel.channel_id
        if channel_id not in self.groups:
            return rpc_error(400, "CHANNEL_PRIVATE")
        if isinstance(query.participant, raw.types.InputPeerSelf):
            participant: Any = self.participant
            users: list[Any] = [self.me, self.owner]
        elif query.participant.user_id in self.members.get(channel_id, set()):
            user_id = query.participant.user_id
            participant = raw.types.ChannelParticipant(user_id=user_id, date=DATE)
            users = [self.people[user_id]] if user_id in self.people else []
        else:
            return rpc_error(400, "USER_NOT_PARTICIPANT")
        return raw.types.channels.ChannelParticipant(
            participant=participant, chats=[self.groups[channel_id]], users=users
        )

    def _get_dialogs(self, query: Any) -> Any:
        if not self.dialog_pages:
            return self._people_dialogs(query)
        page_index = 0 if query.offset_id == 0 else query.offset_id  # top_message numbers the page
        page: list[Any] = self.dialog_pages[page_index] if page_index < len(self.dialog_pages) else []
        dialogs: list[Any] = [_dialog(peer_of(group), page_index + 1) for group in page]
        messages: list[Any] = [
            raw.types.Message(id=page_index + 1, peer_id=peer_of(group), date=DATE, message="")
            for group in page
        ]
        total = sum(len(p) for p in self.dialog_pages)
        return raw.types.messages.DialogsSlice(
            count=total, dialogs=dialogs, messages=messages, chats=page, users=[]
        )

    def _people_dialogs(self, query: Any) -> Any:
        """The dialogs with people, as Telegram pages them: newest top message first, those
        older than the offset's (date, id), ``limit`` at a time."""
        tops = sorted(
            (max(messages, key=lambda m: m.id) for messages in self.dialogs.values() if messages),
            key=lambda m: (m.date, m.id),
            reverse=True,
        )
        older = [
            m for m in tops if not query.offset_date or (m.date, m.id) < (query.offset_date, query.offset_id)
        ]
        page: list[Any] = older[: query.limit]
        dialogs: list[Any] = [_dialog(m.peer_id, m.id) for m in page]
        users: list[Any] = [self.people[m.peer_id.user_id] for m in page if m.peer_id.user_id in self.people]
        if len(page) < len(older):
            return raw.types.messages.DialogsSlice(
                count=len(tops), dialogs=dialogs, messages=page, chats=[], users=users
            )
        return raw.types.messages.Dialogs(dialogs=dialogs, messages=page, chats=[], users=users)


def _dialog(peer: Any, top_message: int) -> Any:
    """A dialog as getDialogs lists it: its peer and its newest message, all read."""
    return raw.types.Dialog(
        peer=peer,
        top_message=top_message,
        read_inbox_max_id=0,
        read_outbox_max_id=0,
        unread_count=0,
        unread_mentions_count=0,
        unread_reactions_count=0,
        unread_poll_votes_count=0,
        notify_settings=raw.types.PeerNotifySettings(),
    )
