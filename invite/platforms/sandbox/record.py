"""The sandbox's record: every action the simulator received, and what it answered.

Every action is written to a ``SandboxRecord`` before its answer is returned; the JSONL record is
appended with one ``write`` per action, so a process killed with SIGKILL leaves the complete
list of what it "sent", and a new process (or another replica) reads its state back from it.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import msgspec

from invite.platforms.base import OutcomeKind


class ActionKind(StrEnum):
    INVITE = "invite"
    MESSAGE = "message"
    CONTACT = "contact"
    LINK = "link"  # an invite link made (target_key empty)
    REVOKE_LINK = "revoke_link"


_PERSON_ACTIONS = frozenset({ActionKind.INVITE, ActionKind.MESSAGE, ActionKind.CONTACT})


class SandboxAction(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One action the simulator received, and what it answered. Message texts are kept as a hash.

    Plain values only, so the record (an action per target) stays out of the garbage collector's
    full passes, which otherwise grow with it and stall the event loop the service shares.
    """

    at: datetime
    account_id: str
    action: ActionKind
    target_key: str
    group_id: str | None = None
    text_hash: str | None = None
    random_id: int | None = None  # a message's idempotency key
    link_url: str | None = None  # the link made or revoked; for a message, the link its text carries
    expires_at: datetime | None = None  # a link made: when it stops working
    attempt: int  # earlier actions of this kind on this person (and group / text)
    outcome: OutcomeKind
    seconds: float = 0.0
    detail: str = ""

    @property
    def destination(self) -> str:
        return self.group_id or self.text_hash or ""


class SandboxRecord(Protocol):
    """Where the simulator writes what it did; positions let readers pick up what is new."""

    def append(self, action: SandboxAction) -> None: ...

    def read_since(self, position: int) -> tuple[list[SandboxAction], int]: ...


class MemoryRecord:
    def __init__(self) -> None:
        self.actions: list[SandboxAction] = []

    def append(self, action: SandboxAction) -> None:
        self.actions.append(action)

    def read_since(self, position: int) -> tuple[list[SandboxAction], int]:
        return self.actions[position:], len(self.actions)


class JsonlRecord:
    """An append-only JSON-lines file, shared safely by several processes.

    Each action is one ``os.write`` on an ``O_APPEND`` descriptor: it reaches the kernel
    before the answer is returned (a SIGKILL loses nothing), and lines of concurrent
    writers never interleave. ``read_since`` takes byte offsets and complete lines only.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, action: SandboxAction) -> None:
        os.write(self._fd, _ENCODER.encode(action) + b"\n")

    def read_since(self, position: int) -> tuple[list[SandboxAction], int]:
        return _read_jsonl(self.path, position)

    def close(self) -> None:
        os.close(self._fd)


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(SandboxAction)


def _read_jsonl(path: Path, position: int) -> tuple[list[SandboxAction], int]:
    with path.open("rb") as file:
        file.seek(position)
        chunk = file.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    return [_DECODER.decode(line) for line in complete.splitlines() if line], position + len(complete)


def read_record(path: str | Path) -> list[SandboxAction]:
    """Every action in a JSONL record (a last line cut short by a crash is left out)."""
    return _read_jsonl(Path(path), 0)[0]


def sends_per_target(
    actions: Iterable[SandboxAction], action: ActionKind | None = None
) -> Counter[tuple[ActionKind, str, str]]:
    """How many times each person really got each thing: (action, group or text hash, target key) → count.

    Only successful actions count. The same message to the same person twice counts 2, so
    ``max(counts.values()) == 1`` proves nobody got it twice.
    """
    return Counter(
        (a.action, a.destination, a.target_key)
        for a in actions
        if a.outcome is OutcomeKind.SUCCESS
        and a.action in _PERSON_ACTIONS
        and (action is None or a.action is action)
    )


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
