"""Account leases: which accounts this replica drives.

A heartbeat renews the replica's leases (every third of the lease time, or sooner when
kicked), reloads the picture of running tasks, lets go of accounts with nothing left to
serve, and leases more — accounts of running tasks whose lease is free or expired, up to
``max_accounts_per_replica``. A lease that expired elsewhere is a takeover: the account's
quota state comes from its row, so nothing about its limits is forgotten. Before an
account is driven the accounts provider leases it too; on release it hears the usage.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

import asyncpg
import structlog

from invite.engine.account import LeasedAccount
from invite.engine.bucket import Bucket
from invite.engine.clock import wait_event
from invite.engine.context import EngineContext
from invite.engine.decisions import dead_account_event
from invite.engine.registry import RunningTask
from invite.engine.runner import run_account
from invite.observability.metrics import accounts_blocked, accounts_by_state, lease_takeovers
from invite.platforms.base import AccountsProvider, OutcomeKind, StrategyFactory

log = structlog.get_logger(__name__)

PURPOSE = "invite-service"
_STARTING_AT_ONCE = 16


class LeaseKeeper:
    def __init__(self, ctx: EngineContext, strategies: StrategyFactory, accounts: AccountsProvider) -> None:
        self._ctx = ctx
        self._strategies = strategies
        self._accounts = accounts
        self.held: dict[str, LeasedAccount] = {}
        self._kick = asyncio.Event()
        self._avoid: dict[str, datetime] = {}  # the provider would not lease these: not before
        self._closing = False

    def kick(self) -> None:
        self._kick.set()

    async def run(self) -> None:
        heartbeat = self._ctx.settings.account_lease_seconds / 3
        while True:
            self._kick.clear()
            try:
                await self.tick()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.error("lease heartbeat failed", error=repr(exc))
            await wait_event(self._ctx.clock, self._kick, heartbeat)

    async def tick(self) -> None:
        await self._renew()
        await self._refresh()
        await self._release([a for a in self.held.values() if not a.driving or not self._serves(a)])
        await self._acquire()
        counts = Counter("blocked" if a.blocked else a.status for a in self.held.values())
        for state in ("active", "cooldown", "blocked"):
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
        return self._ctx.registry.serves_anything(account.id)

    async def _renew(self) -> None:
        if not self.held:
            return
        ctx = self._ctx
        now = ctx.clock.now()
        rows = await ctx.store.fetch(
            "renew_leases", ctx.settings.replica_id, list(self.held), now, ctx.settings.account_lease_seconds
        )
        kept = {row["id"] for row in rows}
        for account in self.held.values():
            if account.id not in kept:  # our lease ran out and another replica took the account
                log.warning("account lease lost", account_id=account.id)
                account.held = account.driving = False
        if len(kept) < len(self.held):
            ctx.registry.bump()

    async def _refresh(self) -> None:
        ctx = self._ctx
        driver = self._strategies.driver
        tasks = [RunningTask.from_row(row) for row in await ctx.store.fetch("running_tasks", driver)]
        servable = await ctx.store.fetch("servable", list(self.held), driver)
        ctx.registry.replace(tasks, [(row["account_id"], row["task_id"]) for row in servable])

    async def _acquire(self) -> None:
        ctx = self._ctx
        room = ctx.settings.max_accounts_per_replica - len(self.held)
        if self._closing or room <= 0:
            return
        now = ctx.clock.now()
        self._avoid = {k: until for k, until in self._avoid.items() if until > now}
        rows = await ctx.store.fetch(
            "acquire_accounts",
            ctx.settings.replica_id,
            now,
            room,
            [*self.held, *self._avoid],
            ctx.settings.account_lease_seconds,
            self._strategies.driver,
        )
        for row in rows:
            if row["previous_owner"] not in (None, ctx.settings.replica_id):
                lease_takeovers.inc()
                log.info(
                    "account lease taken over", account_id=row["id"], previous_owner=row["previous_owner"]
                )
        # clients start side by side (a Telegram login takes a while): the heartbeat must not lag
        starting = asyncio.Semaphore(_STARTING_AT_ONCE)

        async def take(row: asyncpg.Record) -> None:
            async with starting:
                await self._take(row)

        await asyncio.gather(*(take(row) for row in rows))
        if rows:
            await self._refresh()

    async def _take(self, row: asyncpg.Record) -> None:
        account_id, user_id = row["id"], row["user_id"]
        try:
            data = await self._accounts.lease(account_id, user_id, PURPOSE)
        except Exception as exc:
            log.warning("accounts provider would not lease", account_id=account_id, error=repr(exc))
            data = None
        if data is None:  # busy elsewhere on the platform: give it back, ask again later
            await self._give_back([account_id])
            return
        strategy = self._strategies.for_account(data)
        try:
            ready = await strategy.initialize_client(data)
        except Exception as exc:
            log.warning("client did not start", account_id=account_id, error=repr(exc))
            ready = None
        account = LeasedAccount(data, strategy, strategy.get_rate_limits(), Bucket())
        account.load(row)
        if row["previous_owner"] is not None:
            # not released gracefully: its last send may have come after the reservation the
            # row shows, as late as now; no claim until a whole gap from now
            account.bucket.acted_by(self._ctx.clock.now())
        if ready is not None and ready.kind is OutcomeKind.ACCOUNT_DEAD:
            await self._retire(account, ready.detail)
        if ready is None or ready.kind is not OutcomeKind.SUCCESS:
            await self._accounts_release(account)
            await strategy.close()
            await self._give_back([account_id])
            return
        self.held[account_id] = account
        self._ctx.registry.driven = len(self.held)
        account.runner = asyncio.get_running_loop().create_task(
            self._drive(account), name=f"account-{account_id}"
        )

    async def _drive(self, account: LeasedAccount) -> None:
        try:
            await run_account(self._ctx, account)
        except Exception:
            log.exception("account runner failed", account_id=account.id)
            account.driving = False
            self.kick()

    async def _retire(self, account: LeasedAccount, detail: str) -> None:
        """The account is dead at start-up: blocked for good, everywhere, and the platform told."""
        ctx = self._ctx
        reason = f"account dead: {detail}"
        account.blocked = True
        async with ctx.store.transaction() as tx:
            await tx.execute("retire_account", ctx.settings.replica_id, account.id, reason, ctx.clock.now())
            await tx.execute("block_task_accounts", [account.id], [reason])
        accounts_blocked.labels(platform=account.platform).inc()
        account.usage.success, account.usage.error_type = False, dead_account_event(detail).value
        try:
            await self._accounts.report(account.id, account.user_id, dead_account_event(detail), reason)
        except Exception as exc:
            log.warning("account event not reported", account_id=account.id, error=repr(exc))

    async def _give_back(self, account_ids: list[str]) -> None:
        ctx = self._ctx
        now = ctx.clock.now()
        for account_id in account_ids:
            self._avoid[account_id] = now + timedelta(seconds=ctx.settings.poll_interval_seconds)
        await ctx.store.fetch(
            "release_accounts", ctx.settings.replica_id, account_ids, now, [None] * len(account_ids)
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
            await ctx.store.fetch(
                "release_accounts",
                ctx.settings.replica_id,
                [a.id for a in still_ours],
                ctx.clock.now(),
                [a.bucket.answered_at for a in still_ours],
            )
        for account in accounts:
            self.held.pop(account.id, None)
            ctx.registry.driven = len(self.held)
            await self._accounts_release(account)
            await account.strategy.close()

    async def _accounts_release(self, account: LeasedAccount) -> None:
        try:
            await self._accounts.release(account.id, account.user_id, account.usage)
        except Exception as exc:
            log.warning("accounts provider release failed", account_id=account.id, error=repr(exc))
