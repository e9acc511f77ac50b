"""The Telegram platform on kurigram: one client per account, every answer an ``Outcome``.

The client lives in memory, takes no updates and never sleeps through a FloodWait
(``sleep_threshold=0``): the engine decides what a wait means. It is connected once in
``initialize_client`` and reused until ``close``. It is started by hand (connect, then
``users.getFullUser`` for the account's own id) rather than with ``Client.start``, which would
fall into the interactive login when the session lacks a user id, as converted Telethon
sessions do; and it is never ``initialize``d: that starts kurigram's updates watchdog, whose
failure would later keep ``stop`` from disconnecting. ``close`` disconnects whatever state the
client is in: a connection left on the account's key would make the next holder's
AUTH_KEY_DUPLICATED, and Telegram revokes the key for that.

Every call has its own time limit (``call_timeout_seconds``): kurigram itself waits 15 s per
try and tries ten times. Messages are sent under the ``random_id`` the engine chose, so any
later attempt at the same person is answered ``RANDOM_ID_DUPLICATE`` (delivered) rather than
delivered twice. A message whose request was handed to the connection and whose answer never
came is sent again at once under that random_id (reconciled: a duplicate means it went out,
else it goes out now, once); when that answer is lost too it is ``DELIVERY_UNKNOWN``. A session whose key Telegram
no longer knows (transport error −404, raised in kurigram's receive task where no caller sees
it) is read there, and the account is dead. A FloodWait while connecting is remembered by the
factory: the account is not connected again until it is over.

People are reached by ``@username`` (resolved), by numeric id (only when this account has met
them: Telegram needs the access hash that comes with that meeting) or by ``+phone`` (imported
as a contact, and deleted again afterwards unless ``keep_imported_contacts``; contacts the
account had before are never deleted).

Groups are named by ``@username``, a ``t.me/`` link or a numeric id; a numeric id the client has
not met is looked up in the account's dialogs (a few pages). An invite counts only once
Telegram shows the person in the group (``channels.getParticipant``, the basic group's full
chat): the updates of the answer tell "added now" (the service message) from "already a member".

Whether a message went out (asked of one whose worker died mid-send) is read from the account's
own dialog with the person: an outgoing message dated since the attempt began.

Replies are read the same way: the account's dialogs newest first (``messages.getDialogs``),
down to the last one active since the poll's start, and the new incoming messages of each
dialog with a person (``messages.getHistory``). Each reply names the person by every key
Telegram gives (user id, usernames, the phone when it is shown) and by the ``+phone`` target a
send of this lease resolved to them.

Invite links are one-use (``usage_limit=1``) and expire when the engine says, made with the raw
``messages.exportChatInvite``; who joined through each is read back with
``messages.getChatInviteImporters`` (one call per link, keys as for replies), and a link is
revoked with ``messages.editExportedChatInvite``. A link Telegram no longer has counts as
revoked, and nobody joins through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pyrogram
import structlog
from pyrogram import enums, raw, utils
from pyrogram.errors import InternalServerError, PeerIdInvalid, RPCError, UserIdInvalid, UserNotParticipant
from pyrogram.storage import SQLiteStorage

from invite.kernel.clock import Clock, RealClock
from invite.kernel.settings import Settings
from invite.observability.metrics import integration_errors
from invite.platforms.base import (
    AccountData,
    InviteLink,
    LinkJoin,
    LinkJoins,
    LinkMade,
    Outcome,
    OutcomeKind,
    RateLimits,
    Replies,
    Reply,
    Target,
    TargetKind,
)
from invite.platforms.refs import chat_ref
from invite.platforms.telegram.errors import (
    INVALID_SESSION,
    LINK_GONE,
    NETWORK_ERRORS,
    TRANSPORT_CLASSES,
    keep_unknown_errors_off_disk,
    outcome_for,
)
from invite.platforms.telegram.sessions import InvalidSession, parse_session, to_pyrogram_string

log = structlog.get_logger(__name__)

DRIVER = "telegram"
UNKNOWN_USER_ID = "user id not known to this account; import by username or phone"
DIALOGS_PAGE = 100
HISTORY_PAGE = 50
HISTORY_PAGES = 4  # more than this many messages in the dialog since the send: "can't tell"
IMPORTERS_PAGE = 100  # Telegram's most per call; a one-use link has one importer at most
# Telegram dates a message by its own clock, in whole seconds: a message this much older than
# the moment asked about still counts as that send (a false "sent" is safe, a false "not sent"
# would message the person twice)
CLOCK_TOLERANCE = timedelta(seconds=30)

ClientFactory = Callable[..., pyrogram.Client]  # called with pyrogram.Client's keyword arguments
T = TypeVar("T")
TRANSPORT_CHECK_SECONDS = 0.25  # how often a call in flight looks whether the connection died


@dataclass(frozen=True)
class TelegramConfig:
    api_id: int
    api_hash: str
    limits: RateLimits
    keep_imported_contacts: bool = False
    connect_timeout_seconds: float = 30.0
    call_timeout_seconds: float = 30.0  # one action, all its requests
    phone_import_rest_seconds: float = 6 * 3600.0  # after retry_contacts ("import later")
    dialog_pages: int = 5  # pages of DIALOGS_PAGE dialogs searched for a numeric group id
    client_factory: ClientFactory = pyrogram.Client
    clock: Clock = field(default_factory=RealClock)


class TelegramFactory:
    """Makes a ``TelegramStrategy`` per account; api_id/api_hash come from Vault or the environment.

    What Telegram said about an account outlives the strategy of one lease: until when it must
    not connect (a FloodWait at connect) and until when its phone imports rest."""

    driver = DRIVER

    def __init__(
        self,
        api_id: int,
        api_hash: str,
        *,
        limits: RateLimits,
        keep_imported_contacts: bool = False,
        connect_timeout_seconds: float = 30.0,
        call_timeout_seconds: float = 30.0,
        phone_import_rest_seconds: float = 6 * 3600.0,
        dialog_pages: int = 5,
        client_factory: ClientFactory = pyrogram.Client,
        clock: Clock | None = None,
    ) -> None:
        keep_unknown_errors_off_disk()
        self._config = TelegramConfig(
            api_id,
            api_hash,
            limits,
            keep_imported_contacts,
            connect_timeout_seconds,
            call_timeout_seconds,
            phone_import_rest_seconds,
            dialog_pages,
            client_factory,
            clock or RealClock(),
        )
        self._rests: dict[str, _Rests] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        api_id: int | None = None,
        api_hash: str | None = None,
        client_factory: ClientFactory = pyrogram.Client,
        clock: Clock | None = None,
    ) -> TelegramFactory:
        """The factory with the settings' limits; api_id/api_hash given (from Vault) or from the settings."""
        api_id = api_id or settings.telegram_api_id
        api_hash = api_hash or settings.telegram_api_hash
        if not api_id or not api_hash:
            raise ValueError("TELEGRAM_API_ID and TELEGRAM_API_HASH are needed for the telegram driver")
        limits = RateLimits(settings.daily_quota, settings.daily_quota_with_link, settings.min_pause_seconds)
        return cls(
            api_id,
            api_hash,
            limits=limits,
            keep_imported_contacts=settings.telegram_keep_imported_contacts,
            connect_timeout_seconds=settings.telegram_connect_timeout_seconds,
            call_timeout_seconds=settings.telegram_call_timeout_seconds,
            phone_import_rest_seconds=settings.telegram_phone_import_rest_seconds,
            client_factory=client_factory,
            clock=clock,
        )

    def for_account(self, account: AccountData) -> TelegramStrategy:
        return TelegramStrategy(account, self._config, self._rests.setdefault(account.id, _Rests()))


