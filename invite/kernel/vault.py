"""Reads secrets from the platform's Vault (KV v2) through hvac, logged in by AppRole.

Log-in is AppRole (``VAULT_ROLE_ID``/``VAULT_SECRET_ID``) or, without those, a fixed
``VAULT_TOKEN``. An AppRole token is replaced before its lease runs out (after
``RELOGIN_AT`` of ``lease_duration``) and at once when Vault answers 403 (revoked or
expired early). When Vault refuses the AppRole login and ``VAULT_TOKEN`` is set too, the
token is used from then on, as the platform's own clients do (its compose passes both). hvac is synchronous: every call runs in a worker thread, one at a time.
No secret value, token or secret id is ever logged or put into an exception.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import hvac
import hvac.exceptions
import requests
import structlog

from invite.kernel.http import UpstreamError
from invite.kernel.settings import Settings
from invite.observability.metrics import integration_errors

SERVICE = "vault"
RELOGIN_AT = 0.75  # share of the token's lease after which we log in again

log = structlog.get_logger(__name__)

# Worth another try: Vault or the network is having a moment.
_TRANSIENT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    hvac.exceptions.VaultDown,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
)


class AccessDenied(UpstreamError):
    """Vault refuses us this path (the policy does not allow it, or the token is not valid)."""


class SecretNotFound(Exception):
    """No secret at this KV path."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no secret at {path}")
        self.path = path


class VaultClient:
    def __init__(
        self,
        addr: str,
        *,
        role_id: str | None = None,
        secret_id: str | None = None,
        token: str | None = None,
        mount: str = "kv",
        timeout_seconds: float = 5.0,
        retries: int = 2,
        backoff_seconds: float = 0.2,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (role_id and secret_id) and not token:
            raise ValueError("Vault needs VAULT_ROLE_ID and VAULT_SECRET_ID, or VAULT_TOKEN")
        self._approle = (role_id, secret_id) if role_id and secret_id else None
        self._fallback_token = token if self._approle else None  # when the AppRole login is refused
        self._client = hvac.Client(url=addr, token=None if self._approle else token, timeout=timeout_seconds)
        self._mount = mount
        self._retries = retries
        self._backoff = backoff_seconds
        self._now = now
        self._relogin_at: float | None = None  # None: no token yet (AppRole) or one that never expires
        self._logged_in = self._approle is None
        self._lock = asyncio.Lock()

    async def read(self, path: str) -> dict[str, Any]:
        """The key/value pairs stored at ``path`` (``data.data`` of KV v2).

        Raises SecretNotFound for a missing path, UpstreamError("vault", ...) when Vault
        is unreachable or refuses us.
        """
        async with self._lock:
            last = "no attempt made"
            denied = False
            for attempt in range(self._retries + 1):
                if attempt:
                    await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
                try:
                    return await asyncio.to_thread(self._read, path)
                except _TRANSIENT as exc:
                    last = f"unreachable ({type(exc).__name__})"
                except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
                    last, denied = f"access denied ({type(exc).__name__})", True
                    break
                except hvac.exceptions.VaultError as exc:
                    last = f"answered {type(exc).__name__}"
                    break
                except ValueError:  # a body that is not JSON
                    last = "answered something that is not JSON"
                    break
        integration_errors.labels(service=SERVICE).inc()
        log.warning("vault call failed", path=path, reason=last)
        raise (AccessDenied if denied else UpstreamError)(SERVICE, last)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.adapter.close)

    # --- in the worker thread ---------------------------------------------------------

    def _read(self, path: str) -> dict[str, Any]:
        if self._approle and (not self._logged_in or self._token_ageing()):
            self._login()
        try:
            response = self._read_kv(path)
        except hvac.exceptions.Forbidden:
            if not self._approle:
                raise
            log.info("vault refused our token, logging in again")
            self._login()
            response = self._read_kv(path)
        data = response.get("data", {}).get("data") if isinstance(response, dict) else None
        if not isinstance(data, dict):
            raise hvac.exceptions.UnexpectedError("KV v2 answer without data.data")
        return data

    def _read_kv(self, path: str) -> Any:
        try:
            return self._client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=self._mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            raise SecretNotFound(path) from None

    def _login(self) -> None:
        assert self._approle is not None
        role_id, secret_id = self._approle
        try:
            response = self._client.auth.approle.login(role_id=role_id, secret_id=secret_id)
            auth = response["auth"]  # hvac has already taken auth.client_token from it
        except (KeyError, TypeError):
            raise hvac.exceptions.UnexpectedError("AppRole login answered without a token") from None
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            if self._fallback_token is None:
                raise
            log.warning("vault refused the AppRole login: using VAULT_TOKEN")
            self._approle, self._relogin_at, self._logged_in = None, None, True
            self._client.token = self._fallback_token
            return
        lease = float(auth.get("lease_duration") or 0)
        self._relogin_at = self._now() + lease * RELOGIN_AT if lease > 0 else None
        self._logged_in = True
        log.info("vault login", method="approle", lease_seconds=lease, renewable=bool(auth.get("renewable")))

    def _token_ageing(self) -> bool:
        return self._relogin_at is not None and self._now() >= self._relogin_at


def vault_from_settings(settings: Settings) -> VaultClient | None:
    """The Vault client, or None when VAULT_ADDR is unset (secrets then come from the environment)."""
    if not settings.vault_addr:
        return None
    return VaultClient(
        settings.vault_addr,
        role_id=settings.vault_role_id,
        secret_id=settings.vault_secret_id,
        token=settings.vault_token,
        mount=settings.vault_mount,
        timeout_seconds=settings.http_timeout_seconds,
        retries=settings.http_retries,
    )
