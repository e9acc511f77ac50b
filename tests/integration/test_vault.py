"""Vault through hvac against a local server implementing the documented Vault HTTP API.

The fake speaks what hvac sends: ``POST /v1/auth/approle/login`` → ``{"auth": {...}}``,
``GET /v1/kv/data/<path>`` with ``X-Vault-Token`` → ``{"data": {"data", "metadata"}}``,
403 ``{"errors": ["permission denied"]}`` for an unknown or revoked token or a path the
token's policy does not allow (``allowed``: a role allowed ``kv/jwt`` only, say), 404 for no
secret.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from invite.kernel.http import UpstreamError
from invite.kernel.secrets import SecretMissing, Secrets, TelegramCredentials
from invite.kernel.settings import Settings, SettingsError
from invite.kernel.vault import SecretNotFound, VaultClient
from invite.wiring import telegram_credentials
from tests.fakeserver import FakeServer, Reply, Request

ROLE_ID = "role-1234"
SECRET_ID = "secret-id-5678"
JWT_SECRET = "jwt-secret-from-vault-" + "v" * 20
API_HASH = "0123456789abcdef0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def vault_reply(**body: Any) -> Reply:
    """Vault's response envelope around ``body`` (its ``auth`` or ``data``)."""
    return Reply(
        json={
            "request_id": "r",
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": None,
            **body,
        }
    )


class FakeVault:
    """Vault's AppRole login and KV v2 read endpoints, with tokens that can be revoked."""

    def __init__(self, server: FakeServer, lease_duration: int = 3600) -> None:
        self.lease_duration = lease_duration
        self.kv: dict[str, dict[str, Any]] = {
            "jwt": {"secret_key": JWT_SECRET},
            "integration-service": {"telegram_api_id": "123456", "telegram_api_hash": API_HASH},
            "invite-service/webhook": {"signing_key": "wh-key"},
        }
        self.tokens: set[str] = set()
        self.allowed: set[str] | None = None  # the paths every token's policy allows (None: all)
        self.logins = 0
        self._serial = itertools.count(1)
        server.route("POST", "/v1/auth/approle/login", self.login)
        server.route("GET", "/v1/kv/data/{path:path}", self.read)

    def revoke_all(self) -> None:
        self.tokens.clear()

    def login(self, request: Request) -> Reply:
        body = request.json()
        if (body.get("role_id"), body.get("secret_id")) != (ROLE_ID, SECRET_ID):
            return Reply(400, json={"errors": ["invalid role or secret ID"]})
        self.logins += 1
        token = f"hvs.token-{next(self._serial)}"
        self.tokens.add(token)
        return vault_reply(
            auth={
                "client_token": token,
                "accessor": "acc",
                "policies": ["default", "invite-service"],
                "token_policies": ["default", "invite-service"],
                "metadata": {"role_name": "invite-service"},
                "lease_duration": self.lease_duration,
                "renewable": True,
            }
        )

    def read(self, request: Request) -> Reply:
        if request.headers.get("x-vault-token") not in self.tokens:
            return Reply(403, json={"errors": ["permission denied"]})
        if self.allowed is not None and request.params["path"] not in self.allowed:
            return Reply(403, json={"errors": ["1 error occurred:\n\t* permission denied\n\n"]})
        data = self.kv.get(request.params["path"])
        if data is None:
            return Reply(404, json={"errors": []})
        return vault_reply(
            data={
                "data": data,
                "metadata": {
                    "created_time": "2026-01-05T09:00:00Z",
                    "deletion_time": "",
                    "destroyed": False,
                    "version": 1,
                },
            }
        )


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def vault(server: FakeServer) -> FakeVault:
    return FakeVault(server)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(server: FakeServer, vault: FakeVault, clock: Clock) -> AsyncIterator[VaultClient]:
    client = VaultClient(
        server.url, role_id=ROLE_ID, secret_id=SECRET_ID, timeout_seconds=1, backoff_seconds=0.01, now=clock
    )
    yield client
    await client.aclose()


