"""The error table, row by row: each error raised by Pyrogram from a stand-in server's answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pyrogram import errors, raw
from pyrogram.errors import RPCError
from pyrogram.session import Session
from pyrogram.session.session import AuthKeyNotFound, TransportError
from structlog.testing import capture_logs

from invite.kernel.settings import ROOT
from invite.platforms.base import AccountEvent, Outcome, OutcomeKind, Target, TargetKind
from invite.platforms.telegram.errors import (
    CATEGORY_FALLBACKS,
    ERROR_TABLE,
    FLOOD_WAIT_FLOOR,
    NETWORK_ERRORS,
    CategoryRow,
    ErrorRow,
    outcome_for,
    pyrogram_class,
    render_markdown,
)
from invite.platforms.telegram.strategy import TelegramStrategy
from tests.unit.telegram.standin import TelegramServer, rpc_error

SECONDS = 42
ALICE = Target(TargetKind.USERNAME, "alice")

# The errors the issue names; each must have a row (a new row needs no change here).
NAMED_IN_THE_ISSUE = [
    "FloodWait",
    "FloodPremiumWait",
    "SlowmodeWait",
    "PeerFlood",
    "UserPrivacyRestricted",
    "PrivacyPremiumRequired",
    "UserNotMutualContact",
    "UserChannelsTooMuch",
    "UserAlreadyParticipant",
    "UserKicked",
    "UserBannedInChannel",
    "UsersTooMuch",
    "ChatAdminRequired",
    "ChatWriteForbidden",
    "ChannelPrivate",
    "UsernameNotOccupied",
    "UsernameInvalid",
    "PeerIdInvalid",
    "UserIdInvalid",
    "InputUserDeactivated",
    "UserIsBlocked",
    "YouBlockedUser",
    "UserDeactivated",
    "UserDeactivatedBan",
    "AuthKeyUnregistered",
    "SessionRevoked",
    "SessionExpired",
    "AuthKeyDuplicated",
    # issue 19
    "FrozenMethodInvalid",
    "FrozenParticipantMissing",
    "AllowPaymentRequired",
    "AllowPaymentRequired406",
    "ChatAdminInviteRequired",
    "BotsTooMuch",
    "BotGroupsBlocked",
    "ChatInvalid",
    "MessageTooLong",
    "MessageEmpty",
    "RandomIdDuplicate",
]


def row_variants() -> list[object]:
    """One case per row and per class Pyrogram raises for the row's id (400/403/406 variants)."""
    return [
        pytest.param(row, name, id=f"{row.error_id}-{name}") for row in ERROR_TABLE for name in row.classes
    ]


def message_for(row: ErrorRow) -> str:
    """What Telegram's server sends for the row, e.g. FLOOD_WAIT_42 for FLOOD_WAIT_X."""
    return row.error_id.replace("_X", f"_{SECONDS}")


def error_class(name: str) -> type[RPCError]:
    cls = pyrogram_class(name)
    assert cls is not None, f"pyrogram.errors has no {name}"
    return cls


@pytest.mark.parametrize(("row", "class_name"), row_variants())
async def test_each_row_maps_the_real_error_to_its_outcome(
    row: ErrorRow, class_name: str, strategy: TelegramStrategy, server: TelegramServer
) -> None:
    cls = error_class(class_name)
    assert cls.CODE is not None
    server.add_person(5001, username="alice")
    server.add_group(900, username="group")
    server.script(raw.functions.channels.InviteToChannel, rpc_error(cls.CODE, message_for(row)))

    outcome = await strategy.invite_to_group(ALICE, "@group")

    assert type(server.raised[-1]) is cls  # Pyrogram itself chose this class for the server's answer
    expected_seconds = float(SECONDS) if row.kind is OutcomeKind.FLOOD_WAIT else 0.0
    assert outcome == Outcome(row.kind, seconds=expected_seconds, detail=row.error_id, event=row.event)


@pytest.mark.parametrize("row", ERROR_TABLE, ids=lambda row: row.error_id)
def test_each_row_names_classes_that_carry_its_id(row: ErrorRow) -> None:
    for name in row.classes:
        assert row.error_id == error_class(name).ID


def test_every_error_the_issue_names_has_a_row() -> None:
    in_table = {name for row in ERROR_TABLE for name in row.classes}
    assert [name for name in NAMED_IN_THE_ISSUE if name not in in_table] == []
    assert len({row.error_id for row in ERROR_TABLE}) == len(ERROR_TABLE)


async def test_an_id_under_a_status_code_this_version_does_not_list_still_finds_its_row(
    strategy: TelegramStrategy, server: TelegramServer, in_tmp_dir: Path
) -> None:
    # Pyrogram knows USER_PRIVACY_RESTRICTED only as a 403; a 400 comes out as a bare BadRequest.
    server.add_person(5001, username="alice")
    server.add_group(900, username="group")
    server.script(raw.functions.channels.InviteToChannel, rpc_error(400, "USER_PRIVACY_RESTRICTED"))

    outcome = await strategy.invite_to_group(ALICE, "@group")

    assert type(server.raised[-1]) is errors.BadRequest
    assert outcome == Outcome(OutcomeKind.PRIVACY_RESTRICTED, detail="USER_PRIVACY_RESTRICTED")
    assert not (in_tmp_dir / "unknown_errors.txt").exists()  # kurigram's record goes nowhere