@dataclass
class _Rests:
    """Until when an account must not connect, and until when its phone imports rest."""

    connect: datetime | None = None
    phone_imports: datetime | None = None


class SessionStorage(SQLiteStorage):
    """Kurigram's in-memory storage of a session string, connecting where the session says.

    A Pyrogram session string names no address: opened alone, the storage sets the production
    address of its DC. A Telethon session names its DC's address and port, and the client goes
    there (test DCs, IPv6, a loopback server in the tests)."""

    def __init__(self, name: str, session_string: str, address: tuple[str, int] | None) -> None:
        super().__init__(name, workdir=Path(), session_string=session_string, in_memory=True)
        self._address = address

    async def open(self) -> None:
        await super().open()  # type: ignore[no-untyped-call]
        if self._address is not None:
            await self.server_address(self._address[0])
            await self.port(self._address[1])


@dataclass(frozen=True)
class _Person:
    user_id: int
    imported: bool = False  # a contact this strategy imported, to delete after the action


class TelegramStrategy:
    """``InviteStrategy`` for one Telegram account."""

    driver = DRIVER

    def __init__(self, account: AccountData, config: TelegramConfig, rests: _Rests | None = None) -> None:
        self._account = account
        self._config = config
        self._rests = rests or _Rests()
        self._client: pyrogram.Client | None = None
        self._contacts_before: set[int] | None = None  # the account's own contacts, read once
        self._contact_phones: dict[str, int] = {}  # their phone numbers (digits) → user id
        self._client_ids = 0  # numbers imported contacts; Telegram's answer refers to them by it
        self._phone_keys: dict[int, str] = {}  # user id → the +phone target key it was reached by

    # --- lifecycle -----------------------------------------------------------------------------
    async def initialize_client(self, account: AccountData) -> Outcome:
        if self._client is not None:
            return Outcome(OutcomeKind.SUCCESS, detail="already connected")
        self._account = account
        now = self._config.clock.now()
        if self._rests.connect is not None and now < self._rests.connect:
            left = (self._rests.connect - now).total_seconds()
            return Outcome(OutcomeKind.FLOOD_WAIT, left, "FLOOD_WAIT_X: still waiting since the last connect")
        try:
            parts = parse_session(account.session)
        except InvalidSession as exc:
            # Ours (or the provider's data), not the account's: left out while it lasts, never
            # retired nor reported; the warning says why, the metric raises the alert.
            log.warning("telegram_invalid_session", account_id=account.id, reason=str(exc))
            integration_errors.labels(service="account_session").inc()
            return Outcome(OutcomeKind.TRANSIENT, detail=f"{INVALID_SESSION}: {exc}")
        name = f"invite-{account.id}"
        client = self._config.client_factory(
            name=name,
            api_id=self._config.api_id,
            api_hash=self._config.api_hash,
            storage_engine=SessionStorage(
                name, to_pyrogram_string(parts, self._config.api_id), parts.address
            ),
            ipv6=parts.address is not None and ":" in parts.address[0],
            no_updates=True,
            sleep_threshold=0,
            parse_mode=enums.ParseMode.DISABLED,
            fetch_replies=False,
            fetch_topics=False,
            fetch_stories=False,
            fetch_stickers=False,
        )
        try:
            async with asyncio.timeout(self._config.connect_timeout_seconds):
                user_id = await _watched(client, _start(client))
        except BaseException as exc:
            outcome = _failure(client, exc) if isinstance(exc, Exception) else None
            await _stop(client)
            if outcome is None:
                raise  # cancelled: let go of the half-started client, then go on cancelling
            if outcome.kind is OutcomeKind.FLOOD_WAIT:
                self._rests.connect = self._config.clock.now() + timedelta(seconds=outcome.seconds)
            log.info(
                "telegram_connect_failed",
                account_id=account.id,
                outcome=str(outcome.kind),
                detail=outcome.detail,
            )
            return outcome
        self._client = client
        return Outcome(OutcomeKind.SUCCESS, detail=f"connected as user {user_id}")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:  # a caller cancelled meanwhile does not cut the disconnect short
            await asyncio.shield(_stop(client))

    def get_rate_limits(self) -> RateLimits:
        limits = self._config.limits
        ceiling = self._account.daily_limit
        if ceiling is None:
            return limits
        return RateLimits(
            min(limits.daily_quota, ceiling),
            min(limits.daily_quota_with_link, ceiling),
            limits.min_pause_seconds,
        )

    # --- actions -------------------------------------------------------------------------------
    async def check_invite_right(self, group_id: str) -> Outcome:
        """Whether this account may add people to the group, by Telegram's own rules: the
        creator and admins with the right may; in a basic group every member may unless the
        group's default rights forbid it; in a supergroup members may when its default rights
        allow it (a broadcast channel: admins only)."""

        async def check(client: pyrogram.Client) -> Outcome:
            chat = await self._chat(client, group_id)
            if isinstance(chat, Outcome):
                return chat
            member = await client.get_chat_member(chat, "me")
            status = member.status
            if status is enums.ChatMemberStatus.OWNER:
                return Outcome(OutcomeKind.SUCCESS, detail="creator")
            if status is enums.ChatMemberStatus.ADMINISTRATOR:
                # A basic group's admins carry no privileges object: they may always add members.
                if member.privileges is None or member.privileges.can_invite_users:
                    return Outcome(OutcomeKind.SUCCESS, detail="administrator with the right to invite")
                return Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail="administrator without the right to invite")
            if status is enums.ChatMemberStatus.MEMBER:
                if await _members_may_invite(client, chat):
                    return Outcome(OutcomeKind.SUCCESS, detail="member; the group lets members add people")
                return Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail="member; only admins may add people here")
            if status is enums.ChatMemberStatus.RESTRICTED and (
                member.permissions is not None and member.permissions.can_invite_users
            ):
                return Outcome(OutcomeKind.SUCCESS, detail="restricted member still allowed to add people")
            return Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail=f"{status.value}, may not add people")

        return await self._bounded(check)

    async def invite_to_group(self, target: Target, group_id: str) -> Outcome:
        async def invite(client: pyrogram.Client) -> Outcome:
            chat = await self._chat(client, group_id)
            if isinstance(chat, Outcome):
                return chat
            person = await self._person(client, target)
            if isinstance(person, Outcome):
                return person
            try:
                return await _add_member(client, chat, person.user_id)
            finally:
                await self._forget(client, person)

        return await self._bounded(invite)

    async def send_message(self, target: Target, text: str, random_id: int) -> Outcome:
        handed_over = False  # from here on, a lost answer means the message may have gone out

        async def send(client: pyrogram.Client) -> Outcome:
            nonlocal handed_over
            person = await self._person(client, target)
            if isinstance(person, Outcome):
                return person
            try:
                peer: Any = await client.resolve_peer(person.user_id)
                handed_over = True
                await client.invoke(
                    raw.functions.messages.SendMessage(peer=peer, message=text, random_id=random_id)
                )
            finally:
                await self._forget(client, person)
            return Outcome(OutcomeKind.SUCCESS)

        outcome = await self._bounded(send, fate_unknown=lambda: handed_over)
        if outcome.kind is not OutcomeKind.DELIVERY_UNKNOWN:
            return outcome
        # The answer was lost. The same request again, under the same random_id, settles it:
        # Telegram answers RANDOM_ID_DUPLICATE (it went out the first time) or sends it now,
        # once. Anything else says nothing about the first send: its fate stays unknown.
        log.info("telegram_send_answer_lost", account_id=self._account.id, detail=outcome.detail)
        again = await self._bounded(send, fate_unknown=lambda: True)
        return again if again.kind is OutcomeKind.SUCCESS else outcome

    async def add_to_contacts(self, target: Target) -> Outcome:
        async def add(client: pyrogram.Client) -> Outcome:
            if target.kind is TargetKind.PHONE:
                person = await self._import(client, target)
                if isinstance(person, Outcome):
                    return person
                if self._contacts_before is not None:
                    self._contacts_before.add(person.user_id)  # asked for: never cleaned up
                return Outcome(OutcomeKind.SUCCESS)
            resolved = await self._person(client, target)
            if isinstance(resolved, Outcome):
                return resolved
            first_name, last_name = _names(target)
            await client.add_contact(resolved.user_id, first_name=first_name, last_name=last_name)
            if self._contacts_before is not None:
                self._contacts_before.add(resolved.user_id)
            return Outcome(OutcomeKind.SUCCESS)

        return await self._bounded(add)

    async def was_message_sent(self, target: Target, since: datetime) -> bool | None:
        """Read from the account's own dialog with the person: an outgoing message dated at or
        after ``since`` (less ``CLOCK_TOLERANCE``). The raw ``messages.getHistory``, not
        ``get_chat_history``: that one sleeps through FloodWaits under a minute, and only the
        date and direction of each message are needed."""
        client = self._client
        if client is None:
            return None
        try:
            async with asyncio.timeout(self._config.call_timeout_seconds):
                person = await self._person(client, target)
                if isinstance(person, Outcome):
                    log.info("telegram_delivery_unknown", account_id=self._account.id, detail=person.detail)
                    return None
                try:
                    return await _sent_since(client, person.user_id, since - CLOCK_TOLERANCE)
                finally:
                    await self._forget(client, person)
        except Exception as exc:  # the engine never sees a pyrogram exception
            outcome = _failure(client, exc)
            log.info(
                "telegram_delivery_unknown",
                account_id=self._account.id,
                outcome=str(outcome.kind),
                detail=outcome.detail,
            )
            return None

    async def read_replies(self, since: datetime) -> Replies:
        """The incoming messages of the account's dialogs with people since ``since`` (less
        ``CLOCK_TOLERANCE``), on the raw ``messages.getDialogs`` and ``messages.getHistory``: a
        FloodWait is never slept through (the poll rests), and every error is the outcome."""

        async def read(client: pyrogram.Client) -> list[Reply]:
            return await self._replies(client, since - CLOCK_TOLERANCE)

        replies = await self._bounded(read, "telegram_replies_not_read")
        if isinstance(replies, Outcome):
            return Replies([], replies)
        return Replies(sorted(replies, key=lambda r: r.at), Outcome(OutcomeKind.SUCCESS))

    async def _replies(self, client: pyrogram.Client, since: datetime) -> list[Reply]:
        """Dialogs a page at a time, newest first after the pinned ones, until one older than
        ``since`` (or ``dialog_pages`` pages); each person's dialog active since is read back."""
        oldest = int(since.timestamp())
        found: list[Reply] = []
        async with contextlib.aclosing(_dialog_pages(client, self._config.dialog_pages)) as pages:
            async for page in pages:
                users = {u.id: u for u in page.users if isinstance(u, raw.types.User)}
                past = False
                for dialog in page.dialogs:
                    date = page.tops.get((utils.get_peer_id(dialog.peer), dialog.top_message), 0)
                    if date < oldest:
                        past = past or not dialog.pinned  # pinned dialogs come first, whatever their age
                        continue
                    person = (
                        users.get(dialog.peer.user_id)
                        if isinstance(dialog.peer, raw.types.PeerUser)
                        else None
                    )
                    if person is None or person.bot or person.is_self or person.deleted:
                        continue
                    found += await self._incoming(client, person, oldest)
                if past:
                    break
        return found

    async def _incoming(self, client: pyrogram.Client, person: raw.types.User, oldest: int) -> list[Reply]:
        """The person's messages to the account dated ``oldest`` or later, newest first, at most
        ``HISTORY_PAGES`` pages."""
        peer = raw.types.InputPeerUser(user_id=person.id, access_hash=person.access_hash or 0)
        keys = self._keys_of(person)
        replies: list[Reply] = []
        with contextlib.suppress(_CutShort):  # what was read is what came
            async with contextlib.aclosing(_history_since(client, peer, oldest)) as messages:
                async for message in messages:
                    if isinstance(message, raw.types.Message) and not message.out:
                        replies.append(
                            Reply(keys, datetime.fromtimestamp(message.date, UTC), message.message or "")
                        )
        return replies

    def _keys_of(self, person: raw.types.User) -> tuple[str, ...]:
        """Every key the person is known by, as ``Target.key`` spells them."""
        names = [person.username, *(u.username for u in person.usernames or [])]
        keys = [f"id:{person.id}", *(f"u:{name.lower()}" for name in names if name)]
        if person.phone:
            keys.append(f"p:+{_digits(person.phone)}")
        reached = self._phone_keys.get(person.id)
        if reached is not None:
            keys.append(reached)
        return tuple(dict.fromkeys(keys))

    # --- invite links --------------------------------------------------------------------------
    async def create_invite_link(self, group_id: str, expires_at: datetime) -> LinkMade:
        async def make(client: pyrogram.Client) -> LinkMade | Outcome:
            chat = await self._chat(client, group_id)
            if isinstance(chat, Outcome):
                return chat
            peer: Any = await client.resolve_peer(chat)  # a basic group's or a channel's (``_chat``)
            invite = await client.invoke(
                raw.functions.messages.ExportChatInvite(
                    peer=peer,
                    expire_date=int(expires_at.timestamp()),
                    usage_limit=1,
                )
            )
            if not isinstance(invite, raw.types.ChatInviteExported):
                return Outcome(OutcomeKind.TRANSIENT, detail=f"unexpected answer: {type(invite).__name__}")
            # Telegram's own expiry where it names one: that is when the link stops working
            until = datetime.fromtimestamp(invite.expire_date, UTC) if invite.expire_date else expires_at
            return LinkMade(Outcome(OutcomeKind.SUCCESS), InviteLink(invite.link, until))

        made = await self._bounded(make, "telegram_link_not_made")
        return LinkMade(made) if isinstance(made, Outcome) else made

    async def link_joins(self, group_id: str, urls: Sequence[str]) -> LinkJoins:
        """One ``messages.getChatInviteImporters`` per link, all within the call time limit; a link
        Telegram no longer has (``LINK_GONE``) has nobody, any other error is the answer."""

        async def read(client: pyrogram.Client) -> list[LinkJoin] | Outcome:
            chat = await self._chat(client, group_id)
            if isinstance(chat, Outcome):
                return chat
            peer = await client.resolve_peer(chat)
            joins: list[LinkJoin] = []
            for url in urls:
                try:
                    joins += await self._importers(client, peer, url)
                except RPCError as exc:
                    if outcome_for(exc).detail not in LINK_GONE:
                        raise
            return joins

        joins = await self._bounded(read, "telegram_link_joins_not_read")
        if isinstance(joins, Outcome):
            return LinkJoins([], joins)
        return LinkJoins(sorted(joins, key=lambda j: j.at), Outcome(OutcomeKind.SUCCESS))

    async def revoke_invite_link(self, group_id: str, url: str) -> Outcome:
        async def revoke(client: pyrogram.Client) -> Outcome:
            chat = await self._chat(client, group_id)
            if isinstance(chat, Outcome):
                return chat
            peer: Any = await client.resolve_peer(chat)
            await client.invoke(
                raw.functions.messages.EditExportedChatInvite(peer=peer, link=url, revoked=True)
            )
            return Outcome(OutcomeKind.SUCCESS)

        outcome = await self._bounded(revoke)
        if outcome.detail in LINK_GONE:  # nobody can use it any more: what a revoke is for
            return Outcome(OutcomeKind.SUCCESS, detail=f"{outcome.detail}: already revoked or gone")
        return outcome

    async def _importers(self, client: pyrogram.Client, peer: Any, url: str) -> list[LinkJoin]:
        answer: Any = await client.invoke(
            raw.functions.messages.GetChatInviteImporters(
                peer=peer,
                link=url,
                offset_date=0,
                offset_user=raw.types.InputUserEmpty(),
                limit=IMPORTERS_PAGE,
            )
        )
        users = {u.id: u for u in answer.users if isinstance(u, raw.types.User)}
        return [
            LinkJoin(
                url,
                self._keys_of(users[i.user_id]) if i.user_id in users else (f"id:{i.user_id}",),
                datetime.fromtimestamp(i.date, UTC),
            )
            for i in answer.importers
            if not i.requested  # a request to join waits for an admin: nobody joined yet
        ]

    # --- helpers -------------------------------------------------------------------------------
    async def _bounded(
        self,
        work: Callable[[pyrogram.Client], Coroutine[Any, Any, T]],
        event: str = "",
        fate_unknown: Callable[[], bool] = lambda: False,
    ) -> T | Outcome:
        """``work``'s answer within the call time limit, or the outcome of its failure (logged as
        ``event``, if named); a failure of the connection after ``fate_unknown()`` turned true
        (a send handed over) is ``DELIVERY_UNKNOWN``."""
        client = self._client
        if client is None:
            return Outcome(OutcomeKind.TRANSIENT, detail="client not initialized")
        try:
            async with asyncio.timeout(self._config.call_timeout_seconds):
                return await _watched(client, work(client))
        except Exception as exc:  # the engine never sees a pyrogram exception
            outcome = _failure(client, exc)
            lost = isinstance(exc, (*NETWORK_ERRORS, InternalServerError))
            if lost and outcome.kind is OutcomeKind.TRANSIENT and fate_unknown():
                return Outcome(
                    OutcomeKind.DELIVERY_UNKNOWN, detail=f"no answer to the send: {outcome.detail}"
                )
            if event:
                log.info(event, account_id=self._account.id, outcome=str(outcome.kind), detail=outcome.detail)
            return outcome

    async def _chat(self, client: pyrogram.Client, group_id: str) -> int | Outcome:
        """The group's marked id (as Pyrogram's methods take it), or why it can't be used."""
        ref = chat_ref(group_id)
        if ref is None:
            return Outcome(
                OutcomeKind.CHAT_UNAVAILABLE,
                detail="not a group id (negative; -100… for a supergroup or channel), @username or public "
                "t.me link (private invite links can't be resolved)",
            )
        try:
            peer = await self._resolve_chat(client, ref)
        except RPCError as exc:
            outcome = outcome_for(exc)
            if outcome.kind is OutcomeKind.NOT_FOUND:
                return Outcome(
                    OutcomeKind.CHAT_UNAVAILABLE,
                    detail=f"{outcome.detail}: this account can't find the group",
                )
            return outcome
        if not isinstance(peer, raw.types.InputPeerChannel | raw.types.InputPeerChat):
            return Outcome(OutcomeKind.CHAT_UNAVAILABLE, detail="not a group or channel")
        return utils.get_peer_id(peer)

    async def _resolve_chat(self, client: pyrogram.Client, ref: int | str) -> Any:
        if isinstance(ref, int) and not await _known(client, ref):
            await self._find_in_dialogs(client, ref)  # Telegram needs the access hash a dialog brings
        return await client.resolve_peer(ref)

    async def _find_in_dialogs(self, client: pyrogram.Client, peer_id: int) -> bool:
        """Page through the account's dialogs until ``peer_id`` is met (``invoke`` stores every peer)."""
        async with contextlib.aclosing(_dialog_pages(client, self._config.dialog_pages)) as pages:
            async for _ in pages:
                if await _known(client, peer_id):
                    return True
        return False

    async def _person(self, client: pyrogram.Client, target: Target) -> _Person | Outcome:
        if target.kind is TargetKind.PHONE:
            return await self._import(client, target)
        if target.kind is TargetKind.USERNAME:
            peer = await client.resolve_peer(target.value.lstrip("@"))
            if not isinstance(peer, raw.types.InputPeerUser):
                return Outcome(
                    OutcomeKind.NOT_FOUND, detail="the username is a group's or a channel's, not a person's"
                )
            return _Person(peer.user_id)
        if not target.value.isdecimal():
            return Outcome(OutcomeKind.NOT_FOUND, detail="not a user id")
        try:
            peer = await client.resolve_peer(int(target.value))
        except (PeerIdInvalid, UserIdInvalid) as exc:
            return Outcome(OutcomeKind.NOT_FOUND, detail=f"{exc.ID}: {UNKNOWN_USER_ID}")
        if not isinstance(peer, raw.types.InputPeerUser):
            return Outcome(OutcomeKind.NOT_FOUND, detail="the id is a group's or a channel's, not a person's")
        return _Person(peer.user_id)

    async def _import(self, client: pyrogram.Client, target: Target) -> _Person | Outcome:
        """The person with this phone: one of the account's own contacts as it is (importing it
        again would rename the owner's contact), else imported; only Telegram's answer says
        whether someone has it. After "import later" (``retry_contacts``) the account's phone
        imports rest for ``phone_import_rest_seconds``."""
        now = self._config.clock.now()
        resting = self._rests.phone_imports
        if resting is not None and now < resting:
            return Outcome(
                OutcomeKind.TRANSIENT,
                detail=f"retry_contacts: phone imports rest until {resting.isoformat()}",
            )
        if self._contacts_before is None:
            users = await client.get_contacts()
            self._contacts_before = {user.id for user in users}
            self._contact_phones = {_digits(u.phone_number): u.id for u in users if u.phone_number}
        own = self._contact_phones.get(_digits(target.value))
        if own is not None:
            self._phone_keys[own] = target.key
            return _Person(own)
        first_name, last_name = _names(target)
        self._client_ids += 1
        contact = raw.types.InputPhoneContact(
            client_id=self._client_ids, phone=target.value, first_name=first_name, last_name=last_name
        )
        answer = await client.invoke(raw.functions.contacts.ImportContacts(contacts=[contact]))
        user_id = next((c.user_id for c in answer.imported if c.client_id == contact.client_id), None)
        if user_id is not None:
            self._phone_keys[user_id] = target.key  # a reply from them answers this target
            known = user_id in self._contacts_before
            return _Person(user_id, imported=not known and not self._config.keep_imported_contacts)
        if contact.client_id in answer.retry_contacts:
            until = now + timedelta(seconds=self._config.phone_import_rest_seconds)
            self._rests.phone_imports = until
            return Outcome(
                OutcomeKind.TRANSIENT,
                detail=f"retry_contacts: Telegram postponed this import; phone imports rest until {until.isoformat()}",
            )
        return Outcome(
            OutcomeKind.NOT_FOUND,
            detail="phone not imported: not on Telegram, or its owner lets only contacts find them by number",
        )

    async def _forget(self, client: pyrogram.Client, person: _Person) -> None:
        if not person.imported:
            return
        try:
            await client.delete_contacts([person.user_id])
        except Exception as exc:  # the action's outcome stands; the contact stays behind
            log.warning(
                "telegram_contact_cleanup_failed",
                account_id=self._account.id,
                outcome=str(outcome_for(exc).kind),
                error_class=type(exc).__name__,
            )