async def test_approle_login_then_kv_v2_read(
    server: FakeServer, vault: FakeVault, client: VaultClient
) -> None:
    assert await client.read("jwt") == {"secret_key": JWT_SECRET}
    assert await client.read("invite-service/webhook") == {"signing_key": "wh-key"}

    assert vault.logins == 1
    login = server.requests_to("POST", "/v1/auth/approle/login")[0]
    assert login.json() == {"role_id": ROLE_ID, "secret_id": SECRET_ID}
    reads = server.requests_to("GET", "/v1/kv/data/")
    assert [r.path for r in reads] == ["/v1/kv/data/jwt", "/v1/kv/data/invite-service/webhook"]
    assert all(r.headers["x-vault-token"] == "hvs.token-1" for r in reads)


async def test_a_403_logs_in_again_and_the_read_succeeds(vault: FakeVault, client: VaultClient) -> None:
    await client.read("jwt")
    vault.revoke_all()  # the token was revoked or expired early

    assert await client.read("jwt") == {"secret_key": JWT_SECRET}
    assert vault.logins == 2


async def test_logs_in_again_before_the_lease_runs_out(
    server: FakeServer, vault: FakeVault, client: VaultClient, clock: Clock
) -> None:
    vault.lease_duration = 100
    await client.read("jwt")
    clock.t += 50
    await client.read("jwt")
    assert vault.logins == 1  # half the lease left: the token is kept

    clock.t += 30  # 80 % of the lease gone
    await client.read("jwt")

    assert vault.logins == 2
    assert [r.path for r in server.requests] == [
        "/v1/auth/approle/login",
        "/v1/kv/data/jwt",
        "/v1/kv/data/jwt",
        "/v1/auth/approle/login",
        "/v1/kv/data/jwt",
    ]
    assert server.requests[-1].headers["x-vault-token"] == "hvs.token-2"


async def test_a_missing_path_is_secret_not_found(client: VaultClient) -> None:
    with pytest.raises(SecretNotFound):
        await client.read("nothing-here")


async def test_refused_approle_login_is_a_clear_upstream_error(server: FakeServer, vault: FakeVault) -> None:
    client = VaultClient(server.url, role_id=ROLE_ID, secret_id="wrong", backoff_seconds=0.01)
    try:
        with pytest.raises(UpstreamError) as caught:
            await client.read("jwt")
    finally:
        await client.aclose()
    assert caught.value.service == "vault"
    assert "wrong" not in str(caught.value)
    assert vault.logins == 0


async def test_a_static_token_is_used_as_is_and_a_403_is_not_retried(
    server: FakeServer, vault: FakeVault
) -> None:
    vault.tokens.add("hvs.static")
    client = VaultClient(server.url, token="hvs.static", backoff_seconds=0.01)
    try:
        assert await client.read("jwt") == {"secret_key": JWT_SECRET}
        vault.revoke_all()
        with pytest.raises(UpstreamError) as caught:
            await client.read("jwt")
    finally:
        await client.aclose()
    assert "access denied" in caught.value.detail
    assert vault.logins == 0
    assert len(server.requests) == 2


async def test_vault_down_is_retried_then_an_upstream_error(server: FakeServer) -> None:
    server.route("POST", "/v1/auth/approle/login", Reply(503, json={"errors": ["Vault is sealed"]}))
    client = VaultClient(server.url, role_id=ROLE_ID, secret_id=SECRET_ID, retries=2, backoff_seconds=0.01)
    try:
        with pytest.raises(UpstreamError) as caught:
            await client.read("jwt")
    finally:
        await client.aclose()
    assert "unreachable" in caught.value.detail
    assert len(server.requests) == 3


