"""What a task's group id may be on Telegram: one rule, for the adapter and for the tasks API.

Beside the port rather than in the adapter, so that the tasks API checks a group id without
importing the Telegram adapter.
"""

from __future__ import annotations

import re

from pyrogram import utils

_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
_LINK_PREFIX = re.compile(r"^(?:https?://)?(?:t\.me|telegram\.me|telegram\.dog)/", re.IGNORECASE)


def chat_ref(group_id: str) -> int | str | None:
    """A group reference Pyrogram resolves: a marked numeric id (a basic group's negative, a
    supergroup's or channel's ``-100…``) or a username; None otherwise (the tasks API refuses
    such a group id with a 422)."""
    text = _LINK_PREFIX.sub("", group_id.strip()).lstrip("@").rstrip("/")
    if re.fullmatch(r"-?\d+", text):
        number = int(text)
        try:
            peer_type = utils.get_peer_type(number)
        except ValueError:  # outside every range of Telegram's ids
            return None
        return number if peer_type in ("chat", "channel") else None  # a positive id is a person's
    return text if _USERNAME.match(text) else None


def group_id_problem(group_id: str) -> str | None:
    """Why ``group_id`` names no Telegram group, or None when it may."""
    if chat_ref(group_id) is not None:
        return None
    return (
        "not a Telegram group: give its @username, a t.me/ link, or its id "
        "(a basic group's negative id, a supergroup's or channel's -100…)"
    )