async def _start(client: pyrogram.Client) -> int:
    """Connect and learn the account's own id; never ``initialize`` (no updates watchdog)."""
    await client.connect()
    me = await client.get_me()
    if not await client.storage.user_id():
        await client.storage.user_id(me.id)
        await client.storage.is_bot(bool(me.is_bot))
    client.me = me
    return int(me.id)


async def _stop(client: pyrogram.Client) -> None:
    """Disconnect, whatever state the client is in: no connection stays on the account's key."""
    session = client.session
    try:
        if client.is_connected:
            await client.disconnect()
    except Exception as exc:
        log.warning("telegram_stop_failed", error_class=type(exc).__name__)
    if session is not None and session.connection is not None and session.connection.protocol is not None:
        with contextlib.suppress(Exception):  # already closed by the disconnect, most often
            await session.connection.close()


def _failure(client: pyrogram.Client, exc: Exception) -> Outcome:
    """What ``exc`` means, or what kurigram's receive task died of (``_transport_error``)."""
    return outcome_for(_transport_error(client) or exc)


def _transport_error(client: pyrogram.Client) -> BaseException | None:
    """The transport error (−404: the auth key is unknown) kurigram's receive task died of, if it
    did: it is raised there, where no caller sees it, and kurigram does not reconnect after it;
    the caller would only ever see its own timeout."""
    session = client.session
    task = session.recv_task if session is not None else None
    if task is None or not task.done() or task.cancelled():
        return None
    error = task.exception()
    return error if isinstance(error, TRANSPORT_CLASSES) else None


