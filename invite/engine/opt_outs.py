"""The opt-out check of a task's messages (a message task's, an invite task's links): too many of the people it reached said no → pause it.

The circuit breaker's sibling (breaker.py), for what the recipients think rather than what
Telegram answers: once a task has reached ``OPT_OUT_PAUSE_MIN_PEOPLE`` people, the share of them
who replied asking to stop, or the share who blocked the account, reaching
``OPT_OUT_PAUSE_RATE`` pauses it with the reason (``Action.TRIP``, as the breaker does). Checked
inside the transaction that brings a new "no" -- a block in the group commit's follow-up, a
stop reply in the replies poller's -- on the database's view of every replica's outcomes, so the
pause lands with the opt-out that tipped it.
"""

from __future__ import annotations

import uuid

from invite.engine.decisions import DECISIONS, Call, EngineOutcome
from invite.engine.reply_rows import OptOutWindow
from invite.engine.repository import Repository
from invite.kernel.settings import Settings
from invite.platforms.base import OutcomeKind

# what the log rows of a task's messages say: a message task's (RunningTask.action), and an
# invite task's one-use links (links.py)
ACTIONS = (Call.MESSAGE.value, Call.LINK_MESSAGE.value)
# the log statuses of people a message reached: delivered (at once, or found so afterwards; a
# link's too), or refused because they had blocked the account
REACHED = (
    DECISIONS[OutcomeKind.SUCCESS].logged,
    DECISIONS[EngineOutcome.DELIVERED_CONFIRMED].logged,
    DECISIONS[EngineOutcome.LINK_SENT].logged,
    DECISIONS[OutcomeKind.BLOCKED].logged,
)
BLOCKED = DECISIONS[OutcomeKind.BLOCKED].logged


def verdict(window: OptOutWindow, settings: Settings) -> tuple[str, str] | None:
    """(metric reason, words for the customer) when the task must pause, else None."""
    reached, rate = window.reached, settings.opt_out_pause_rate
    if reached < settings.opt_out_pause_min_people:
        return None
    if window.opt_outs >= rate * reached:
        return "opt_outs", (
            f"paused: {window.opt_outs} of the {reached} people this task reached replied asking not "
            f"to be written to again; check the audience and the message before resuming"
        )
    if window.blocked >= rate * reached:
        return "blocks", (
            f"paused: {window.blocked} of the {reached} people this task reached blocked the account; "
            f"check the audience and the message before resuming"
        )
    return None


async def check(tx: Repository, task_id: uuid.UUID, settings: Settings) -> tuple[str, str] | None:
    window = await tx.opt_out_window(task_id=task_id, actions=ACTIONS, reached=REACHED, blocked=BLOCKED)
    return verdict(window, settings)
