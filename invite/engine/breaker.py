"""The circuit breaker of a task: too many spam flags, or too many errors lately → pause it.

Checked inside the group commit that brings a new error, on the database's view (all
replicas' outcomes), so the pause lands with the outcome that tripped it.
"""

from __future__ import annotations

import uuid

from invite.engine.decisions import BREAKER_ERRORS
from invite.engine.repository import BreakerWindow, Repository
from invite.kernel.settings import Settings


def verdict(window: BreakerWindow, settings: Settings) -> tuple[str, str] | None:
    """(metric reason, words for the customer) when the task must pause, else None."""
    peer_floods, outcomes, errors = window.peer_floods, window.outcomes, window.errors
    if peer_floods >= settings.breaker_peer_floods:
        return "peer_flood", (
            f"paused by the circuit breaker: Telegram flagged accounts for spam (PeerFlood) {peer_floods} "
            f"times in this task; check the audience and the message before resuming"
        )
    if outcomes >= settings.breaker_window and errors >= settings.breaker_error_rate * outcomes:
        return "error_rate", (
            f"paused by the circuit breaker: {errors} of the last {outcomes} actions failed "
            f"(FloodWait, spam flags, dead accounts, errors); resume when the accounts have rested"
        )
    return None


async def check(tx: Repository, task_id: uuid.UUID, settings: Settings) -> tuple[str, str] | None:
    window = await tx.breaker_window(
        task_id=task_id, window=settings.breaker_window, error_statuses=sorted(BREAKER_ERRORS)
    )
    return verdict(window, settings)
