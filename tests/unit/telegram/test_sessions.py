"""Session strings made by the real Telethon and Pyrogram, read back by Pyrogram's own storage."""

from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrogram.storage import SQLiteStorage
from pyrogram.storage.sqlite_storage import PROD

from invite.platforms.telegram.sessions import (
    InvalidSession,
    SessionParts,
    parse_session,
    pyrogram_session_string,
)
from tests.unit.telegram.conftest import API_ID, telethon_session

IPV6_DC2 = "2001:67c:4e8:f002::a"


async def load_in_pyrogram(session_string: str) -> dict[str, object]:
    """What Pyrogram's own storage reads out of a session string."""
    storage: Any = SQLiteStorage("check", workdir=Path("."), session_string=session_string, in_memory=True)
    await storage.open()
    try:
        return {
            "dc_id": await storage.dc_id(),
            "api_id": await storage.api_id(),
            "test_mode": bool(await storage.test_mode()),  # SQLite answers 0/1
            "auth_key": await storage.auth_key(),
            "user_id": await storage.user_id(),
            "is_bot": bool(await storage.is_bot()),
            "server_address": await storage.server_address(),
        }
    finally:
        await storage.close()


async def pyrogram_exported(dc_id: int, key: bytes, user_id: int, *, api_id: int = API_ID) -> str:
    """A session string exported by Pyrogram's own storage."""
    storage: Any = SQLiteStorage("export", workdir=Path("."), in_memory=True)
    await storage.open()
    try:
        await storage.dc_id(dc_id)
        await storage.api_id(api_id)
        await storage.test_mode(False)
        await storage.auth_key(key)
        await storage.user_id(user_id)
        await storage.is_bot(False)
        exported: str = await storage.export_session_string()
        return exported
    finally:
        await storage.close()


@pytest.mark.parametrize(
    ("dc_id", "address", "test_mode"),
    [
        (2, "149.154.167.51", False),
        (4, "149.154.167.91", False),
        (2, IPV6_DC2, False),
        (2, "149.154.167.40", True),
    ],
)
async def test_telethon_session_becomes_a_pyrogram_session(dc_id: int, address: str, test_mode: bool) -> None:
    key = os.urandom(256)
    telethon = telethon_session(dc_id, address, 80 if test_mode else 443, key)

    loaded = await load_in_pyrogram(pyrogram_session_string(telethon, API_ID))

    assert loaded["dc_id"] == dc_id
    assert loaded["auth_key"] == key
    assert loaded["test_mode"] is test_mode
    assert loaded["api_id"] == API_ID
    assert loaded["user_id"] == 0  # Telethon strings carry none: learnt on connect
    assert loaded["is_bot"] is False


@pytest.mark.parametrize("wrap", ["base64", "session_data_json", "session_data_json_of_base64"])
async def test_the_platforms_wrapped_telethon_session_is_unwrapped(wrap: str) -> None:
    key = os.urandom(256)
    telethon = telethon_session(key=key)
    encoded = base64.b64encode(telethon.encode()).decode()  # the integration service's encrypted_session
    given_session = {
        "base64": encoded,
        "session_data_json": json.dumps({"encrypted_session": telethon}),
        "session_data_json_of_base64": json.dumps({"encrypted_session": encoded}),
    }[wrap]

    loaded = await load_in_pyrogram(pyrogram_session_string(given_session, API_ID))

    assert loaded["auth_key"] == key
    assert loaded["dc_id"] == 2


async def test_a_native_pyrogram_session_keeps_its_user_and_api_id() -> None:
    key = os.urandom(256)
    exported = await pyrogram_exported(5, key, user_id=987654321, api_id=2040)

    parts = parse_session(exported)
    loaded = await load_in_pyrogram(pyrogram_session_string(exported, API_ID))

    assert parts.origin == "pyrogram"
    assert loaded == loaded | {"dc_id": 5, "auth_key": key, "user_id": 987654321, "api_id": 2040}
    assert loaded["server_address"] == PROD[5]


@pytest.mark.parametrize(("fmt", "length"), [(">B?256sI?", 351), (">B?256sQ?", 356)])
async def test_pyrogram_old_session_formats_are_read(fmt: str, length: int) -> None:
    key = os.urandom(256)
    old = base64.urlsafe_b64encode(struct.pack(fmt, 1, False, key, 4242, False)).decode().rstrip("=")
    assert len(old) == length

    loaded = await load_in_pyrogram(pyrogram_session_string(old, API_ID))

    assert (loaded["dc_id"], loaded["auth_key"], loaded["user_id"], loaded["api_id"]) == (
        1,
        key,
        4242,
        API_ID,
    )


@pytest.mark.parametrize(
    ("given_session", "reason"),
    [
        ("", "empty session"),
        ("   ", "empty session"),
        ("not a session at all", "not a Telethon or Pyrogram session string"),
        ("{not json", "session data is not valid JSON"),
        ('{"session_string": "x"}', "session data has no encrypted_session string"),
        (telethon_session(key=bytes(256)), "telethon session has no auth key"),
        (telethon_session(dc_id=9), "telethon session names an unknown DC 9"),
        (telethon_session()[:-8], "not a Telethon or Pyrogram session string"),
    ],
)
def test_a_bad_session_is_refused_without_quoting_it(given_session: str, reason: str) -> None:
    with pytest.raises(InvalidSession) as raised:
        parse_session(given_session)

    assert str(raised.value) == reason


def test_the_auth_key_stays_out_of_reprs() -> None:
    key = os.urandom(256)
    parts = parse_session(telethon_session(key=key))

    assert key.hex() not in repr(parts)
    assert repr(key) not in repr(parts)
    assert repr(parts) == "SessionParts(origin='telethon', dc_id=2, test_mode=False)"


@settings(max_examples=40, deadline=None)
@given(
    dc_id=st.sampled_from(sorted(PROD)),
    key=st.binary(min_size=256, max_size=256).filter(any),
    ipv6=st.booleans(),
    port=st.integers(1, 65535),
)
def test_any_telethon_session_round_trips(dc_id: int, key: bytes, ipv6: bool, port: int) -> None:
    address = IPV6_DC2 if ipv6 else "149.154.175.53"
    telethon = telethon_session(dc_id, address, port, key)

    assert parse_session(telethon) == SessionParts("telethon", dc_id, key, address=(address, port))
    assert parse_session(pyrogram_session_string(telethon, API_ID)) == SessionParts(
        "pyrogram", dc_id, key, api_id=API_ID
    )
