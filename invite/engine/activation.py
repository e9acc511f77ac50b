"""Activation: a task that has just started running gets its accounts, and its audience is screened.

Once per task across replicas (the task's row lock, and "no account attached yet"):
the tenant's accounts come from the accounts provider (only those in
``settings.account_ids`` when given), are recorded in invite_accounts under the tenant (an
account never serves another tenant), and are attached to the task (at most the task's
``max_parallel_accounts``, usable ones first). Who must not be contacted (the suppression
list, the recontact cap) is decided by the claim itself, target by target, not here: a
person suppressed after activation is stopped all the same. No usable account: the task fails
with a reason the customer sees. While the accounts provider does not answer, the task says
so in its status_reason and is tried again each round; after ACCOUNTS_WAIT_SECONDS it is
paused with that reason. Whether an account may invite into the group is checked
by the replica that drives it, before its first invite for the task.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import msgspec
import structlog

from invite.engine.context import EngineContext
from invite.engine.store import Tx
from invite.kernel.http import UpstreamError
from invite.platforms.base import AccountData, AccountsProvider
from invite.tasks.task_settings import TaskSettings

log = structlog.get_logger(__name__)


async def activate(ctx: EngineContext, provider: AccountsProvider, task: asyncpg.Record) -> str | None:
    """Prepare the task; 'failed' when it cannot run, 'prepared' when it can, None when another did
    it or the accounts provider did not answer ('paused' when that has lasted ACCOUNTS_WAIT_SECONDS)."""
    task_id: uuid.UUID = task["id"]
    settings = msgspec.convert(task["settings"] or {}, TaskSettings)
    try:
        with ctx.clock.busy():
            listed = await provider.list_accounts(task["user_id"])
    except UpstreamError as exc:
        return await _wait(ctx, task_id, exc)
    chosen = [a for a in listed if settings.account_ids is None or a.id in settings.account_ids]
    now = ctx.clock.now()
    async with ctx.store.transaction() as tx:
        if await tx.fetchrow("lock_task_for_activation", task_id) is None:
            return None  # no longer running
        prepared = await tx.fetchrow("task_prepared", task_id)
        if prepared is not None and prepared[0]:
            return None  # another replica did it
        reason = await _attach(tx, task, settings, listed, chosen, now)
        if reason is not None:
            await tx.fetchrow("fail_task", task_id, reason, now)
            log.warning("task failed at activation", task_id=str(task_id), reason=reason)
            return "failed"
    return "prepared"


async def _wait(ctx: EngineContext, task_id: uuid.UUID, exc: UpstreamError) -> str | None:
    """The task shows why it waits; paused once it has waited too long. None: try again next round."""
    reason = f"the accounts could not be read ({exc.service} {exc.detail}); retrying"
    row = await ctx.store.fetchrow(
        "wait_for_accounts", task_id, reason, ctx.clock.now(), ctx.settings.accounts_wait_seconds
    )
    if row is not None and row["status"] == "paused":
        log.warning("task paused: no accounts", task_id=str(task_id), reason=reason)
        return "paused"
    log.warning("activation postponed", task_id=str(task_id), reason=reason)
    return None


async def _attach(
    tx: Tx,
    task: asyncpg.Record,
    settings: TaskSettings,
    listed: list[AccountData],
    chosen: list[AccountData],
    now: datetime,
) -> str | None:
    """Attach the accounts; the reason the task cannot run, or None."""
    if not listed:
        return "no account is connected: connect a Telegram account, then start the task again"
    if not chosen:
        return "none of the accounts chosen in the task's settings (account_ids) is connected"
    await tx.execute(
        "upsert_accounts",
        task["user_id"],
        task["platform"],
        now,
        [a.id for a in chosen],
        [a.label for a in chosen],
        [a.daily_limit for a in chosen],
    )
    rows = await tx.fetch(
        "attach_accounts", task["id"], task["user_id"], [a.id for a in chosen], settings.max_parallel_accounts
    )
    if not rows:
        return "the accounts listed for you are registered to another customer of this service"
    if not any(row["status"] == "active" for row in rows):
        return "every account chosen for the task is blocked (banned, deactivated or logged out)"
    return None
