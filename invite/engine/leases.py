"""Account leases: which accounts this replica drives.

A heartbeat renews the replica's leases (every third of the lease time, or sooner when
kicked), reloads the picture of running tasks, lets go of accounts with nothing left to
serve, and leases more — accounts of running tasks whose lease is free or expired, up to
``max_accounts_per_replica`` (an account a test invite waits for before those). A lease that
expired elsewhere is a takeover: the account's quota state comes from its row, so nothing
about its limits is forgotten.

Before an account is driven the accounts provider leases it too (the platform hands a
Telegram session to one service at a time), for an invite campaign when the account
serves a running invite task, else for a message campaign. A provider's lease that runs
out (``lease_seconds``) is renewed once a third of it is left: the heartbeat wakes for that
moment if its own beat would come later. An account whose tasks call for the other purpose
(an invite task started after it was leased for messages) is leased anew at once, for that
purpose; until then it does not invite (account.limits_for). A renewal refused or
failed stops the account after the action in hand and releases it, as a lost lease does:
driving a session the platform may have handed to another service risks
AUTH_KEY_DUPLICATED. A later heartbeat leases it again if the provider allows. On release
the provider hears the usage.

An invite account's provider lease names the channel it invites into (the provider checks
its per-channel limits). The daily limit the provider gives with each lease is kept in the
account's row (renew_leases), so the claim statement holds it on every replica; each beat
also brings the invites each account made into each of its tasks' channels, for the
per-channel caps (RunningTask.limits).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from invite.engine.account import LeasedAccount
from invite.engine.bucket import Bucket
from invite.engine.context import EngineContext
from invite.engine.outcomes import retire
from invite.engine.registry import RunningTask
from invite.engine.repository import DATABASE_AWAY, AcquiredAccount, RenewedLease, Repository
from invite.engine.runner import run_account
from invite.engine.statuses import AccountStatus
from invite.observability.metrics import accounts_by_state, lease_takeovers
from invite.platforms.base import (
    AccountData,
    AccountsProvider,
    LeasePurpose,
    Outcome,
    OutcomeKind,
    StrategyFactory,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")

_AT_ONCE = 16  # client starts and provider renewals side by side
CRASH_REST_MAX_SECONDS = 3600.0


class LeaseKeeper:
    def __init__(self, ctx: EngineContext, strategies: StrategyFactory, accounts: AccountsProvider) -> None:
        self._ctx = ctx
        self._strategies = strategies
        self._accounts = accounts
        self.held: dict[str, LeasedAccount] = {}
        self._kick = asyncio.Event()
        self._avoid: dict[str, datetime] = {}  # the provider would not lease these: not before
        self._crashes: dict[str, int] = {}  # runner crashes in a row, per account
        self._closing = False

    def kick(self) -> None:
        self._kick.set()

    async def run(self) -> None:
        heartbeat = self._ctx.settings.account_lease_seconds / 3
        while True:
            self._kick.clear()
            try:
                await self.tick()
                wait = self._until_next_beat(heartbeat)
            except DATABASE_AWAY as exc:
                log.error("lease heartbeat failed", error=repr(exc))
                wait = heartbeat
            await self._ctx.clock.wait(self._kick, wait)

    async def tick(self) -> None:
        await self._renew()
        await self._refresh()
        await self._look_for_trials()
        await self._repurpose()
        await self._release([a for a in self.held.values() if not a.driving or not self._serves(a)])
        await self._acquire()
        counts = Counter(AccountStatus.BLOCKED if a.blocked else a.status for a in self.held.values())
        for state in (AccountStatus.ACTIVE, AccountStatus.COOLDOWN, AccountStatus.BLOCKED):
            accounts_by_state.labels(state=state).set(counts[state])

    async def close(self) -> None:
        """Graceful: let every account finish the action in hand, commit, release the leases."""
        self._closing = True
        for account in self.held.values():
            account.driving = False
        self._ctx.claimer.close()
        await self._release(list(self.held.values()))

    def abandon(self) -> None:
        """Stop driving at once and leave the leases behind, as a killed process would."""
        for account in self.held.values():
            if account.runner is not None:
                account.runner.cancel()

    def _serves(self, account: LeasedAccount) -> bool:
        return self._ctx.registry.serves_anything(account.id) or self._ctx.trials.wanted(account.id)

    async def _look_for_trials(self) -> None:
        """Test invites waiting for an account held here or by nobody (trials.py); the runners
        of those held here hear of them at once."""
        ctx = self._ctx
        now = ctx.clock.now()
        driver = self._strategies.driver
        if await ctx.trials.refresh(ctx.repo, replica=ctx.settings.replica_id, now=now, driver=driver):
            ctx.registry.bump()

    def _until_next_beat(self, heartbeat: float) -> float:
        """Seconds to the next heartbeat: a whole beat, or less when a provider's lease is due before."""
        due = [a.renew_at for a in self.held.values() if a.driving and a.renew_at is not None]
        if not due:
            return heartbeat
        return min(heartbeat, max((min(due) - self._ctx.clock.now()).total_seconds(), 0.0))

    async def _renew(self) -> None:
        if not self.held:
            return
        ctx = self._ctx
        now = ctx.clock.now()
        rows = await self._extend(list(self.held.values()))
        kept = {row.id for row in rows}
        for account in self.held.values():
            if account.id not in kept:  # our lease ran out and another replica took the account
                log.warning("account lease lost", account_id=account.id)
                account.held = account.driving = False
        if len(kept) < len(self.held):
            ctx.registry.bump()
        due = [a for a in self.held.values() if a.driving and a.renew_at is not None and a.renew_at <= now]
        await _side_by_side(self._renew_provider_lease, due)

    async def _extend(self, accounts: list[LeasedAccount]) -> list[RenewedLease]:
        """Extend our leases on ``accounts``, keep the provider's daily and contacts limits in their rows, and
        take the invites each made into its tasks' channels; the rows of those still ours."""
        ctx = self._ctx
        rows = await ctx.repo.renew_leases(
            replica=ctx.settings.replica_id,
            account_ids=[a.id for a in accounts],
            now=ctx.clock.now(),
            lease_seconds=ctx.settings.account_lease_seconds,
            daily_limits=[a.daily_limit for a in accounts],
            contacts_limits=[a.contacts_limit for a in accounts],
        )
        for row in rows:
            self.held[row.id].channel_invites = _channel_invites(row.channel_invites)
        return rows

    async def _repurpose(self) -> None:
        """Lease anew, for the purpose their tasks now call for, the accounts leased for another."""
        due = [
            a
            for a in self.held.values()
            if a.driving and (tasks := self._tasks_of(a.id)) and _purpose(tasks) is not a.purpose
        ]
        await _side_by_side(self._renew_provider_lease, due)
        if due:
            self._ctx.registry.bump()

    def _tasks_of(self, account_id: str) -> list[RunningTask]:
        """The running tasks and test invites the account may serve."""
        return [*self._ctx.registry.tasks_for(account_id), *self._ctx.trials.tasks_for(account_id)]

    async def _renew_provider_lease(self, account: LeasedAccount) -> None:
        ctx = self._ctx
        asked = ctx.clock.now()
        error: str | None = None
        tasks = self._tasks_of(account.id)
        purpose = _purpose(tasks) if tasks else account.purpose
        try:
            with ctx.clock.busy():
                data = await self._accounts.renew(account.id, account.user_id, purpose, _channel(tasks))
        except Exception as exc:
            data, error = None, repr(exc)
        if data is None:
            log.warning(
                "accounts provider lease not renewed: account stopped", account_id=account.id, error=error
            )
            account.driving = False
            self._avoid[account.id] = _not_before(
                asked, ctx.settings.poll_interval_seconds, account.bucket.cooldown_until
            )
            return
        if purpose is not account.purpose:
            log.info("account leased anew", account_id=account.id, purpose=purpose)
            account.purpose = purpose
        account.renew_at = _renew_at(asked, data)
        if data.daily_limit is not None:
            account.daily_limit = data.daily_limit
        account.channel_limit = data.channel_limit
        account.contacts_limit = data.contacts_limit

    async def _refresh(self, taking: Iterable[str] = ()) -> None:
        """Reload the running tasks and what the held accounts (and those being taken) may serve."""
        ctx = self._ctx
        driver = self._strategies.driver
        tasks, broken = RunningTask.load(await ctx.repo.running_tasks(driver=driver))
        for task_id, reason in broken:  # paused with the reason; the others go on
            log.error("task paused: unusable row", task_id=str(task_id), reason=reason)
            await ctx.repo.pause_task(task_id=task_id, reason=reason, now=ctx.clock.now())
        servable = await ctx.repo.servable(account_ids=[*self.held, *taking], driver=driver)
        ctx.registry.replace(tasks, [(row.account_id, row.task_id) for row in servable])

    async def _acquire(self) -> None:
        ctx = self._ctx
        room = ctx.settings.max_accounts_per_replica - len(self.held)
        if self._closing or room <= 0:
            return
        now = ctx.clock.now()
        self._avoid = {k: until for k, until in self._avoid.items() if until > now}
        # an account a test invite waits for first: a person waits on it (TRIAL_WAIT_SECONDS),
        # and the campaign's accounts, as many as there is room for, would leave it none
        rows = await ctx.repo.acquire_trial_accounts(
            replica=ctx.settings.replica_id,
            now=now,
            room=room,
            avoid=[*self.held, *self._avoid],
            lease_seconds=ctx.settings.account_lease_seconds,
            driver=self._strategies.driver,
        )
        rows += await ctx.repo.acquire_accounts(
            replica=ctx.settings.replica_id,
            now=now,
            room=room - len(rows),
            avoid=[*self.held, *self._avoid, *(row.id for row in rows)],
            lease_seconds=ctx.settings.account_lease_seconds,
            driver=self._strategies.driver,
        )
        for row in rows:
            if row.previous_owner not in (None, ctx.settings.replica_id):
                lease_takeovers.inc()
                log.info("account lease taken over", account_id=row.id, previous_owner=row.previous_owner)
        if not rows:
            return
        await self._refresh(row.id for row in rows)  # the lease purpose follows their tasks
        # clients start side by side (a Telegram login takes a while): the heartbeat must not lag
        await _side_by_side(self._take, rows)
        taken = [self.held[row.id] for row in rows if row.id in self.held]
        if taken:  # their rows get the provider's daily limits before other replicas read them
            await self._extend(taken)

    async def _take(self, row: AcquiredAccount) -> None:
        account_id, user_id = row.id, row.user_id
        tasks = self._tasks_of(account_id)
        purpose = _purpose(tasks)
        asked = self._ctx.clock.now()
        try:
            with self._ctx.clock.busy():
                data = await self._accounts.lease(account_id, user_id, purpose, _channel(tasks))
        except Exception as exc:
            log.warning("accounts provider would not lease", account_id=account_id, error=repr(exc))
            data = None
        if data is None:  # busy or resting on the platform: give it back, ask again later
            await self._give_back([account_id], row.cooldown_until)
            return
        strategy = self._strategies.for_account(data)
        try:
            ready = await strategy.initialize_client(data)
        except Exception as exc:
            log.warning("client did not start", account_id=account_id, error=repr(exc))
            ready = None
        account = LeasedAccount(
            data,
            strategy,
            strategy.get_rate_limits(),
            Bucket(),
            purpose=purpose,
            renew_at=_renew_at(asked, data),
        )
        account.load(row)
        if data.daily_limit is not None:  # the provider's limit of today, lower or higher than before
            account.daily_limit = data.daily_limit
        account.channel_limit = data.channel_limit
        account.contacts_limit = data.contacts_limit
        account.channel_invites = _channel_invites(row.channel_invites)
        if row.previous_owner is not None:
            # not released gracefully: its last send may have come after the reservation the
            # row shows, as late as now; no claim until a whole gap from now
            account.bucket.acted_by(self._ctx.clock.now())
        if ready is not None and ready.kind is OutcomeKind.ACCOUNT_DEAD:
            await self._retire(account, ready)
        if ready is None or ready.kind is not OutcomeKind.SUCCESS:
            await strategy.close()  # off the key before the platform may hand it to another
            await self._accounts_release(account)
            await self._give_back([account_id])
            if ready is not None and ready.kind is OutcomeKind.FLOOD_WAIT:
                await self._rest(account, ready)
            return
        self.held[account_id] = account
        self._ctx.registry.driven = len(self.held)
        account.runner = asyncio.get_running_loop().create_task(
            self._drive(account), name=f"account-{account_id}"
        )

    async def _drive(self, account: LeasedAccount) -> None:
        try:
            await run_account(self._ctx, account)
            self._crashes.pop(account.id, None)
        except Exception:
            # released by the next tick and not taken again before a back-off that doubles with
            # each crash in a row (a bug must not become a restart loop that floods the log)
            crashes = self._crashes[account.id] = self._crashes.get(account.id, 0) + 1
            rest = min(CRASH_REST_MAX_SECONDS, self._ctx.settings.poll_interval_seconds * 2 ** (crashes - 1))
            log.exception("account runner failed", account_id=account.id, crashes=crashes, rest_seconds=rest)
            self._avoid[account.id] = self._ctx.clock.now() + timedelta(seconds=rest)
            account.driving = False
            self.kick()

    async def _retire(self, account: LeasedAccount, outcome: Outcome) -> None:
        """The account is dead at start-up: as its row of the decision table says
        (outcomes.retire), blocked for good, everywhere; the accounts provider hears the event
        the adapter named, if it named one."""
        ctx = self._ctx
        now = ctx.clock.now()
        retired = retire(ctx.settings, account, outcome, now)

        async def write(tx: Repository) -> None:
            await tx.retire_account(
                replica=ctx.settings.replica_id,
                account_id=account.id,
                status=retired.account.status,
                reason=retired.reason,
                now=now,
            )
            await tx.block_task_accounts(status=retired.task_status, reasons={account.id: retired.reason})

        await ctx.repo.transaction(write)
        if retired.report is None:
            return
        try:
            await self._accounts.report(account.id, account.user_id, *retired.report)
        except Exception as exc:
            log.warning("account event not reported", account_id=account.id, error=repr(exc))

    async def _rest(self, account: LeasedAccount, outcome: Outcome) -> None:
        """A FloodWait at connect: not leased again before it is over, and the platform told
        once (the driver's first answer carries the event; its "still waiting" ones do not)."""
        until = self._ctx.clock.now() + timedelta(seconds=outcome.seconds)
        self._avoid[account.id] = max(until, self._avoid.get(account.id, until))
        if outcome.event is None:
            return
        message = f"{outcome.kind}: {outcome.detail} ({outcome.seconds:g} s)"
        try:
            await self._accounts.report(account.id, account.user_id, outcome.event, message)
        except Exception as exc:
            log.warning("account event not reported", account_id=account.id, error=repr(exc))

    async def _give_back(self, account_ids: list[str], cooldown_until: datetime | None = None) -> None:
        ctx = self._ctx
        now = ctx.clock.now()
        for account_id in account_ids:
            self._avoid[account_id] = _not_before(now, ctx.settings.poll_interval_seconds, cooldown_until)
        await ctx.repo.release_accounts(
            replica=ctx.settings.replica_id,
            account_ids=account_ids,
            now=now,
            answered_at=[None] * len(account_ids),
        )

    async def _release(self, accounts: list[LeasedAccount]) -> None:
        if not accounts:
            return
        ctx = self._ctx
        for account in accounts:
            account.driving = False
        ctx.registry.bump()
        runners = [a.runner for a in accounts if a.runner is not None]
        await asyncio.gather(*runners, return_exceptions=True)
        await ctx.recorder.flush()
        still_ours = [a for a in accounts if a.held]
        if still_ours:
            await ctx.repo.release_accounts(
                replica=ctx.settings.replica_id,
                account_ids=[a.id for a in still_ours],
                now=ctx.clock.now(),
                answered_at=[a.bucket.answered_at for a in still_ours],
            )
        for account in accounts:
            self.held.pop(account.id, None)
            ctx.registry.driven = len(self.held)
            # the client first, even when a stop cancels this mid-way: a connection left on the
            # key of an account the platform hands to someone else is AUTH_KEY_DUPLICATED
            try:
                await account.strategy.close()
            finally:
                await self._accounts_release(account)

    async def _accounts_release(self, account: LeasedAccount) -> None:
        try:
            await self._accounts.release(account.id, account.user_id, account.usage)
        except Exception as exc:
            log.warning("accounts provider release failed", account_id=account.id, error=repr(exc))


