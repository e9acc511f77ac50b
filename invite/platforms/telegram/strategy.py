"""The Telegram platform on kurigram: one client per account, every answer an ``Outcome``.

The client lives in memory, takes no updates and never sleeps through a FloodWait
(``sleep_threshold=0``): the engine decides what a wait means. It is connected once in
``initialize_client`` and reused until ``close``. It is started by hand (connect, then
``users.getFullUser`` for the account's own id) rather than with ``Client.start``, which would
fall into the interactive login when the session lacks a user id, as converted Telethon
sessions do.

People are reached by ``@username`` (resolved), by numeric id (only when this account has met
them: Telegram needs the access hash that comes with that meeting) or by ``+phone`` (imported
as a contact, and deleted again afterwards unless ``keep_imported_contacts``; contacts the
account had before are never deleted).

Groups are named by ``@username``, a ``t.me/`` link or a numeric id; a numeric id the client has
not met is looked up in the account's dialogs (a few pages).

Whether a message went out (asked of one whose worker died mid-send) is read from the account's
own dialog with the person: an outgoing message dated since the attempt began.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyrogram
import structlog
from pyrogram import enums, raw, types, utils
from pyrogram.errors import PeerIdInvalid, RPCError, UserIdInvalid

from invite.platforms.base import AccountData, Outcome, OutcomeKind, RateLimits, Target, TargetKind
from invite.platforms.telegram.errors import INVALID_SESSION, outcome_for
from invite.platforms.telegram.sessions import InvalidSession, pyrogram_session_string
from invite.settings import Settings

log = structlog.get_logger(__name__)

DRIVER = "telegram"
UNKNOWN_USER_ID = "user id not known to this account; import by username or phone"
DIALOGS_PAGE = 100
HISTORY_PAGE = 50
HISTORY_PAGES = 4  # more than this many messages in the dialog since the send: "can't tell"
# Telegram dates a message by its own clock, in whole seconds: a message this much older than
# the moment asked about still counts as that send (a false "sent" is safe, a false "not sent"
# would message the person twice)
CLOCK_TOLERANCE = timedelta(seconds=30)
_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
_LINK_PREFIX = re.compile(r"^(?:https?://)?(?:t\.me|telegram\.me|telegram\.dog)/", re.IGNORECASE)

ClientFactory = Callable[..., pyrogram.Client]  # called with pyrogram.Client's keyword arguments


@dataclass(frozen=True)
class TelegramConfig:
    api_id: int
    api_hash: str
    limits: RateLimits
    keep_imported_contacts: bool = False
    connect_timeout_seconds: float = 30.0
    dialog_pages: int = 5  # pages of DIALOGS_PAGE dialogs searched for a numeric group id
    client_factory: ClientFactory = pyrogram.Client


class TelegramFactory:
    """Makes a ``TelegramStrategy`` per account; api_id/api_hash come from Vault or the environment."""

    driver = DRIVER

    def __init__(
        self,
        api_id: int,
        api_hash: str,
        *,
        limits: RateLimits,
        keep_imported_contacts: bool = False,
        connect_timeout_seconds: float = 30.0,
        dialog_pages: int = 5,
        client_factory: ClientFactory = pyrogram.Client,
    ) -> None:
        self._config = TelegramConfig(
            api_id,
            api_hash,
            limits,
            keep_imported_contacts,
            connect_timeout_seconds,
            dialog_pages,
            client_factory,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        api_id: int | None = None,
        api_hash: str | None = None,
        client_factory: ClientFactory = pyrogram.Client,
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
            client_factory=client_factory,
        )

    def for_account(self, account: AccountData) -> TelegramStrategy:
        return TelegramStrategy(account, self._config)


@dataclass(frozen=True)
class _Person:
    user_id: int
    imported: bool = False  # a contact this strategy imported, to delete after the action


class TelegramStrategy:
    """``InviteStrategy`` for one Telegram account."""

    driver = DRIVER

    def __init__(self, account: AccountData, config: TelegramConfig) -> None:
        self._account = account
        self._config = config
        self._client: pyrogram.Client | None = None
        self._contacts_before: set[int] | None = None  # the account's own contacts, read once
        self._client_ids = 0  # numbers imported contacts; Telegram's answer refers to them by it

    # --- lifecycle -----------------------------------------------------------------------------
    async def initialize_client(self, account: AccountData) -> Outcome:
        if self._client is not None:
            return Outcome(OutcomeKind.SUCCESS, detail="already connected")
        self._account = account
        try:
            session_string = pyrogram_session_string(account.session, self._config.api_id)
        except InvalidSession as exc:
            log.warning("telegram_invalid_session", account_id=account.id, reason=str(exc))
            return Outcome(OutcomeKind.ACCOUNT_DEAD, detail=f"{INVALID_SESSION}: {exc}")
        client = self._config.client_factory(
            name=f"invite-{account.id}",
            api_id=self._config.api_id,
            api_hash=self._config.api_hash,
            session_string=session_string,
            in_memory=True,
            no_updates=True,
            sleep_threshold=0,
            parse_mode=enums.ParseMode.DISABLED,
            fetch_replies=False,
            fetch_topics=False,
            fetch_stories=False,
            fetch_stickers=False,
        )
        try:
            user_id = await asyncio.wait_for(_start(client), self._config.connect_timeout_seconds)
        except BaseException as exc:
            await _stop(client)
            if not isinstance(exc, Exception):
                raise  # cancelled: let go of the half-started client, then go on cancelling
            outcome = outcome_for(exc)  # the engine never sees a pyrogram exception
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
        if client is not None:
            await _stop(client)

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
        async def check(client: pyrogram.Client) -> Outcome:
            chat = await self._chat(client, group_id)
            if isinstance(chat, Outcome):
                return chat
            member = await client.get_chat_member(chat, "me")
            if member.status is enums.ChatMemberStatus.OWNER:
                return Outcome(OutcomeKind.SUCCESS, detail="creator")
            if member.status is enums.ChatMemberStatus.ADMINISTRATOR:
                # A basic group's admins carry no privileges object: they may always add members.
                if member.privileges is None or member.privileges.can_invite_users:
                    return Outcome(OutcomeKind.SUCCESS, detail="administrator with the right to invite")
                return Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail="administrator without the right to invite")
            return Outcome(OutcomeKind.NO_ADMIN_RIGHT, detail=f"{member.status.value}, not an administrator")

        return await self._guarded(check)

    async def invite_to_group(self, target: Target, group_id: str) -> Outcome:
        async def invite(client: pyrogram.Client) -> Outcome:
            chat = await self._chat(client, group_id)
            if isinstance(chat, Outcome):
                return chat
            person = await self._person(client, target)
            if isinstance(person, Outcome):
                return person
            try:
                failed = await client.add_chat_members(chat, person.user_id)
            finally:
                await self._forget(client, person)
            if failed:
                return Outcome(OutcomeKind.PRIVACY_RESTRICTED, detail=_missing_invitee(failed[0]))
            return Outcome(OutcomeKind.SUCCESS)

        return await self._guarded(invite)

    async def send_message(self, target: Target, text: str) -> Outcome:
        async def send(client: pyrogram.Client) -> Outcome:
            person = await self._person(client, target)
            if isinstance(person, Outcome):
                return person
            try:
                await client.send_message(person.user_id, text)
            finally:
                await self._forget(client, person)
            return Outcome(OutcomeKind.SUCCESS)

        return await self._guarded(send)

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

        return await self._guarded(add)

    async def was_message_sent(self, target: Target, since: datetime) -> bool | None:
        """Read from the account's own dialog with the person: an outgoing message dated at or
        after ``since`` (less ``CLOCK_TOLERANCE``). The raw ``messages.getHistory``, not
        ``get_chat_history``: that one sleeps through FloodWaits under a minute, and only the
        date and direction of each message are needed."""
        client = self._client
        if client is None:
            return None
        try:
            person = await self._person(client, target)
            if isinstance(person, Outcome):
                log.info("telegram_delivery_unknown", account_id=self._account.id, detail=person.detail)
                return None
            try:
                return await _sent_since(client, person.user_id, since - CLOCK_TOLERANCE)
            finally:
                await self._forget(client, person)
        except Exception as exc:  # the engine never sees a pyrogram exception
            outcome = outcome_for(exc)
            log.info(
                "telegram_delivery_unknown",
                account_id=self._account.id,
                outcome=str(outcome.kind),
                detail=outcome.detail,
            )
            return None

    # --- helpers -------------------------------------------------------------------------------
    async def _guarded(self, action: Callable[[pyrogram.Client], Awaitable[Outcome]]) -> Outcome:
        client = self._client
        if client is None:
            return Outcome(OutcomeKind.TRANSIENT, detail="client not initialized")
        try:
            return await action(client)
        except Exception as exc:  # the engine never sees a pyrogram exception
            return outcome_for(exc)

    async def _chat(self, client: pyrogram.Client, group_id: str) -> int | Outcome:
        """The group's marked id (as Pyrogram's methods take it), or why it can't be used."""
        ref = chat_ref(group_id)
        if ref is None:
            return Outcome(
                OutcomeKind.CHAT_UNAVAILABLE,
                detail="not a group id, @username or public t.me link (private invite links can't be resolved)",
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
        offset_date, offset_id = 0, 0
        offset_peer: Any = raw.types.InputPeerEmpty()
        for _ in range(self._config.dialog_pages):
            page = await client.invoke(
                raw.functions.messages.GetDialogs(
                    offset_date=offset_date,
                    offset_id=offset_id,
                    offset_peer=offset_peer,
                    limit=DIALOGS_PAGE,
                    hash=0,
                )
            )
            if await _known(client, peer_id):
                return True
            if not isinstance(page, raw.types.messages.DialogsSlice):
                return False  # that was every dialog
            dialogs = [d for d in page.dialogs if isinstance(d, raw.types.Dialog)]
            if not dialogs:
                return False
            last = dialogs[-1]
            last_peer_id = utils.get_peer_id(last.peer)
            dates = {
                (utils.get_peer_id(m.peer_id), m.id): m.date
                for m in page.messages
                if isinstance(m, raw.types.Message | raw.types.MessageService)
            }
            offset_id, offset_date = last.top_message, dates.get((last_peer_id, last.top_message), 0)
            offset_peer = await client.resolve_peer(last_peer_id)
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
        """Import the phone as a contact; only Telegram's answer says whether someone has it."""
        if self._contacts_before is None and not self._config.keep_imported_contacts:
            self._contacts_before = {user.id for user in await client.get_contacts()}
        first_name, last_name = _names(target)
        self._client_ids += 1
        contact = raw.types.InputPhoneContact(
            client_id=self._client_ids, phone=target.value, first_name=first_name, last_name=last_name
        )
        answer = await client.invoke(raw.functions.contacts.ImportContacts(contacts=[contact]))
        user_id = next((c.user_id for c in answer.imported if c.client_id == contact.client_id), None)
        if user_id is not None:
            known = self._contacts_before is not None and user_id in self._contacts_before
            return _Person(user_id, imported=not known and not self._config.keep_imported_contacts)
        if contact.client_id in answer.retry_contacts:
            return Outcome(
                OutcomeKind.TRANSIENT, detail="retry_contacts: Telegram postponed this contact import"
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


def chat_ref(group_id: str) -> int | str | None:
    """A group reference Pyrogram resolves: a marked numeric id or a username; None otherwise."""
    text = _LINK_PREFIX.sub("", group_id.strip()).lstrip("@").rstrip("/")
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text if _USERNAME.match(text) else None


async def _start(client: pyrogram.Client) -> int:
    await client.connect()
    me = await client.get_me()
    if not await client.storage.user_id():
        await client.storage.user_id(me.id)
        await client.storage.is_bot(bool(me.is_bot))
    client.me = me
    await client.initialize()
    return int(me.id)


async def _stop(client: pyrogram.Client) -> None:
    try:
        if client.is_initialized:
            await client.stop()
        elif client.is_connected:
            await client.disconnect()
    except Exception as exc:
        log.warning("telegram_stop_failed", error_class=type(exc).__name__)


async def _sent_since(client: pyrogram.Client, user_id: int, since: datetime) -> bool | None:
    """Whether the dialog with ``user_id`` holds an outgoing message dated ``since`` or later,
    newest first, a page at a time; None when more than ``HISTORY_PAGES`` pages are that new."""
    peer = await client.resolve_peer(user_id)
    if not isinstance(peer, raw.types.InputPeerUser):
        return None
    oldest = int(since.timestamp())
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
            return None
        messages = [m for m in page.messages if not isinstance(m, raw.types.MessageEmpty)]
        for message in messages:
            if message.date < oldest:
                return False
            if message.out:
                return True
        if not messages or not isinstance(page, raw.types.messages.MessagesSlice):
            return False  # that was the whole dialog
        offset_id = messages[-1].id
    return None


async def _known(client: pyrogram.Client, peer_id: int) -> bool:
    try:
        await client.storage.get_peer_by_id(peer_id)
    except KeyError:
        return False
    return True


def _names(target: Target) -> tuple[str, str]:
    first = str(target.data.get("first_name") or "").strip() or target.value
    last = str(target.data.get("last_name") or "").strip()
    return first, last


def _missing_invitee(failed: types.FailedToAddMember) -> str:
    if failed.premium_would_allow_invite:
        reason = "their privacy settings let only contacts and Premium users add them"
    elif failed.premium_required_to_send_messages:
        reason = "their privacy settings let only contacts add them, and only Premium users message them"
    else:
        reason = "their privacy settings keep them out"
    return f"MISSING_INVITEE: not added, {reason}"
