"""Telegram sessions as the accounts provider hands them out, turned into Pyrogram session strings.

``AccountData.session`` carries whatever the provider gave. It is read as the first of these
that fits (none of their lengths overlap, so the order only matters for the wrappers):

1. a JSON object ``{"encrypted_session": "..."}`` (the platform's ``session_data`` as is): its
   ``encrypted_session`` value, read by the rules below;
2. a Telethon ``StringSession``: ``'1'`` + urlsafe base64 of ``>B4sH256s`` (DC id, IPv4
   address, port, auth key; 353 characters) or ``>B16sH256s`` (IPv6; 369 characters);
3. a native Pyrogram session string: urlsafe base64, padding stripped, of the installed
   package's ``Storage.SESSION_STRING_FORMAT`` (``>BI?256sQ?``: DC id, api id, test mode,
   auth key, user id, is bot) or of its two older formats (351 and 356 characters);
4. standard base64 of 2 or 3: the platform's ``encrypted_session`` today is
   ``base64(telethon_string)``.

Anything else raises ``InvalidSession``, whose message never quotes the session.

A Telethon string carries the DC's address and port but no user id. Pyrogram's string carries
neither address nor port (Pyrogram connects to its own address for the DC id): the adapter
keeps the Telethon address (``SessionParts.address``) and has the client connect there, and the
address tells test servers (IPv4 or IPv6) from production ones. The user id is written as 0
("unknown") and learnt from ``users.getFullUser`` when the client connects.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import struct
from dataclasses import dataclass
from typing import Literal

from pyrogram.storage.sqlite_storage import PROD, TEST
from pyrogram.storage.storage import Storage

AUTH_KEY_SIZE = 256
TELETHON_VERSION = "1"
_TELETHON_FORMAT = ">B{}sH256s"
_TELETHON_PAYLOAD_SIZES = {
    struct.calcsize(_TELETHON_FORMAT.format(4)): 4,
    struct.calcsize(_TELETHON_FORMAT.format(16)): 16,
}
_PYROGRAM_OLD_FORMATS = {
    Storage.SESSION_STRING_SIZE: Storage.OLD_SESSION_STRING_FORMAT,
    Storage.SESSION_STRING_SIZE_64: Storage.OLD_SESSION_STRING_FORMAT_64,
}
# Telegram's test DCs: kurigram's IPv4 table, and their IPv6 addresses (a test DC's ends in ::e,
# a production DC's in ::a)
_TEST_ADDRESSES = frozenset(
    [*TEST.values(), "2001:b28:f23d:f001::e", "2001:67c:4e8:f002::e", "2001:b28:f23d:f003::e"]
)


class InvalidSession(ValueError):
    """The session is neither a Telethon nor a Pyrogram session string (the reason never quotes it)."""


@dataclass(frozen=True, repr=False)
class SessionParts:
    """What a session string holds. ``auth_key`` is secret: the repr leaves it out."""

    origin: Literal["pyrogram", "telethon"]
    dc_id: int
    auth_key: bytes
    test_mode: bool = False
    user_id: int = 0  # 0: unknown (Telethon strings carry none)
    is_bot: bool = False
    api_id: int = 0  # 0: unknown (Telethon strings and old Pyrogram strings carry none)
    address: tuple[str, int] | None = None  # the DC's address and port (Telethon strings carry it)

    def __repr__(self) -> str:
        return f"SessionParts(origin={self.origin!r}, dc_id={self.dc_id}, test_mode={self.test_mode})"


def pyrogram_session_string(raw: str, api_id: int) -> str:
    """The Pyrogram session string for any accepted session form (see the module docstring)."""
    return to_pyrogram_string(parse_session(raw), api_id)


def parse_session(raw: str) -> SessionParts:
    text = raw.strip()
    if not text:
        raise InvalidSession("empty session")
    if text.startswith("{"):
        return parse_session(_from_session_data(text))
    parts = _telethon(text) or _pyrogram(text)
    if parts is None:
        parts = _unwrapped(text)
    if parts is None:
        raise InvalidSession("not a Telethon or Pyrogram session string")
    _validate(parts)
    return parts


def to_pyrogram_string(parts: SessionParts, api_id: int) -> str:
    """Pack ``parts`` the way the installed Pyrogram's ``Storage.export_session_string`` does."""
    packed = struct.pack(
        Storage.SESSION_STRING_FORMAT,
        parts.dc_id,
        parts.api_id or api_id,
        parts.test_mode,
        parts.auth_key,
        parts.user_id,
        parts.is_bot,
    )
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def _from_session_data(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidSession("session data is not valid JSON") from None
    value = data.get("encrypted_session") if isinstance(data, dict) else None
    if not isinstance(value, str):
        raise InvalidSession("session data has no encrypted_session string")
    return value


def _telethon(text: str) -> SessionParts | None:
    if not text.startswith(TELETHON_VERSION):
        return None
    payload = _b64decode(text[1:], urlsafe=True)
    if payload is None or len(payload) not in _TELETHON_PAYLOAD_SIZES:
        return None
    ip_size = _TELETHON_PAYLOAD_SIZES[len(payload)]
    dc_id, ip, port, auth_key = struct.unpack(_TELETHON_FORMAT.format(ip_size), payload)
    address = ipaddress.ip_address(ip).compressed
    return SessionParts(
        "telethon", dc_id, auth_key, test_mode=address in _TEST_ADDRESSES, address=(address, port)
    )


def _pyrogram(text: str) -> SessionParts | None:
    payload = _b64decode(text, urlsafe=True)
    if payload is None:
        return None
    if len(text) in _PYROGRAM_OLD_FORMATS:
        old_format = _PYROGRAM_OLD_FORMATS[len(text)]
        if len(payload) != struct.calcsize(old_format):
            return None
        dc_id, test_mode, auth_key, user_id, is_bot = struct.unpack(old_format, payload)
        return SessionParts("pyrogram", dc_id, auth_key, test_mode, user_id, is_bot)
    if len(payload) != struct.calcsize(Storage.SESSION_STRING_FORMAT):
        return None
    dc_id, api_id, test_mode, auth_key, user_id, is_bot = struct.unpack(
        Storage.SESSION_STRING_FORMAT, payload
    )
    return SessionParts("pyrogram", dc_id, auth_key, test_mode, user_id, is_bot, api_id)


def _unwrapped(text: str) -> SessionParts | None:
    decoded = _b64decode(text, urlsafe=False)
    if decoded is None:
        return None
    try:
        inner = decoded.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    return _telethon(inner) or _pyrogram(inner)


def _b64decode(text: str, *, urlsafe: bool) -> bytes | None:
    padded = text + "=" * (-len(text) % 4)
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _validate(parts: SessionParts) -> None:
    if len(parts.auth_key) != AUTH_KEY_SIZE or not any(parts.auth_key):
        raise InvalidSession(f"{parts.origin} session has no auth key")
    known_dcs = TEST if parts.test_mode else PROD
    if parts.dc_id not in known_dcs:
        raise InvalidSession(f"{parts.origin} session names an unknown DC {parts.dc_id}")