def _purpose(tasks: Iterable[RunningTask]) -> LeasePurpose:
    """An invite campaign when the account serves an invite task: the platform then checks its invite counter."""
    return LeasePurpose.INVITE_CAMPAIGN if any(t.is_invite for t in tasks) else LeasePurpose.MESSAGE_CAMPAIGN


def _not_before(now: datetime, poll: float, cooldown_until: datetime | None) -> datetime:
    """When to ask the provider again for an account it would not lease: after a poll, or when
    the account's own cooldown is over (a FloodWait: the platform rests it as long, and hands
    it out meanwhile only to have it given back at once)."""
    later = now + timedelta(seconds=poll)
    return max(later, cooldown_until) if cooldown_until is not None else later


def _channel(tasks: Iterable[RunningTask]) -> str | None:
    """The group the account invites into (its most urgent invite task's): the provider checks
    its per-channel limits on the lease."""
    invites = sorted((t for t in tasks if t.is_invite and t.group_id), key=lambda t: t.priority)
    return invites[0].group_id if invites else None


def _channel_invites(invites: dict[str, int]) -> dict[uuid.UUID, int]:
    return {uuid.UUID(task_id): int(n) for task_id, n in invites.items()}


def _renew_at(asked: datetime, data: AccountData) -> datetime | None:
    """When a third of the provider's lease is left; it began no earlier than we asked for it."""
    if data.lease_seconds is None:
        return None
    return asked + timedelta(seconds=data.lease_seconds * 2 / 3)


async def _side_by_side(work: Callable[[T], Awaitable[None]], items: Iterable[T]) -> None:
    """``work`` on every item, at most _AT_ONCE at a time."""
    at_once = asyncio.Semaphore(_AT_ONCE)

    async def one(item: T) -> None:
        async with at_once:
            await work(item)

    await asyncio.gather(*(one(item) for item in items))
