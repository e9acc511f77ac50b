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

import msgspec
import structlog

from invite.engine.context import EngineContext
from invite.engine.repository import ListedAccount, Repository, Unprepared
from invite.engine.statuses import TaskAccountStatus
from invite.kernel.http import UpstreamError
from invite.platforms.base import AccountData, AccountsProvider
from invite.tasks.states import TaskStatus
from invite.tasks.task_settings import TaskSettings

log = structlog.get_logger(__name__)


async def activate(ctx: EngineContext, provider: AccountsProvider, task: Unprepared) -> str | None:
    """Prepare the task; 'failed' when it cannot run, 'prepared' when it can, None when another did
    it or the accounts provider did not answer ('paused' when that has lasted ACCOUNTS_WAIT_SECONDS)."""
    settings = msgspec.convert(task.settings or {}, TaskSettings)
    try:
        with ctx.clock.busy():
            listed = await provider.list_accounts(task.user_id)
    except UpstreamError as exc:
        return await _wait(ctx, task.id, exc)
    chosen = [a for a in listed if settings.account_ids is None or a.id in settings.account_ids]
    now = ctx.clock.now()

    async def prepare(tx: Repository) -> tuple[str | None, str | None]:
        """What came of it, and why the task failed."""
        if not await tx.lock_task_for_activation(task_id=task.id):
            return None, None  # no longer running
        if await tx.task_prepared(task_id=task.id):
            return None, None  # another replica did it
        reason = await _attach(tx, task, settings, listed, chosen, now)
        if reason is None:
            return "prepared", None
        await tx.fail_task(task_id=task.id, reason=reason, now=now)
        return TaskStatus.FAILED, reason

    outcome, reason = await ctx.repo.transaction(prepare)
    if reason is not None:
        log.warning("task failed at activation", task_id=str(task.id), reason=reason)
    return outcome


async def _wait(ctx: EngineContext, task_id: uuid.UUID, exc: UpstreamError) -> str | None:
    """The task shows why it waits; paused once it has waited too long. None: try again next round."""
    reason = f"the accounts could not be read ({exc.service} {exc.detail}); retrying"
    status = await ctx.repo.wait_for_accounts(
        task_id=task_id, reason=reason, now=ctx.clock.now(), wait_seconds=ctx.settings.accounts_wait_seconds
    )
    if status == TaskStatus.PAUSED:
        log.warning("task paused: no accounts", task_id=str(task_id), reason=reason)
        return TaskStatus.PAUSED
    log.warning("activation postponed", task_id=str(task_id), reason=reason)
    return None


async def _attach(
    tx: Repository,
    task: Unprepared,
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
    await tx.upsert_accounts(
        user_id=task.user_id,
        platform=task.platform,
        now=now,
        accounts=[ListedAccount(a.id, a.label, a.daily_limit) for a in chosen],
    )
    statuses = await tx.attach_accounts(
        task_id=task.id,
        user_id=task.user_id,
        account_ids=[a.id for a in chosen],
        most=settings.max_parallel_accounts,
    )
    if not statuses:
        return "the accounts listed for you are registered to another customer of this service"
    if TaskAccountStatus.ACTIVE not in statuses:
        return "every account chosen for the task is blocked (banned, deactivated or logged out)"
    return None
