"""HTTP endpoint of accounts: ``GET /accounts``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide

from invite.accounts.schemas import AccountList
from invite.accounts.service import AccountsService
from invite.kernel.auth import Tenant


def provide_accounts_service(request: Request[Tenant, Any, Any]) -> AccountsService:
    state = request.app.state  # one dependency, not four: see invite.app
    return AccountsService(
        state.pool, state.accounts_provider, state.settings, state.clock, request.user.user_id
    )


class AccountsController(Controller):
    path = "/accounts"
    tags = ["accounts"]  # noqa: RUF012
    dependencies = {"accounts": Provide(provide_accounts_service, sync_to_thread=False)}  # noqa: RUF012

    @get(
        "/",
        summary="The tenant's accounts with their live state",
        description="Each account the accounts provider lists for the caller, merged with the engine's "
        "state: active, in cooldown (until when, and why) or blocked (and why), actions used in the "
        "current 24 h window against the daily limit (warm-up included), the pacing multiplier, and its "
        "health: healthy, pacing, cooling_down (FloodWait, until cooldown_until), spam_flagged (PeerFlood, "
        "until cooldown_until), frozen, dead, or warming_up (day warmup_day of warmup_days). Accounts the engine "
        "used that the provider no longer lists appear with available=false. Sessions are never "
        "returned; phone numbers only masked.",
    )
    async def list_accounts(self, accounts: NamedDependency[AccountsService]) -> AccountList:
        return await accounts.list_accounts()
