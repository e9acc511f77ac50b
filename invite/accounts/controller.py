"""HTTP endpoint of accounts: ``GET /accounts``."""

from __future__ import annotations

import asyncpg
from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

from invite.accounts.schemas import AccountList
from invite.accounts.service import AccountsService
from invite.kernel.auth import Tenant
from invite.kernel.clock import Clock
from invite.kernel.problems import Problem
from invite.kernel.settings import Settings
from invite.platforms.base import AccountsProvider
from invite.platforms.sandbox import SandboxAccounts


def accounts_provider(state: State, settings: Settings) -> AccountsProvider:
    """The process's accounts provider, put in ``state.accounts_provider`` at start-up.

    Without one, the sandbox provider is made here when no Integration Service is configured
    (it holds nothing that needs closing); with one configured, it must have been started.
    """
    provider: AccountsProvider | None = getattr(state, "accounts_provider", None)
    if provider is not None:
        return provider
    if settings.integration_service_url:
        raise Problem(503, "Service unavailable", "the Integration Service client is not started")
    sandbox = SandboxAccounts.from_settings(settings)
    state.accounts_provider = sandbox
    return sandbox


def provide_accounts_service(
    state: State,
    db_pool: NamedDependency[asyncpg.Pool],
    app_settings: NamedDependency[Settings],
    clock: NamedDependency[SkipValidation[Clock]],
    tenant: NamedDependency[Tenant],
) -> AccountsService:
    provider = accounts_provider(state, app_settings)
    return AccountsService(db_pool, provider, app_settings, clock, tenant.user_id)


class AccountsController(Controller):
    path = "/accounts"
    tags = ["accounts"]  # noqa: RUF012
    dependencies = {"accounts": Provide(provide_accounts_service, sync_to_thread=False)}  # noqa: RUF012

    @get(
        "/",
        summary="The tenant's accounts with their live state",
        description="Each account the accounts provider lists for the caller, merged with the engine's "
        "state: active, in cooldown (until when, and why) or blocked (and why), actions used in the "
        "current 24 h window against the daily limit, and the pacing multiplier. Accounts the engine "
        "used that the provider no longer lists appear with available=false. Sessions are never "
        "returned; phone numbers only masked.",
    )
    async def list_accounts(self, accounts: NamedDependency[AccountsService]) -> AccountList:
        return await accounts.list_accounts()