async def test_an_unknown_rpc_error_is_transient_with_its_id_and_logged(
    strategy: TelegramStrategy, server: TelegramServer, in_tmp_dir: Path
) -> None:
    server.add_person(5001, username="alice")
    server.script(raw.functions.messages.SendMessage, rpc_error(400, "SOMETHING_NEW_12"))

    with capture_logs() as logs:
        outcome = await strategy.send_message(ALICE, "hello", 1)

    assert outcome == Outcome(OutcomeKind.TRANSIENT, detail="SOMETHING_NEW_X")
    warning = next(entry for entry in logs if entry["event"] == "telegram_unmapped_error")
    assert (warning["log_level"], warning["error_id"]) == ("warning", "SOMETHING_NEW_X")
    assert not (in_tmp_dir / "unknown_errors.txt").exists()  # the log has it; kurigram's file goes nowhere


def raised_for(code: int, message: str) -> RPCError:
    """The exception Pyrogram raises for a server answer ``code message``."""
    with pytest.raises(RPCError) as raised:
        RPCError.raise_it(rpc_error(code, message), raw.functions.messages.SendMessage)
    return raised.value


@pytest.mark.parametrize("fallback", CATEGORY_FALLBACKS, ids=lambda row: row.category)
def test_each_category_fallback_catches_an_unlisted_error_of_its_class(fallback: CategoryRow) -> None:
    code = error_class(fallback.category).CODE if fallback.category != "RPCError" else 599
    exc = raised_for(code or 0, "BRAND_NEW_ERROR_7")
    assert isinstance(exc, pyrogram_class(fallback.category) or RPCError)

    with capture_logs() as logs:
        outcome = outcome_for(exc)

    seconds = 7.0 if fallback.kind is OutcomeKind.FLOOD_WAIT else 0.0
    assert outcome == Outcome(
        fallback.kind, seconds=seconds, detail="BRAND_NEW_ERROR_X", event=fallback.event
    )
    assert [entry["event"] for entry in logs] == ["telegram_unmapped_error"]


def network_error(cls: type[BaseException]) -> BaseException:
    args: tuple[object, ...] = (16,) if cls is errors.BadMsgNotification else ("connection reset",)
    return cls(*args)


@pytest.mark.parametrize("cls", NETWORK_ERRORS, ids=lambda cls: cls.__name__)
def test_network_errors_are_transient(cls: type[BaseException]) -> None:
    outcome = outcome_for(network_error(cls))

    assert outcome == Outcome(OutcomeKind.TRANSIENT, detail=f"network: {cls.__name__}")


@pytest.mark.parametrize("exc", [ConnectionResetError(), TransportError()], ids=lambda e: type(e).__name__)
def test_subclasses_of_network_errors_are_network_errors(exc: BaseException) -> None:
    assert outcome_for(exc).kind is OutcomeKind.TRANSIENT


async def test_a_message_timing_out_in_pyrogram_after_its_retries_is_of_unknown_fate(
    strategy: TelegramStrategy, server: TelegramServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sleep = asyncio.sleep

    async def no_delay(delay: float, result: object = None) -> object:
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", no_delay)  # Pyrogram waits 1 s between its retries
    server.add_person(5001, username="alice")
    server.script(raw.functions.messages.SendMessage, TimeoutError("Request timed out"))

    outcome = await strategy.send_message(ALICE, "hello", 7)

    # it may have gone out (a lost answer): never TRANSIENT, which would send it again
    assert outcome == Outcome(
        OutcomeKind.DELIVERY_UNKNOWN, detail="no answer to the send: network: TimeoutError"
    )
    sends = server.called(raw.functions.messages.SendMessage)
    # kurigram's ten tries, then the adapter's one resend (ten tries again), all under our random_id
    assert len(sends) == 2 * Session.MAX_RETRIES
    assert {send.random_id for send in sends} == {7}


def test_any_other_exception_is_transient_and_logged_as_unexpected() -> None:
    with capture_logs() as logs:
        outcome = outcome_for(KeyError("peer"))

    assert outcome == Outcome(OutcomeKind.TRANSIENT, detail="unexpected: KeyError")
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("telegram_unexpected_error", "error")
    ]


@pytest.mark.parametrize(
    ("exc", "event"),
    [
        (raised_for(401, "AUTH_KEY_UNREGISTERED"), AccountEvent.AUTH_KEY_ERROR),
        (raised_for(401, "USER_DEACTIVATED_BAN"), AccountEvent.PHONE_NUMBER_BANNED),
        (raised_for(420, "FROZEN_METHOD_INVALID"), AccountEvent.USER_DEACTIVATED),
        (raised_for(420, "SLOWMODE_WAIT_5"), None),
        (raised_for(403, "USER_PRIVACY_RESTRICTED"), None),
        (AuthKeyNotFound(), AccountEvent.AUTH_KEY_ERROR),
        (OSError(), None),
    ],
    ids=lambda value: type(value).__name__,
)
def test_what_the_platform_is_told_comes_from_the_table(
    exc: BaseException, event: AccountEvent | None
) -> None:
    assert outcome_for(exc).event == event


def test_a_frozen_account_is_out_of_use_not_told_to_wait_no_seconds() -> None:
    outcome = outcome_for(raised_for(420, "FROZEN_METHOD_INVALID"))

    assert outcome == Outcome(
        OutcomeKind.ACCOUNT_DEAD, detail="FROZEN_METHOD_INVALID", event=AccountEvent.USER_DEACTIVATED
    )


def test_a_flood_wait_of_no_seconds_rests_the_account_a_little() -> None:
    assert outcome_for(errors.FloodWait(0)) == Outcome(
        OutcomeKind.FLOOD_WAIT, seconds=FLOOD_WAIT_FLOOR, detail="FLOOD_WAIT_0", event=AccountEvent.FLOOD_WAIT
    )


def test_the_documented_table_is_the_table_in_the_code() -> None:
    doc = (ROOT / "docs" / "telegram-errors.md").read_text(encoding="utf-8")

    assert render_markdown() in doc
    for row in ERROR_TABLE:
        assert f"| `{row.error_id}` |" in doc
