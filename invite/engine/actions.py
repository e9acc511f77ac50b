"""The platform call itself: a claimed target becomes an invite or a personal message."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from invite.engine.claims import Claim
from invite.engine.decisions import RAISED, Call, Raised
from invite.engine.registry import RunningTask
from invite.platforms.base import InviteStrategy, Outcome, OutcomeKind, Target, TargetKind
from invite.tasks.templates import TemplateError, render


async def act(strategy: InviteStrategy, task: RunningTask, claim: Claim) -> Outcome | Raised:
    """The platform's answer; a step that raised instead is what the table's ``RAISED`` says."""
    target = Target.from_key(claim.key, claim.data)
    if task.is_invite:
        assert task.group_id is not None  # the schema requires it of invite tasks
        try:
            return await strategy.invite_to_group(target, task.group_id)
        except Exception as exc:
            return Raised(RAISED[Call.INVITE], f"driver error: {exc!r}")
    try:
        text = render(task.template or "", values(target, claim.data))
    except TemplateError as exc:
        return Raised(RAISED[Call.TEMPLATE], f"template: {exc}")
    try:
        return await strategy.send_message(target, text, message_random_id(task.id, claim.target_id))
    except Exception as exc:
        return Raised(RAISED[Call.MESSAGE], f"driver error: {exc!r}")


def message_random_id(task_id: uuid.UUID, target_id: uuid.UUID) -> int:
    """The platform's idempotency key of the message to one person in one task: derived from
    the two ids alone, so every attempt, retry, take-over by another replica and reconciliation
    sends the same one, and the platform never delivers that message twice. A signed 64-bit
    integer, as Telegram's ``random_id`` is."""
    digest = hashlib.blake2b(task_id.bytes + target_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def check_right(strategy: InviteStrategy, group_id: str) -> Outcome:
    """The platform's answer (an Outcome, which the rights page reads too); a driver that
    raised counts as the table's ``RAISED`` says, a platform outcome."""
    try:
        return await strategy.check_invite_right(group_id)
    except Exception as exc:
        return Outcome(OutcomeKind(RAISED[Call.CHECK_RIGHT]), detail=f"driver error: {exc!r}")


def values(target: Target, data: dict[str, Any]) -> dict[str, Any]:
    """The person's data for the template, with the identifier filling in what it can."""
    known = {
        TargetKind.USERNAME: "username",
        TargetKind.USER_ID: "user_id",
        TargetKind.PHONE: "phone",
    }
    return {known[target.kind]: target.value, **{k: v for k, v in data.items() if v not in (None, "")}}