async def _watched(client: pyrogram.Client, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result, unless kurigram's receive task dies of a transport error first: then
    that error is raised and ``work`` cancelled (looked at every ``TRANSPORT_CHECK_SECONDS``)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=TRANSPORT_CHECK_SECONDS)
            if done:
                return task.result()
            dead = _transport_error(client)
            if dead is not None:
                raise dead
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def _add_member(client: pyrogram.Client, chat: int, user_id: int) -> Outcome:
    """Invite, then believe only Telegram's own record: the answer's updates tell "added now"
    (a service message adding the person) from "already a member" (no error, no message), and
    the group's member list confirms either before the person counts as invited."""
    group: Any = await client.resolve_peer(chat)  # a basic group's or a channel's (``_chat``)
    peer: Any = await client.resolve_peer(user_id)  # a person's (``_person``)
    person = raw.types.InputUser(user_id=peer.user_id, access_hash=peer.access_hash)
    if isinstance(group, raw.types.InputPeerChat):
        answer: Any = await client.invoke(
            raw.functions.messages.AddChatUser(chat_id=group.chat_id, user_id=person, fwd_limit=0)
        )
    else:
        channel = raw.types.InputChannel(channel_id=group.channel_id, access_hash=group.access_hash)
        answer = await client.invoke(raw.functions.channels.InviteToChannel(channel=channel, users=[person]))
    if answer.missing_invitees:
        return Outcome(OutcomeKind.PRIVACY_RESTRICTED, detail=_missing_invitee(answer.missing_invitees[0]))
    added = _adds(answer.updates, user_id)
    if not await _is_member(client, group, peer):
        return Outcome(
            OutcomeKind.TARGET_UNAVAILABLE,
            detail="Telegram answered without an error, but the person is not in the group",
        )
    if added:
        return Outcome(OutcomeKind.SUCCESS, detail="added; in the group's member list")
    return Outcome(OutcomeKind.ALREADY_MEMBER, detail="already a member: Telegram's answer added no one")


