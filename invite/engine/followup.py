"""Reads on accounts no replica drives, each under a short lease of its own.

An account is driven while a running task needs it; once its last task ends, the lease keeper
lets go of it. Some reading goes on after that: the replies of a message task for
``REPLIES_WATCH_HOURS`` after it ended (replies.py), the joins through the one-use invite links
still open (links.py). ``ShortLeases.read`` runs one such read on an account that nobody
holds, with the same guarantees as the lease keeper's (leases.py), so that two replicas, or a
replica and the platform, never drive one Telegram session at once:

1. our lease (replies.borrow_account): taken only when the account's row is free or its lease
   expired, under an owner of its own (the replica's id + ``OWNER_SUFFIX``) that no lease keeper
   -- this replica's included -- takes an account from; it lasts ``ACCOUNT_LEASE_SECONDS``, and
   the read is cut off at half of that;
2. the accounts provider's lease (the platform's Integration Service), for ``purpose`` (a
   message campaign by default): refused -- the account is busy elsewhere -- and the read is
   skipped this time;
3. the client started, the read run, the client closed (before either lease goes: a connection
   left on a session the platform hands to another is AUTH_KEY_DUPLICATED);
4. the provider's lease released with zero usage (a read is not an action), and our lease put
   back as it was found (replies.give_back_account: an expired lease stays its dead owner's,
   so the account's next holder still treats it as not let go of gracefully);
5. the lease keeper told (``wanted``) when a running task of this driver needs the account
   (leases.servable): a read gives way to a campaign. The keeper's beat may have come while
   the read held the account, and left to the next beat it could miss it again and again --
   both keep time on one clock, and a beat that is a multiple of REPLIES_POLL_SECONDS falls
   on a read every time.

At most ``at_once`` reads run side by side per replica (connecting a client is the costly part).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from invite.engine.context import EngineContext
from invite.platforms.base import (
    AccountsProvider,
    InviteStrategy,
    LeasePurpose,
    OutcomeKind,
    StrategyFactory,
    UsageStats,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")

OWNER_SUFFIX = "/read"  # our lease's owner while a short read holds the account
AT_ONCE = 4  # short reads side by side per replica


class ShortLeases:
    """Reads on accounts no replica holds, each under a short lease (one per engine)."""

    def __init__(
        self,
        ctx: EngineContext,
        strategies: StrategyFactory,
        accounts: AccountsProvider,
        wanted: Callable[[], None],
        at_once: int = AT_ONCE,
    ) -> None:
        self._ctx = ctx
        self._strategies = strategies
        self._accounts = accounts
        self._wanted = wanted  # the lease keeper looks for accounts at once
        self._at_once = asyncio.Semaphore(at_once)
        self.owner = ctx.settings.replica_id + OWNER_SUFFIX
        self.driver = strategies.driver  # the tasks whose accounts it may read: this replica's driver's

    async def read(
        self,
        account_id: str,
        work: Callable[[InviteStrategy], Awaitable[T]],
        *,
        purpose: LeasePurpose = LeasePurpose.MESSAGE_CAMPAIGN,
        channel: str | None = None,
    ) -> T | None:
        """``work(strategy)``'s result, run on the account's started client under a short lease;
        None when it did not run: someone holds the account (or it is blocked), the provider
        would not lease it, or its client did not start. ``work`` is cut off after half a lease
        (it must not sleep on the engine's clock, and should not act: nothing counts it)."""
        ctx = self._ctx
        async with self._at_once:
            borrowed = await ctx.repo.borrow_account(
                owner=self.owner,
                account_id=account_id,
                now=ctx.clock.now(),
                lease_seconds=ctx.settings.account_lease_seconds,
            )
            if borrowed is None:
                return None
            try:
                return await self._leased(borrowed.id, borrowed.user_id, work, purpose, channel)
            finally:
                await ctx.repo.give_back_account(owner=self.owner, borrowed=borrowed)
                if await ctx.repo.servable(account_ids=[account_id], driver=self.driver):
                    self._wanted()

    async def _leased(
        self,
        account_id: str,
        user_id: str,
        work: Callable[[InviteStrategy], Awaitable[T]],
        purpose: LeasePurpose,
        channel: str | None,
    ) -> T | None:
        ctx = self._ctx
        try:
            with ctx.clock.busy():
                data = await self._accounts.lease(account_id, user_id, purpose, channel)
        except Exception as exc:
            log.warning(
                "accounts provider would not lease for a read", account_id=account_id, error=repr(exc)
            )
            data = None
        if data is None:  # busy elsewhere, or resting on the platform: next time
            return None
        try:
            strategy = self._strategies.for_account(data)
            try:
                with ctx.clock.busy():
                    async with asyncio.timeout(ctx.settings.account_lease_seconds / 2):
                        ready = await strategy.initialize_client(data)
                        if ready.kind is not OutcomeKind.SUCCESS:
                            log.info(
                                "client did not start for a read",
                                account_id=account_id,
                                outcome=str(ready.kind),
                            )
                            return None
                        return await work(strategy)
            finally:
                await strategy.close()
        except TimeoutError:
            log.warning("read on an unheld account cut off", account_id=account_id)
            return None
        finally:
            try:
                with ctx.clock.busy():
                    await self._accounts.release(account_id, user_id, UsageStats())
            except Exception as exc:
                log.warning("accounts provider release failed", account_id=account_id, error=repr(exc))
