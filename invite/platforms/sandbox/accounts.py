"""The sandbox accounts provider: a tenant's few sandbox accounts, and what the engine gives back."""

from __future__ import annotations

import msgspec

from invite.kernel.settings import Settings
from invite.platforms.base import AccountData, AccountEvent, LeasePurpose, UsageStats


class Released(msgspec.Struct, frozen=True):
    account_id: str
    user_id: str
    usage: UsageStats


class Reported(msgspec.Struct, frozen=True):
    account_id: str
    user_id: str
    event: AccountEvent
    message: str


class SandboxAccounts:
    """The built-in accounts provider when no Integration Service is configured (implements ``AccountsProvider``).

    Each tenant has the same few sandbox accounts; leases always succeed for the tenant's
    own accounts and never run out (no ``lease_seconds``: nothing to renew). What the engine
    releases and reports is kept so it can be looked at.
    """

    def __init__(self, accounts_per_tenant: int) -> None:
        self._per_tenant = accounts_per_tenant
        self.leases: list[tuple[str, str, LeasePurpose]] = []  # (account_id, user_id, purpose)
        self.releases: list[Released] = []
        self.reports: list[Reported] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxAccounts:
        return cls(settings.sandbox_accounts_per_tenant)

    async def list_accounts(self, user_id: str) -> list[AccountData]:
        return [
            AccountData(id=f"sandbox-{user_id}-{n}", user_id=user_id, label=f"Sandbox account {n}")
            for n in range(1, self._per_tenant + 1)
        ]

    async def lease(
        self, account_id: str, user_id: str, purpose: LeasePurpose, channel: str | None = None
    ) -> AccountData | None:
        """The account with an empty session; None for an id that is not one of this tenant's."""
        account = await self.renew(account_id, user_id, purpose)
        if account is not None:
            self.leases.append((account_id, user_id, purpose))
        return account

    async def renew(
        self, account_id: str, user_id: str, purpose: LeasePurpose, channel: str | None = None
    ) -> AccountData | None:
        """The account again (its lease never runs out); None for an id that is not one of this tenant's."""
        return next((a for a in await self.list_accounts(user_id) if a.id == account_id), None)

    async def release(self, account_id: str, user_id: str, usage: UsageStats) -> None:
        self.releases.append(Released(account_id, user_id, usage))

    async def report(self, account_id: str, user_id: str, event: AccountEvent, message: str) -> None:
        self.reports.append(Reported(account_id, user_id, event, message))