async def _members_may_invite(client: pyrogram.Client, chat: int) -> bool:
    """Whether the group's default rights let its members add people (never in a channel)."""
    peer: Any = await client.resolve_peer(chat)
    if isinstance(peer, raw.types.InputPeerChat):
        answer: Any = await client.invoke(raw.functions.messages.GetChats(id=[peer.chat_id]))
    else:
        channel = raw.types.InputChannel(channel_id=peer.channel_id, access_hash=peer.access_hash)
        answer = await client.invoke(raw.functions.channels.GetChannels(id=[channel]))
    group = answer.chats[0]
    if getattr(group, "broadcast", False):
        return False
    banned = group.default_banned_rights
    return banned is None or not banned.invite_users


def _adds(updates: Any, user_id: int) -> bool:
    """Whether the updates hold a service message adding ``user_id``."""
    for update in getattr(updates, "updates", []):
        message = getattr(update, "message", None)
        action = getattr(message, "action", None)
        if isinstance(action, raw.types.MessageActionChatAddUser) and user_id in action.users:
            return True
    return False


async def _is_member(client: pyrogram.Client, group: Any, peer: Any) -> bool:
    if isinstance(group, raw.types.InputPeerChat):
        full: Any = await client.invoke(raw.functions.messages.GetFullChat(chat_id=group.chat_id))
        participants = getattr(full.full_chat.participants, "participants", [])
        return any(p.user_id == peer.user_id for p in participants)
    channel = raw.types.InputChannel(channel_id=group.channel_id, access_hash=group.access_hash)
    try:
        await client.invoke(raw.functions.channels.GetParticipant(channel=channel, participant=peer))
    except UserNotParticipant:
        return False
    return True


