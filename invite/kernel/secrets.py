"""The one place that answers "which JWT secret?", "which Telegram API credentials?".

With Vault configured (VAULT_ADDR), Vault is the source: ``jwt`` → ``secret_key``,
``integration-service`` → ``telegram_api_id``/``telegram_api_hash``, ``invite-service/<name>``
for this service's own secrets. A value missing from Vault, or Vault not configured, falls
back to the environment (JWT_SECRET, TELEGRAM_API_ID, TELEGRAM_API_HASH); so does one that
Vault refuses us (a role allowed ``kv/jwt`` only), when the environment holds it. Values are kept
for ``ttl_seconds`` so a rotation reaches us; if Vault is down when one is due, the last
known value is kept and the failure logged, rather than stopping authentication.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog

from invite.kernel.http import UpstreamError
from invite.kernel.settings import Settings
from invite.kernel.vault import AccessDenied, SecretNotFound, VaultClient, vault_from_settings

JWT_PATH = "jwt"
TELEGRAM_PATH = "integration-service"
OWN_PREFIX = "invite-service/"
RETRY_SECONDS = 30.0  # while Vault is down, how long the last known value is kept before asking again

log = structlog.get_logger(__name__)


class SecretMissing(Exception):
    """Neither Vault nor the environment holds this secret; the message says where to put it."""


class TelegramCredentials(msgspec.Struct, frozen=True):
    api_id: int
    api_hash: str

    def __repr__(self) -> str:  # the hash is secret
        return f"TelegramCredentials(api_id={self.api_id}, api_hash=***)"


class Secrets:
    def __init__(
        self,
        settings: Settings,
        vault: VaultClient | None,
        *,
        ttl_seconds: float = 300.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._vault = vault
        self._ttl = ttl_seconds
        self._now = now
        self._kept: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = asyncio.Lock()

    async def jwt_secret(self) -> str:
        """The HS256 secret shared by the platform's services."""
        value = (await self._vault_data(JWT_PATH)).get("secret_key") or self._settings.jwt_secret
        if not value:
            raise SecretMissing(f"no JWT secret: set kv/{JWT_PATH} secret_key in Vault, or JWT_SECRET")
        return str(value)

    async def telegram_credentials(self) -> TelegramCredentials:
        try:
            data = await self._vault_data(TELEGRAM_PATH)
        except AccessDenied:
            if not (self._settings.telegram_api_id and self._settings.telegram_api_hash):
                raise SecretMissing(
                    f"Vault refuses kv/{TELEGRAM_PATH} (403): allow the role to read it, "
                    "or set TELEGRAM_API_ID and TELEGRAM_API_HASH"
                ) from None
            log.warning("vault refuses the Telegram credentials: TELEGRAM_API_ID/TELEGRAM_API_HASH used")
            data = {}
            self._kept[TELEGRAM_PATH] = (self._now() + self._ttl, data)  # not asked again until then
        api_id = data.get("telegram_api_id") or self._settings.telegram_api_id
        api_hash = data.get("telegram_api_hash") or self._settings.telegram_api_hash
        if not api_id or not api_hash:
            missing = [name for name, value in (("api_id", api_id), ("api_hash", api_hash)) if not value]
            in_vault = " and ".join(f"telegram_{name}" for name in missing)
            in_env = " and ".join(f"TELEGRAM_{name.upper()}" for name in missing)
            raise SecretMissing(
                f"no Telegram {' and '.join(missing)}: set {in_vault} in Vault (kv/{TELEGRAM_PATH}), or {in_env}"
            )
        try:
            return TelegramCredentials(int(api_id), str(api_hash))
        except ValueError:
            raise SecretMissing("telegram_api_id is not a number") from None

    async def own(self, name: str) -> dict[str, Any]:
        """This service's own secret ``invite-service/<name>`` (empty without Vault)."""
        return dict(await self._vault_data(OWN_PREFIX + name))

    async def aclose(self) -> None:
        if self._vault is not None:
            await self._vault.aclose()

    async def _vault_data(self, path: str) -> dict[str, Any]:
        if self._vault is None:
            return {}
        async with self._lock:
            kept = self._kept.get(path)
            if kept and self._now() < kept[0]:
                return kept[1]
            try:
                data = await self._vault.read(path)
            except SecretNotFound:
                data = {}
            except UpstreamError:
                if kept is None:
                    raise
                log.warning("vault unavailable, keeping the last known secret", path=path)
                # ask again soon, not on every request
                self._kept[path] = (self._now() + min(self._ttl, RETRY_SECONDS), kept[1])
                return kept[1]
            self._kept[path] = (self._now() + self._ttl, data)
            return data


def secrets_from_settings(settings: Settings) -> Secrets:
    """Secrets from Vault when VAULT_ADDR is set, else from the environment alone."""
    return Secrets(settings, vault_from_settings(settings), ttl_seconds=settings.secrets_ttl_seconds)
