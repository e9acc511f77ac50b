"""The platform port: what the engine asks of a platform, and the typed outcomes it gets back.

Adapters (the Telegram one on kurigram, the sandbox simulator, later Instagram and
WhatsApp) implement ``InviteStrategy``; no platform exception ever reaches the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import msgspec


class OutcomeKind(StrEnum):
    SUCCESS = "success"
    ALREADY_MEMBER = "already_member"
    PRIVACY_RESTRICTED = "privacy_restricted"  # the person does not accept this: skip them
    NOT_FOUND = "not_found"  # no such person, or an identifier the account cannot resolve
    TARGET_UNAVAILABLE = "target_unavailable"  # the person can't be reached (kicked, deleted, ...)
    BLOCKED = "blocked"  # the person blocked this account (or it them): an opt-out, for good
    FLOOD_WAIT = "flood_wait"  # the account must wait `seconds`
    PEER_FLOOD = "peer_flood"  # Telegram's spam flag on the account
    ACCOUNT_DEAD = "account_dead"  # banned, deactivated, session revoked
    NO_ADMIN_RIGHT = "no_admin_right"  # this account may not invite into / write to the chat
    CHAT_UNAVAILABLE = "chat_unavailable"  # the group itself refuses (full, private, gone)
    TRANSIENT = "transient"  # network, timeout, unknown RPC error: retry later
    # a message was handed to the platform and no answer came back: it may have gone out
    DELIVERY_UNKNOWN = "delivery_unknown"


class AccountEvent(StrEnum):
    """Account-level events reported back to the accounts provider (the platform's vocabulary)."""

    FLOOD_WAIT = "flood_wait"
    PEER_FLOOD = "peer_flood"
    AUTH_KEY_ERROR = "auth_key_error"
    USER_DEACTIVATED = "user_deactivated"
    PHONE_NUMBER_BANNED = "phone_number_banned"
    PRIVACY_RESTRICTED = "privacy_restricted"
    NETWORK_ERROR = "network_error"
    UNKNOWN_ERROR = "unknown_error"


class Outcome(msgspec.Struct, frozen=True):
    kind: OutcomeKind
    seconds: float = 0.0  # FloodWait / slow-mode wait announced by the server
    detail: str = ""  # the platform's error id or a short reason, for the execution log
    # what the accounts provider is told, from the driver's own error table; None: nothing is
    # (the engine's decision table says what the outcome does, never what is reported)
    event: AccountEvent | None = None


class TargetKind(StrEnum):
    USERNAME = "username"
    USER_ID = "user_id"
    PHONE = "phone"


class Target(msgspec.Struct, frozen=True):
    """A person to act on, identified the way the audience gave them."""

    kind: TargetKind
    value: str  # username without '@', decimal user id, or an E.164 phone
    data: dict[str, Any] = msgspec.field(default_factory=dict)  # first_name, last_name, ...

    @property
    def key(self) -> str:
        """The normalised identity used for "nobody twice" (matches invite_targets.identifier_key)."""
        prefix = {TargetKind.USERNAME: "u", TargetKind.USER_ID: "id", TargetKind.PHONE: "p"}[self.kind]
        value = self.value.lower() if self.kind is TargetKind.USERNAME else self.value
        return f"{prefix}:{value}"

    @classmethod
    def from_key(cls, key: str, data: dict[str, Any] | None = None) -> Target:
        prefix, _, value = key.partition(":")
        kind = {"u": TargetKind.USERNAME, "id": TargetKind.USER_ID, "p": TargetKind.PHONE}[prefix]
        return cls(kind, value, data or {})


class Reply(msgspec.Struct, frozen=True):
    """A message a person sent the account: who (every identifier key the platform knows them
    by, as ``Target.key`` spells them: ``id:<user id>``, ``u:<username>``, ``p:<+phone>``),
    when, and what it says (read for the stop words, never stored)."""

    keys: tuple[str, ...]
    at: datetime  # timezone-aware
    text: str

    def __repr__(self) -> str:  # a person's words stay out of logs and tracebacks
        return f"Reply(keys={self.keys!r}, at={self.at!r})"


class Replies(msgspec.Struct, frozen=True):
    """What ``read_replies`` found, and how reading went: ``SUCCESS``, or why it stopped (a
    ``FLOOD_WAIT`` with its seconds: the poll rests that long; anything else: try next time).
    Replies come only with ``SUCCESS``."""

    replies: list[Reply]
    outcome: Outcome


class InviteLink(msgspec.Struct, frozen=True):
    """A one-use invite link into a group (``usage_limit=1``): its URL and when it stops working."""

    url: str
    expires_at: datetime  # timezone-aware


class LinkMade(msgspec.Struct, frozen=True):
    """What ``create_invite_link`` made: ``SUCCESS`` with the link, or why not (no link)."""

    outcome: Outcome
    link: InviteLink | None = None


class LinkJoin(msgspec.Struct, frozen=True):
    """A person who joined through one of our links: which link, who (every identifier key the
    platform knows them by, as ``Target.key`` spells them), and when."""

    url: str
    keys: tuple[str, ...]
    at: datetime  # timezone-aware


class LinkJoins(msgspec.Struct, frozen=True):
    """What ``link_joins`` found, and how reading went (``SUCCESS``, or why it stopped: a
    ``FLOOD_WAIT`` rests the reading for its seconds). Joins come only with ``SUCCESS``."""

    joins: list[LinkJoin]
    outcome: Outcome


class RateLimits(msgspec.Struct, frozen=True):
    daily_quota: int
    daily_quota_with_link: int
    min_pause_seconds: float


class AccountData(msgspec.Struct, frozen=True):
    """An account as the accounts provider hands it out. ``session`` is secret: never log it."""

    id: str
    user_id: str
    label: str = ""
    session: str = msgspec.field(default="", name="session")
    daily_limit: int | None = None  # the lowest limit the provider reports, if any
    channel_limit: int | None = None  # invites a day into one channel, if the provider has such a limit
    contacts_limit: int | None = None  # phone numbers it may import as contacts a day, if limited
    # how long the provider's lease on it lasts from when it was granted (None: it never runs out)
    lease_seconds: float | None = None

    def __repr__(self) -> str:  # keep the session out of every log line and traceback
        return f"AccountData(id={self.id!r}, user_id={self.user_id!r}, label={self.label!r})"


class InviteStrategy(Protocol):
    """One platform client bound to one account."""

    driver: str

    async def initialize_client(self, account: AccountData) -> Outcome: ...

    async def check_invite_right(self, group_id: str) -> Outcome: ...

    async def invite_to_group(self, target: Target, group_id: str) -> Outcome: ...

    async def send_message(self, target: Target, text: str, random_id: int) -> Outcome:
        """Send ``text`` to ``target`` under ``random_id``, the platform's idempotency key: a
        message already sent under it is not sent again (the platform answers that it is a
        duplicate, and that counts as delivered). The engine gives every attempt at one person in
        one task the same ``random_id`` (``invite.engine.actions.message_random_id``). A send
        whose answer never came is ``DELIVERY_UNKNOWN``, never ``TRANSIENT``."""
        ...

    async def add_to_contacts(self, target: Target) -> Outcome: ...

    async def was_message_sent(self, target: Target, since: datetime) -> bool | None:
        """Whether this account sent ``target`` a message at or after ``since`` (timezone-aware),
        as the platform itself tells: None when it cannot tell (the person can't be resolved, the
        platform refuses or errs). Never raises. The engine asks it of messages whose worker died
        mid-send: True means delivered, False that it never went out, None leaves them uncertain."""
        ...

    async def read_replies(self, since: datetime) -> Replies:
        """The messages people sent this account in one-to-one dialogs at or after ``since``
        (timezone-aware), oldest first; bots, groups and the account's own messages left out.
        Never raises: a platform error is the answer's ``outcome``."""
        ...

    async def create_invite_link(self, group_id: str, expires_at: datetime) -> LinkMade:
        """A new invite link into ``group_id`` that one person may use (``usage_limit=1``), until
        ``expires_at`` (Telegram: messages.exportChatInvite). Never raises: a platform error is
        the answer's ``outcome``, from the same error table as every other call."""
        ...

    async def link_joins(self, group_id: str, urls: Sequence[str]) -> LinkJoins:
        """Who joined ``group_id`` through each of ``urls`` (links this account made), oldest
        first (Telegram: messages.getChatInviteImporters, one call per link). Never raises."""
        ...

    async def revoke_invite_link(self, group_id: str, url: str) -> Outcome:
        """Revoke a link this account made, so nobody can use it any more (Telegram:
        messages.editExportedChatInvite with revoked). A link already revoked or gone is a
        ``SUCCESS``. Never raises."""
        ...

    def get_rate_limits(self) -> RateLimits: ...

    async def close(self) -> None: ...


class StrategyFactory(Protocol):
    """Makes the strategy for an account (one client per account, reused while leased)."""

    driver: str

    def for_account(self, account: AccountData) -> InviteStrategy: ...


class LeasePurpose(StrEnum):
    """What an account is leased for, in the platform's words (its AccountPurpose): the platform
    checks that kind of daily counter before it hands the account out."""

    INVITE_CAMPAIGN = "invite_campaign"
    MESSAGE_CAMPAIGN = "message_campaign"


class UsageStats(msgspec.Struct):
    invites_sent: int = 0
    messages_sent: int = 0
    contacts_added: int = 0
    success: bool = True
    error_type: str | None = None
    error_message: str | None = None
    channels_used: list[str] = msgspec.field(default_factory=list)


class AccountsProvider(Protocol):
    """Where a tenant's accounts come from: the platform's Integration Service, or the sandbox.

    ``lease`` must be called before an account is driven (the platform leases a Telegram
    session to one service at a time); it returns the account with its session, or None
    when the account is busy elsewhere. A lease with ``lease_seconds`` runs out: ``renew``
    it, with the same purpose, before then; None from ``renew`` means the lease could not
    be kept and the account must not be driven any more. ``channel`` is the group an invite
    campaign invites into (the platform checks its per-channel limits).
    """

    async def list_accounts(self, user_id: str) -> list[AccountData]: ...

    async def lease(
        self, account_id: str, user_id: str, purpose: LeasePurpose, channel: str | None = None
    ) -> AccountData | None: ...

    async def renew(
        self, account_id: str, user_id: str, purpose: LeasePurpose, channel: str | None = None
    ) -> AccountData | None: ...

    async def release(self, account_id: str, user_id: str, usage: UsageStats) -> None: ...

    async def report(self, account_id: str, user_id: str, event: AccountEvent, message: str) -> None: ...