async def _sent_since(client: pyrogram.Client, user_id: int, since: datetime) -> bool | None:
    """Whether the dialog with ``user_id`` holds an outgoing message dated ``since`` or later,
    newest first, a page at a time; None when more than ``HISTORY_PAGES`` pages are that new."""
    peer = await client.resolve_peer(user_id)
    if not isinstance(peer, raw.types.InputPeerUser):
        return None
    try:
        async with contextlib.aclosing(_history_since(client, peer, int(since.timestamp()))) as messages:
            async for message in messages:
                if message.out:
                    return True
    except _CutShort:
        return None
    return False  # that was the whole dialog since then


class _DialogPage(NamedTuple):
    dialogs: list[Any]  # raw.types.Dialog, newest first (the pinned ones before)
    users: list[Any]
    tops: dict[tuple[int, int], int]  # (peer id, message id) → date of each dialog's top message


async def _dialog_pages(client: pyrogram.Client, pages: int) -> AsyncGenerator[_DialogPage, None]:
    """The account's dialogs a page at a time (messages.getDialogs, ``pages`` at most), each page
    offset from the last dialog of the one before; ends after the last page."""
    offset_date, offset_id = 0, 0
    offset_peer: Any = raw.types.InputPeerEmpty()
    for _ in range(pages):
        page = await client.invoke(
            raw.functions.messages.GetDialogs(
                offset_date=offset_date,
                offset_id=offset_id,
                offset_peer=offset_peer,
                limit=DIALOGS_PAGE,
                hash=0,
            )
        )
        if isinstance(page, raw.types.messages.DialogsNotModified):
            return
        dialogs = [d for d in page.dialogs if isinstance(d, raw.types.Dialog)]
        tops = {
            (utils.get_peer_id(m.peer_id), m.id): m.date
            for m in page.messages
            if isinstance(m, raw.types.Message | raw.types.MessageService)
        }
        yield _DialogPage(dialogs, list(page.users), tops)
        if not dialogs or not isinstance(page, raw.types.messages.DialogsSlice):
            return  # that was every dialog
        last = dialogs[-1]
        last_peer_id = utils.get_peer_id(last.peer)
        offset_id, offset_date = last.top_message, tops.get((last_peer_id, last.top_message), 0)
        offset_peer = await client.resolve_peer(last_peer_id)


