"""Who may call: JWT negatives, the platform's three ways of naming a tenant, and open endpoints."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from invite.app import create_app
from invite.kernel.settings import Settings
from tests.fakeserver import FakeServer, Reply
from tests.integration.api import PREFIX, Client, invite_task, new_tenant
from tests.integration.gateway import api_gateway, user_service

TASKS = f"{PREFIX}/tasks"
KNOWN = {"alice@example.com": 424242}


def sign(
    settings: Settings, claims: dict[str, Any], *, key: str | None = None, algorithm: str = "HS256"
) -> str:
    assert settings.jwt_secret is not None
    return jwt.encode(claims, key or settings.jwt_secret, algorithm=algorithm)


def claims_for(sub: str | None = None, *, lifetime: int = 600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"iat": now, "exp": now + lifetime, **extra}
    if sub is not None:
        claims["sub"] = sub
    return claims


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.fixture
def gateway() -> Iterator[FakeServer]:
    with api_gateway(KNOWN) as server:
        yield server


@pytest.fixture
async def gateway_client(settings: Settings, gateway: FakeServer) -> AsyncIterator[Client]:
    configured = msgspec.structs.replace(settings, api_gateway_url=gateway.url, http_retries=1)
    async with AsyncTestClient(app=create_app(configured)) as client:
        yield client


@pytest.fixture
def users() -> Iterator[FakeServer]:
    with user_service(KNOWN) as server:
        yield server


@pytest.fixture
async def users_client(settings: Settings, gateway: FakeServer, users: FakeServer) -> AsyncIterator[Client]:
    configured = msgspec.structs.replace(
        settings, api_gateway_url=gateway.url, user_service_url=users.url, http_retries=1
    )
    async with AsyncTestClient(app=create_app(configured)) as client:
        yield client


async def tasks_seen_by(client: Client, token: str) -> set[str]:
    response = await client.get(TASKS, headers=bearer(token))
    assert response.status_code == 200, response.text
    return {task["id"] for task in response.json()["items"]}


async def assert_unauthorized(client: Client, headers: dict[str, str]) -> str:
    response = await client.get(TASKS, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    detail: str = response.json()["detail"]
    return detail


# --- negatives ----------------------------------------------------------------------------------


async def test_no_token(client: Client) -> None:
    await assert_unauthorized(client, {})


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer not.a.token", "Basic dXNlcjpwYXNz", "Bearer " + "a" * 500]
)
async def test_garbage_tokens(client: Client, header: str) -> None:
    await assert_unauthorized(client, {"Authorization": header})


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda s: sign(s, claims_for("1", lifetime=-60)), id="expired"),
        pytest.param(lambda s: sign(s, claims_for("1"), key="another-secret-" + "y" * 32), id="wrong-key"),
        pytest.param(lambda s: unsigned(claims_for("1")), id="alg-none"),
        pytest.param(lambda s: sign(s, claims_for("1"), algorithm="HS512"), id="other-algorithm"),
        pytest.param(lambda s: sign(s, {"sub": "1", "iat": int(time.time())}), id="no-exp"),
        pytest.param(lambda s: sign(s, claims_for(None)), id="no-sub-no-user_id"),
        pytest.param(
            lambda s: sign(s, claims_for("service:invite-service")), id="service-sub-without-user_id"
        ),
        pytest.param(lambda s: sign(s, claims_for("somebody")), id="sub-neither-id-nor-email"),
        pytest.param(lambda s: sign(s, claims_for(None, user_id="")), id="empty-user_id"),
        pytest.param(lambda s: sign(s, claims_for(None, user_id=True)), id="boolean-user_id"),
        pytest.param(lambda s: sign(s, claims_for(None, user_id=[1])), id="list-user_id"),
        pytest.param(lambda s: sign(s, claims_for("1", nbf=int(time.time()) + 600)), id="not-yet-valid"),
        pytest.param(lambda s: sign(s, {**claims_for("1"), "exp": "tomorrow"}), id="exp-not-a-number"),
    ],
)
async def test_refused_tokens(client: Client, settings: Settings, make: Any) -> None:
    await assert_unauthorized(client, bearer(make(settings)))


async def test_tokens_never_reach_the_logs(
    client: Client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    good = sign(settings, claims_for(new_tenant()))
    bad = sign(settings, claims_for("1"), key="another-secret-" + "y" * 32)
    with caplog.at_level(logging.DEBUG):
        await client.get(TASKS, headers=bearer(good))
        await client.get(TASKS, headers=bearer(bad))
    written = caplog.text
    assert "'status': '401'" in written  # the access lines were logged, with their fields
    assert good not in written
    assert bad not in written
    assert good.split(".")[2] not in written  # not even the signature


# --- who the tenant is ------------------------------------------------------------------------------


async def test_numeric_sub_and_user_id_claim_name_the_same_tenant(client: Client, settings: Settings) -> None:
    tenant = new_tenant()
    created = await client.post(TASKS, json=invite_task(), headers=bearer(sign(settings, claims_for(tenant))))
    assert created.status_code == 201
    service_token = sign(
        settings, {"service": "parsing-service", "user_id": int(tenant), "exp": int(time.time()) + 60}
    )
    assert await tasks_seen_by(client, service_token) == {created.json()["id"]}
    with_service_sub = sign(settings, claims_for("service:integration-service", user_id=tenant))
    assert await tasks_seen_by(client, with_service_sub) == {created.json()["id"]}


async def test_a_uuid_sub_is_an_opaque_tenant(client: Client, settings: Settings) -> None:
    tenant = str(uuid.uuid4())
    created = await client.post(TASKS, json=invite_task(), headers=bearer(sign(settings, claims_for(tenant))))
    assert created.status_code == 201
    assert await tasks_seen_by(client, sign(settings, claims_for(tenant.upper()))) == {created.json()["id"]}


async def test_email_sub_is_resolved_through_the_gateway_once(
    gateway_client: Client, gateway: FakeServer, settings: Settings
) -> None:
    by_email = sign(settings, claims_for("Alice@Example.com"))
    created = await gateway_client.post(TASKS, json=invite_task(), headers=bearer(by_email))
    assert created.status_code == 201, created.text
    assert await tasks_seen_by(gateway_client, by_email) == {created.json()["id"]}
    by_id = sign(settings, claims_for(str(KNOWN["alice@example.com"])))
    assert created.json()["id"] in await tasks_seen_by(gateway_client, by_id)
    lookups = gateway.requests_to("GET", "/internal/users/by-email")
    assert len(lookups) == 1, "the answer is cached"
    assert lookups[0].arg("email") == "alice@example.com"
    service_token = lookups[0].headers["authorization"].removeprefix("Bearer ")
    assert settings.jwt_secret is not None
    assert jwt.decode(service_token, settings.jwt_secret, algorithms=["HS256"])["service"] == "invite-service"


async def test_an_unknown_email_is_unauthorized_and_remembered_for_a_while(
    users_client: Client, gateway: FakeServer, users: FakeServer, settings: Settings
) -> None:
    token = bearer(sign(settings, claims_for("mallory@example.com")))
    for _ in range(3):
        assert await assert_unauthorized(users_client, token) == "unknown user"

    assert len(users.requests_to("GET", "/internal/users/by-email")) == 1  # then the negative cache
    assert gateway.requests == []  # the user service is asked, not the gateway that hides its 404


async def test_a_known_email_is_resolved_by_the_user_service(
    users_client: Client, users: FakeServer, settings: Settings
) -> None:
    by_email = sign(settings, claims_for("alice@example.com"))
    created = await users_client.post(TASKS, json=invite_task(), headers=bearer(by_email))
    assert created.status_code == 201, created.text
    by_id = sign(settings, claims_for(str(KNOWN["alice@example.com"])))
    assert created.json()["id"] in await tasks_seen_by(users_client, by_id)


async def test_a_user_service_that_is_down_is_a_503_not_a_401(
    users_client: Client, users: FakeServer, settings: Settings
) -> None:
    users.route("GET", "/internal/users/by-email", Reply(500, json={"detail": "Database connection error"}))
    response = await users_client.get(
        TASKS, headers=bearer(sign(settings, claims_for("mallory@example.com")))
    )
    assert response.status_code == 503
    assert response.json()["detail"] == "user-service is not answering"


async def test_through_the_gateway_alone_an_unknown_email_cannot_be_told_from_an_outage(
    gateway_client: Client, gateway: FakeServer, settings: Settings
) -> None:
    # the platform's gateway answers 500 for an unknown email: set USER_SERVICE_URL to get a 401
    response = await gateway_client.get(
        TASKS, headers=bearer(sign(settings, claims_for("mallory@example.com")))
    )
    assert response.status_code == 503
    assert response.json()["detail"] == "api-gateway is not answering"


async def test_a_failing_gateway_is_a_503(
    gateway_client: Client, gateway: FakeServer, settings: Settings
) -> None:
    gateway.route("GET", "/internal/users/by-email", Reply(502))
    response = await gateway_client.get(TASKS, headers=bearer(sign(settings, claims_for("bob@example.com"))))
    assert response.status_code == 503
    assert response.json()["detail"] == "api-gateway is not answering"
    assert len(gateway.requests_to("GET", "/internal/users/by-email")) == 2  # one retry


async def test_email_subs_need_a_gateway(client: Client, settings: Settings) -> None:
    await assert_unauthorized(client, bearer(sign(settings, claims_for("alice@example.com"))))


# --- open endpoints --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [f"{PREFIX}/health", "/health", f"{PREFIX}/health/ready", "/metrics", "/docs/openapi.json"]
)
async def test_open_endpoints_need_no_token(client: Client, path: str) -> None:
    assert (await client.get(path)).status_code == 200
