"""The opaque cursor of a keyset page sorted by (created_at, id): the last row's key as
unpadded URL-safe base64 of a JSON array. Anything else the client sends back is a 422."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import msgspec

from invite.kernel.problems import invalid


class Cursor(msgspec.Struct, array_like=True):
    """Where a page ended: its last row's (created_at, id), the sort key."""

    created_at: datetime
    id: uuid.UUID


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        cursor = msgspec.json.decode(raw, type=Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise invalid("cursor", "not a cursor this API returned") from None
    if cursor.created_at.tzinfo is None:
        raise invalid("cursor", "not a cursor this API returned")
    return cursor