async def test_no_secret_reaches_the_logs(
    server: FakeServer,
    vault: FakeVault,
    client: VaultClient,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.read("jwt")
    vault.revoke_all()
    await client.read("integration-service")

    logged = caplog.text + "".join(capsys.readouterr())
    for secret in (JWT_SECRET, API_HASH, SECRET_ID, "hvs.token-1", "hvs.token-2"):
        assert secret not in logged


# --- Secrets: Vault first, the environment as fallback ------------------------------------


async def test_secrets_from_vault(server: FakeServer, vault: FakeVault, client: VaultClient) -> None:
    secrets = Secrets(Settings(jwt_secret="env-secret"), client)

    assert await secrets.jwt_secret() == JWT_SECRET
    credentials = await secrets.telegram_credentials()
    assert (credentials.api_id, credentials.api_hash) == (123456, API_HASH)
    assert API_HASH not in repr(credentials)
    assert await secrets.own("webhook") == {"signing_key": "wh-key"}

    await secrets.jwt_secret()
    assert len(server.requests_to("GET", "/v1/kv/data/jwt")) == 1  # kept, not read again


async def test_secrets_fall_back_to_the_environment_without_vault() -> None:
    secrets = Secrets(Settings(jwt_secret="env-secret", telegram_api_id=7, telegram_api_hash="h" * 32), None)

    assert await secrets.jwt_secret() == "env-secret"
    assert await secrets.telegram_credentials() == TelegramCredentials(7, "h" * 32)
    assert await secrets.own("webhook") == {}


async def test_a_secret_missing_everywhere_says_where_to_put_it(
    vault: FakeVault, client: VaultClient
) -> None:
    del vault.kv["integration-service"]
    secrets = Secrets(Settings(), client)

    with pytest.raises(SecretMissing, match="TELEGRAM_API_ID"):
        await secrets.telegram_credentials()


async def test_secrets_keep_the_last_value_while_vault_is_down(
    server: FakeServer, vault: FakeVault, client: VaultClient, clock: Clock
) -> None:
    secrets = Secrets(Settings(), client, ttl_seconds=60, now=clock)
    assert await secrets.jwt_secret() == JWT_SECRET

    server.route("GET", "/v1/kv/data/{path:path}", Reply(503, json={"errors": ["sealed"]}))
    clock.t += 61

    assert await secrets.jwt_secret() == JWT_SECRET


async def test_a_refused_approle_login_falls_back_to_vault_token(
    server: FakeServer, vault: FakeVault
) -> None:
    vault.tokens.add("hvs.platform-root")
    client = VaultClient(
        server.url,
        role_id=ROLE_ID,
        secret_id="not-configured",
        token="hvs.platform-root",
        backoff_seconds=0.01,
    )
    try:
        assert (await client.read("jwt"))["secret_key"] == JWT_SECRET
        assert (await client.read("integration-service"))["telegram_api_id"] == "123456"
    finally:
        await client.aclose()
    assert vault.logins == 0
    logins = [r for r in server.requests if r.path == "/v1/auth/approle/login"]
    assert len(logins) == 1  # refused once, not asked again


async def test_a_role_allowed_the_jwt_only_takes_telegrams_credentials_from_the_environment(
    vault: FakeVault, client: VaultClient
) -> None:
    vault.allowed = {"jwt"}
    secrets = Secrets(Settings(telegram_api_id=7, telegram_api_hash="h" * 32), client)

    assert await secrets.jwt_secret() == JWT_SECRET
    assert await secrets.telegram_credentials() == TelegramCredentials(7, "h" * 32)
    assert await secrets.telegram_credentials() == TelegramCredentials(7, "h" * 32)


async def test_a_role_refused_the_telegram_credentials_without_them_in_the_environment_says_so(
    server: FakeServer, vault: FakeVault
) -> None:
    vault.allowed = {"jwt"}
    settings = Settings(
        telegram_driver="telegram", vault_addr=server.url, vault_role_id=ROLE_ID, vault_secret_id=SECRET_ID
    )

    with pytest.raises(SettingsError) as caught:
        await telegram_credentials(settings)

    assert "\n" not in str(caught.value)
    assert "kv/integration-service" in str(caught.value)
    assert "TELEGRAM_API_ID and TELEGRAM_API_HASH" in str(caught.value)
