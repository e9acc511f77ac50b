"""What each Telegram error means for a campaign: the one table from pyrogram errors to outcomes.

``ERROR_TABLE`` has one row per Telegram error id (``RPCError.ID``, as Pyrogram spells it:
``FLOOD_WAIT_X`` for ``FLOOD_WAIT_42``). An error is matched by its id first, so every class
Pyrogram generates for that id under any status code (``ChatAdminRequired`` 400 and
``ChatAdminRequired403``, which moved between codes across versions) and an id this Pyrogram
version does not know yet (raised as the bare ``BadRequest``/``Forbidden``... carrying
``"[400 SOME_ID]"``) land on the same row. Failing that, it is matched by class against the
row's classes, then against the status-code categories in ``CATEGORY_FALLBACKS``. Network
errors and timeouts are transient. Anything else Telegram says is transient, logged with its id,
and retried a bounded number of times by the engine.

The rendered table is ``docs/telegram-errors.md`` (``render_markdown()``; a test keeps the two
equal). ``outcome_for`` turns an exception into the engine's ``Outcome`` (detail: the error id,
so the execution log and the platform see Telegram's own word); ``account_event_for`` says
which outcomes are account-level events the accounts provider must hear about.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import structlog
from pyrogram import errors
from pyrogram.errors import RPCError
from pyrogram.errors import rpc_error as rpc_error_module
from pyrogram.session.session import AuthKeyNotFound, TransportError

from invite.platforms.base import AccountEvent, Outcome, OutcomeKind

log = structlog.get_logger(__name__)

K = OutcomeKind
E = AccountEvent

INVALID_SESSION = "invalid session"  # the detail of a session we could not read
# A FloodWait rests the account at least this long: FLOOD_WAIT_0 and a 420 naming no wait
# would otherwise be retried at once
FLOOD_WAIT_FLOOR = 5.0
UNKNOWN_ERRORS_FILE = "unknown_errors.txt"  # where kurigram writes error ids it does not know
# The invite link is no longer there: a revoke of it is done, and nobody joins through it
LINK_GONE = frozenset({"INVITE_HASH_EXPIRED", "INVITE_HASH_INVALID", "INVITE_REVOKED_MISSING"})


@dataclass(frozen=True)
class ErrorRow:
    error_id: str  # RPCError.ID: Telegram's error message with numbers as "_X"
    classes: tuple[str, ...]  # the pyrogram.errors classes raised for it, under every status code
    kind: OutcomeKind
    event: AccountEvent | None  # what the accounts provider is told, if anything
    meaning: str


ERROR_TABLE: tuple[ErrorRow, ...] = (
    # --- the account must slow down ---------------------------------------------------------
    ErrorRow(
        "FLOOD_WAIT_X",
        ("FloodWait",),
        K.FLOOD_WAIT,
        E.FLOOD_WAIT,
        "wait `.value` seconds before the next call",
    ),
    ErrorRow(
        "FLOOD_PREMIUM_WAIT_X",
        ("FloodPremiumWait",),
        K.FLOOD_WAIT,
        E.FLOOD_WAIT,
        "as FLOOD_WAIT, lifted by Premium",
    ),
    ErrorRow(
        "SLOWMODE_WAIT_X",
        ("SlowmodeWait",),
        K.FLOOD_WAIT,
        None,
        "a chat's slow mode: wait `.value` seconds; the chat's limit, not the account's, so not reported",
    ),
    ErrorRow(
        "PEER_FLOOD",
        ("PeerFlood",),
        K.PEER_FLOOD,
        E.PEER_FLOOD,
        "Telegram's spam limit on this account (@SpamBot)",
    ),
    ErrorRow(
        "USER_BANNED_IN_CHANNEL",
        ("UserBannedInChannel", "UserBannedInChannel403"),
        K.PEER_FLOOD,
        E.PEER_FLOOD,
        "this account (not the person) is limited from supergroups/channels (@SpamBot): a spam limit",
    ),
    ErrorRow(
        "USER_RESTRICTED",
        ("UserRestricted", "UserRestricted406"),
        K.PEER_FLOOD,
        E.PEER_FLOOD,
        "this account is limited by Telegram: a spam limit",
    ),
    ErrorRow(
        "FLOOD_WAIT_0",
        (),
        K.FLOOD_WAIT,
        E.FLOOD_WAIT,
        "a wait of no seconds: kurigram resends at once, ten times, then gives up (a timeout); "
        f"when it reaches the adapter, the account rests {FLOOD_WAIT_FLOOR:g} s",
    ),
    # --- the person does not accept this --------------------------------------------------
    ErrorRow(
        "USER_PRIVACY_RESTRICTED",
        ("UserPrivacyRestricted",),
        K.PRIVACY_RESTRICTED,
        None,
        "the person's privacy settings forbid it",
    ),
    ErrorRow(
        "PRIVACY_PREMIUM_REQUIRED",
        ("PrivacyPremiumRequired", "PrivacyPremiumRequired406"),
        K.PRIVACY_RESTRICTED,
        None,
        "the person accepts this only from contacts or Premium users",
    ),
    ErrorRow(
        "ALLOW_PAYMENT_REQUIRED_X",
        ("AllowPaymentRequired",),
        K.PRIVACY_RESTRICTED,
        None,
        "the person accepts messages only for Telegram Stars (the price in `.value`)",
    ),
    ErrorRow(
        "ALLOW_PAYMENT_REQUIRED",
        ("AllowPaymentRequired406",),
        K.PRIVACY_RESTRICTED,
        None,
        "the person accepts messages only for Telegram Stars",
    ),
    ErrorRow(
        "USER_NOT_MUTUAL_CONTACT",
        ("UserNotMutualContact", "UserNotMutualContact403"),
        K.PRIVACY_RESTRICTED,
        None,
        "the person accepts this only from mutual contacts",
    ),
    # --- the message went out before ---------------------------------------------------------
    ErrorRow(
        "RANDOM_ID_DUPLICATE",
        ("RandomIdDuplicate",),
        K.SUCCESS,
        None,
        "a message was already sent under this random_id (an earlier attempt whose answer was lost): "
        "delivered once, not sent again. The 500 form (`RandomIdDuplicate500`) kurigram resends "
        "until it gives up: it ends as a timeout, `delivery_unknown`",
    ),
    # --- the person can't be reached --------------------------------------------------------
    ErrorRow(
        "USER_ALREADY_PARTICIPANT",
        ("UserAlreadyParticipant",),
        K.ALREADY_MEMBER,
        None,
        "already in the group",
    ),
    ErrorRow(
        "USER_CHANNELS_TOO_MUCH",
        ("UserChannelsTooMuch", "UserChannelsTooMuch403"),
        K.TARGET_UNAVAILABLE,
        None,
        "the person is in too many groups and channels",
    ),
    ErrorRow(
        "USER_KICKED",
        ("UserKicked",),
        K.TARGET_UNAVAILABLE,
        None,
        "an admin removed the person from this group",
    ),
    ErrorRow(
        "USER_IS_BLOCKED",
        ("UserIsBlocked", "UserIsBlocked403"),
        K.BLOCKED,
        None,
        "the person blocked this account",
    ),
    ErrorRow("YOU_BLOCKED_USER", ("YouBlockedUser",), K.BLOCKED, None, "this account blocked the person"),
    ErrorRow("USER_BLOCKED", ("UserBlocked",), K.TARGET_UNAVAILABLE, None, "the person is blocked"),
    ErrorRow(
        "USER_BOT", ("UserBot",), K.TARGET_UNAVAILABLE, None, "a bot: bots join channels only as admins"
    ),
    ErrorRow(
        "BOTS_TOO_MUCH", ("BotsTooMuch",), K.TARGET_UNAVAILABLE, None, "the group has as many bots as it may"
    ),
    ErrorRow(
        "BOT_GROUPS_BLOCKED",
        ("BotGroupsBlocked",),
        K.TARGET_UNAVAILABLE,
        None,
        "a bot that may not be added to groups",
    ),
    ErrorRow(
        "CHAT_MEMBER_ADD_FAILED",
        ("ChatMemberAddFailed",),
        K.TARGET_UNAVAILABLE,
        None,
        "Telegram refused to add the person",
    ),
    # --- no such person ----------------------------------------------------------------------
    ErrorRow(
        "INPUT_USER_DEACTIVATED",
        ("InputUserDeactivated",),
        K.NOT_FOUND,
        None,
        "the person's account is deleted: nobody to reach any more, with any account",
    ),
    ErrorRow(
        "USERNAME_NOT_OCCUPIED", ("UsernameNotOccupied",), K.NOT_FOUND, None, "nobody has this username"
    ),
    ErrorRow("USERNAME_INVALID", ("UsernameInvalid",), K.NOT_FOUND, None, "not a valid username"),
    ErrorRow(
        "USERNAME_PURCHASE_AVAILABLE",
        ("UsernamePurchaseAvailable",),
        K.NOT_FOUND,
        None,
        "nobody has this username (it is for sale)",
    ),
    ErrorRow(
        "PEER_ID_INVALID",
        ("PeerIdInvalid", "PeerIdInvalid403", "PeerIdInvalid406"),
        K.NOT_FOUND,
        None,
        "an id this account has never met (Telegram needs its access hash)",
    ),
    ErrorRow("USER_ID_INVALID", ("UserIdInvalid",), K.NOT_FOUND, None, "not a valid user id"),
    ErrorRow("USER_INVALID", ("UserInvalid", "UserInvalid403"), K.NOT_FOUND, None, "not a valid user"),
    ErrorRow(
        "PHONE_NUMBER_INVALID",
        ("PhoneNumberInvalid", "PhoneNumberInvalid406"),
        K.NOT_FOUND,
        None,
        "not a valid phone number",
    ),
    # --- the group refuses -------------------------------------------------------------------
    ErrorRow("USERS_TOO_MUCH", ("UsersTooMuch",), K.CHAT_UNAVAILABLE, None, "the group is full"),
    ErrorRow(
        "CHANNEL_PRIVATE",
        ("ChannelPrivate", "ChannelPrivate406"),
        K.CHAT_UNAVAILABLE,
        None,
        "the group is private to this account, or gone",
    ),
    ErrorRow(
        "CHANNEL_INVALID", ("ChannelInvalid",), K.CHAT_UNAVAILABLE, None, "no such channel or supergroup"
    ),
    ErrorRow("CHAT_ID_INVALID", ("ChatIdInvalid",), K.CHAT_UNAVAILABLE, None, "no such group"),
    ErrorRow("CHAT_INVALID", ("ChatInvalid",), K.CHAT_UNAVAILABLE, None, "the group is invalid"),
    ErrorRow(
        "MESSAGE_TOO_LONG",
        ("MessageTooLong",),
        K.CHAT_UNAVAILABLE,
        None,
        "the text is over Telegram's limit: every person would get the same answer, so the task pauses",
    ),
    ErrorRow(
        "MESSAGE_EMPTY",
        ("MessageEmpty",),
        K.CHAT_UNAVAILABLE,
        None,
        "the text is empty: every person would get the same answer, so the task pauses",
    ),
    ErrorRow(
        "CHAT_FORBIDDEN",
        ("ChatForbidden",),
        K.CHAT_UNAVAILABLE,
        None,
        "the group is not available to this account",
    ),
    ErrorRow(
        "INVITES_TOO_MUCH",
        ("InvitesTooMuch",),
        K.CHAT_UNAVAILABLE,
        None,
        "the group holds as many invite links as Telegram allows: no new one until some expire or are revoked",
    ),
    ErrorRow(
        "EXPIRE_DATE_INVALID",
        ("ExpireDateInvalid",),
        K.CHAT_UNAVAILABLE,
        None,
        "an invite link's expiry is in the past (or too far ahead): every link would get the same "
        "answer, so the task pauses",
    ),
    ErrorRow(
        "USAGE_LIMIT_INVALID",
        ("UsageLimitInvalid",),
        K.CHAT_UNAVAILABLE,
        None,
        "an invite link's usage limit is out of range: every link would get the same answer, so the task pauses",
    ),
    # --- the invite link is gone (revoking it again is done; no one joins through it) -----------
    ErrorRow(
        "INVITE_HASH_EXPIRED",
        ("InviteHashExpired", "InviteHashExpired406"),
        K.NOT_FOUND,
        None,
        "the invite link expired or was revoked",
    ),
    ErrorRow("INVITE_HASH_INVALID", ("InviteHashInvalid",), K.NOT_FOUND, None, "no such invite link"),
    ErrorRow(
        "INVITE_REVOKED_MISSING",
        ("InviteRevokedMissing",),
        K.NOT_FOUND,
        None,
        "the invite link was already revoked, or never existed",
    ),
    # --- this account may not do it in the group ------------------------------------------------
    ErrorRow(
        "CHAT_ADMIN_REQUIRED",
        ("ChatAdminRequired", "ChatAdminRequired403"),
        K.NO_ADMIN_RIGHT,
        None,
        "this account is not an admin with the right to do it",
    ),
    ErrorRow(
        "CHAT_ADMIN_INVITE_REQUIRED",
        ("ChatAdminInviteRequired",),
        K.NO_ADMIN_RIGHT,
        None,
        "this account may not invite into the group: it needs an admin's right to",
    ),
    ErrorRow(
        "CHAT_WRITE_FORBIDDEN",
        ("ChatWriteForbidden", "ChatWriteForbidden403"),
        K.NO_ADMIN_RIGHT,
        None,
        "this account may not write in the chat",
    ),
    ErrorRow(
        "USER_NOT_PARTICIPANT",
        ("UserNotParticipant", "UserNotParticipant403"),
        K.NO_ADMIN_RIGHT,
        None,
        "this account is not a member of the group",
    ),
    ErrorRow(
        "CHAT_RESTRICTED",
        ("ChatRestricted",),
        K.NO_ADMIN_RIGHT,
        None,
        "this account is restricted in the group",
    ),
    # --- the account is gone ----------------------------------------------------------------------
    ErrorRow(
        "USER_DEACTIVATED",
        ("UserDeactivated",),
        K.ACCOUNT_DEAD,
        E.USER_DEACTIVATED,
        "the account was deleted",
    ),
    ErrorRow(
        "USER_DEACTIVATED_BAN",
        ("UserDeactivatedBan",),
        K.ACCOUNT_DEAD,
        E.PHONE_NUMBER_BANNED,
        "the account was banned by Telegram's anti-spam system",
    ),
    ErrorRow(
        "FROZEN_METHOD_INVALID",
        ("FrozenMethodInvalid",),
        K.ACCOUNT_DEAD,
        E.USER_DEACTIVATED,
        "the account is frozen by Telegram (read-only until its owner appeals): out of use; a 420 that names no wait",
    ),
    ErrorRow(
        "FROZEN_PARTICIPANT_MISSING",
        ("FrozenParticipantMissing",),
        K.ACCOUNT_DEAD,
        E.USER_DEACTIVATED,
        "the account is frozen by Telegram: out of use",
    ),
    ErrorRow(
        "PHONE_NUMBER_BANNED",
        ("PhoneNumberBanned",),
        K.ACCOUNT_DEAD,
        E.PHONE_NUMBER_BANNED,
        "the account's number is banned",
    ),
    ErrorRow(
        "AUTH_KEY_UNREGISTERED",
        ("AuthKeyUnregistered",),
        K.ACCOUNT_DEAD,
        E.AUTH_KEY_ERROR,
        "the session is not (or no longer) logged in",
    ),
    ErrorRow(
        "SESSION_REVOKED",
        ("SessionRevoked",),
        K.ACCOUNT_DEAD,
        E.AUTH_KEY_ERROR,
        "the owner terminated the session",
    ),
    ErrorRow("SESSION_EXPIRED", ("SessionExpired",), K.ACCOUNT_DEAD, E.AUTH_KEY_ERROR, "the session expired"),
    ErrorRow(
        "AUTH_KEY_DUPLICATED",
        ("AuthKeyDuplicated",),
        K.ACCOUNT_DEAD,
        E.AUTH_KEY_ERROR,
        "the session was used from two places at once; Telegram killed it",
    ),
    ErrorRow(
        "AUTH_KEY_INVALID",
        ("AuthKeyInvalid",),
        K.ACCOUNT_DEAD,
        E.AUTH_KEY_ERROR,
        "the session's key is invalid",
    ),
    ErrorRow(
        "AUTH_KEY_PERM_EMPTY",
        ("AuthKeyPermEmpty",),
        K.ACCOUNT_DEAD,
        E.AUTH_KEY_ERROR,
        "a temporary key without its permanent one",
    ),
    ErrorRow(
        "SESSION_PASSWORD_NEEDED",
        ("SessionPasswordNeeded",),
        K.ACCOUNT_DEAD,
        E.AUTH_KEY_ERROR,
        "the login stopped at the two-step password",
    ),
)


@dataclass(frozen=True)
class CategoryRow:
    category: str  # a pyrogram.errors status-code class (or RPCError itself)
    kind: OutcomeKind
    event: AccountEvent | None
    meaning: str


# Errors in no row of ERROR_TABLE, by class, in this order. All of them are logged as unmapped.
CATEGORY_FALLBACKS: tuple[CategoryRow, ...] = (
    CategoryRow("Unauthorized", K.ACCOUNT_DEAD, E.AUTH_KEY_ERROR, "any other 401: the session does not work"),
    CategoryRow("Flood", K.FLOOD_WAIT, E.FLOOD_WAIT, "any other 420: wait the seconds it names"),
    CategoryRow("InternalServerError", K.TRANSIENT, None, "500: Telegram's side, retry later"),
    CategoryRow("ServiceUnavailable", K.TRANSIENT, None, "503: Telegram's side, retry later"),
    CategoryRow("RPCError", K.TRANSIENT, None, "anything else: retried a bounded number of times"),
)


@dataclass(frozen=True)
class TransportRow:
    error: type[TransportError]  # what kurigram raises (in its receive task) for the transport code
    code: int
    kind: OutcomeKind
    event: AccountEvent | None
    meaning: str


# Transport errors: a 4-byte packet instead of a message. Kurigram raises them in its receive
# task, where no caller sees them (the caller times out); the adapter looks there.
TRANSPORT_ERRORS: tuple[TransportRow, ...] = (
    TransportRow(
        AuthKeyNotFound,
        -404,
        K.ACCOUNT_DEAD,
        E.AUTH_KEY_ERROR,
        "Telegram does not know the session's auth key: the session is dead",
    ),
)

TRANSPORT_CLASSES = tuple(row.error for row in TRANSPORT_ERRORS)

# Not from Telegram's API: the connection itself. Pyrogram raises TimeoutError once its own
# retries of a request are spent, and OSError/ConnectionError when the socket fails.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError included
    TimeoutError,  # asyncio.TimeoutError is TimeoutError
    TransportError,
    errors.BadMsgNotification,
    errors.SecurityError,
)


def _unknown_errors_path(name: str) -> Path:
    return Path(os.devnull) if name == UNKNOWN_ERRORS_FILE else Path(name)


def keep_unknown_errors_off_disk() -> None:
    """Kurigram appends every error id it does not know to ``./unknown_errors.txt`` while it
    builds the exception (``RPCError.__init__``). In a working directory it may not write in (the
    image's), that write raises ``OSError``, which kurigram takes for a network failure: it
    resends the request ten times and the caller sees a timeout, not the error. The adapter logs
    such ids itself (``telegram_unmapped_error``), so kurigram's file goes to the null device."""
    rpc_error_module.Path = _unknown_errors_path  # type: ignore[misc,assignment]


def pyrogram_class(name: str) -> type[RPCError] | None:
    """The installed Pyrogram's error class of this name, if this version has it."""
    cls = getattr(errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, RPCError) else None


_BY_ID = {row.error_id: row for row in ERROR_TABLE}
_ROW_CLASSES = [
    (row, tuple(cls for cls in map(pyrogram_class, row.classes) if cls is not None)) for row in ERROR_TABLE
]
_ID_IN_VALUE = re.compile(r"^\[-?\d+ ([^\]]+)\]")
_NUMBER = re.compile(r"_(\d+)")


def error_id(exc: RPCError) -> str:
    """Telegram's error id, also for an id this Pyrogram version does not know (``"[400 NEW_ID]"``);
    a FloodWait of no seconds is ``FLOOD_WAIT_0``."""
    if isinstance(exc, errors.FloodWait) and exc.value == 0:
        return "FLOOD_WAIT_0"
    if exc.ID:
        return str(exc.ID)
    message = _message_in_value(exc)
    if message:
        return _NUMBER.sub("_X", message)
    return str(exc.NAME or type(exc).__name__)


def outcome_for(exc: BaseException) -> Outcome:
    """The outcome of a call that raised ``exc``; never raises."""
    if isinstance(exc, RPCError):
        return _rpc_outcome(exc)
    transport = next((row for row in TRANSPORT_ERRORS if isinstance(exc, row.error)), None)
    if transport is not None:
        detail = f"{transport.error.__name__}: transport error {transport.code}"
        return Outcome(transport.kind, detail=detail, event=transport.event)
    if isinstance(exc, NETWORK_ERRORS):
        return Outcome(K.TRANSIENT, detail=f"network: {type(exc).__name__}")
    log.error("telegram_unexpected_error", error_class=type(exc).__name__, exc_info=exc)
    return Outcome(K.TRANSIENT, detail=f"unexpected: {type(exc).__name__}")


def render_markdown() -> str:
    """ERROR_TABLE, CATEGORY_FALLBACKS and NETWORK_ERRORS as Markdown tables."""
    lines = [
        "| Telegram error id | pyrogram.errors classes | outcome | reported to the platform as | meaning |",
        "|---|---|---|---|---|",
    ]
    for row in ERROR_TABLE:
        classes = ", ".join(f"`{name}`" for name in row.classes)
        lines.append(f"| `{row.error_id}` | {classes} | `{row.kind}` | {_event(row.event)} | {row.meaning} |")
    lines += [
        "",
        "Errors in no row above, by class, first match wins (each one is logged as `telegram_unmapped_error`):",
        "",
        "| class | outcome | reported to the platform as | meaning |",
        "|---|---|---|---|",
    ]
    for fallback in CATEGORY_FALLBACKS:
        lines.append(
            f"| `{fallback.category}` | `{fallback.kind}` | {_event(fallback.event)} | {fallback.meaning} |"
        )
    lines += [
        "",
        "Transport errors (a 4-byte packet instead of a message; kurigram raises them in its receive task):",
        "",
        "| transport code | kurigram class | outcome | reported to the platform as | meaning |",
        "|---|---|---|---|---|",
    ]
    for transport in TRANSPORT_ERRORS:
        lines.append(
            f"| `{transport.code}` | `{transport.error.__name__}` | `{transport.kind}` "
            f"| {_event(transport.event)} | {transport.meaning} |"
        )
    network = ", ".join(f"`{cls.__name__}`" for cls in NETWORK_ERRORS)
    lines += [
        "",
        f"Network errors and timeouts ({network}) → `transient`, not reported; on a message whose "
        "request had been handed to the connection → `delivery_unknown` (it may have gone out).",
        "",
    ]
    return "\n".join(lines)


def _event(event: AccountEvent | None) -> str:
    return f"`{event}`" if event else "—"


def _rpc_outcome(exc: RPCError) -> Outcome:
    eid = error_id(exc)
    row = _BY_ID.get(eid) or _row_by_class(exc)
    if row is not None:
        return _outcome(row.kind, row.event, row.error_id, exc)
    fallback = next(f for f in CATEGORY_FALLBACKS if isinstance(exc, _category(f.category)))
    log.warning(
        "telegram_unmapped_error", error_id=eid, error_class=type(exc).__name__, outcome=str(fallback.kind)
    )
    return _outcome(fallback.kind, fallback.event, eid, exc)


def _row_by_class(exc: RPCError) -> ErrorRow | None:
    return next((row for row, classes in _ROW_CLASSES if isinstance(exc, classes)), None)


def _category(name: str) -> type[RPCError]:
    return pyrogram_class(name) or RPCError


def _outcome(kind: OutcomeKind, event: AccountEvent | None, eid: str, exc: RPCError) -> Outcome:
    if kind is K.FLOOD_WAIT:
        return Outcome(kind, seconds=max(float(_seconds(exc)), FLOOD_WAIT_FLOOR), detail=eid, event=event)
    return Outcome(kind, detail=eid, event=event)


def _seconds(exc: RPCError) -> int:
    if isinstance(exc.value, int):
        return exc.value
    match = _NUMBER.search(_message_in_value(exc) or "")
    return int(match.group(1)) if match else 0


def _message_in_value(exc: RPCError) -> str | None:
    match = _ID_IN_VALUE.match(str(exc.value)) if isinstance(exc.value, str) else None
    return match.group(1) if match else None