class _CutShort(Exception):
    """More of the dialog is that new than ``HISTORY_PAGES`` pages, or the server would not say."""


async def _history_since(client: pyrogram.Client, peer: Any, oldest: int) -> AsyncGenerator[Any, None]:
    """The dialog's messages dated ``oldest`` (a Unix time) or later, newest first, a page at a
    time; _CutShort past ``HISTORY_PAGES`` pages of them, or when the server will not tell."""
    offset_id = 0
    for _ in range(HISTORY_PAGES):
        page = await client.invoke(
            raw.functions.messages.GetHistory(
                peer=peer,
                offset_id=offset_id,
                offset_date=0,
                add_offset=0,
                limit=HISTORY_PAGE,
                max_id=0,
                min_id=0,
                hash=0,
            )
        )
        if isinstance(page, raw.types.messages.MessagesNotModified):
            raise _CutShort
        messages = [m for m in page.messages if not isinstance(m, raw.types.MessageEmpty)]
        for message in messages:
            if message.date < oldest:
                return
            yield message
        if not messages or not isinstance(page, raw.types.messages.MessagesSlice):
            return  # that was the whole dialog
        offset_id = messages[-1].id
    raise _CutShort


async def _known(client: pyrogram.Client, peer_id: int) -> bool:
    try:
        await client.storage.get_peer_by_id(peer_id)
    except KeyError:
        return False
    return True


def _digits(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())


def _names(target: Target) -> tuple[str, str]:
    first = str(target.data.get("first_name") or "").strip() or target.value
    last = str(target.data.get("last_name") or "").strip()
    return first, last


def _missing_invitee(missing: raw.types.MissingInvitee) -> str:
    if missing.premium_would_allow_invite:
        reason = "their privacy settings let only contacts and Premium users add them"
    elif missing.premium_required_for_pm:
        reason = "their privacy settings let only contacts add them, and only Premium users message them"
    else:
        reason = "their privacy settings keep them out"
    return f"MISSING_INVITEE: not added, {reason}"
