"""Forged, stale and malformed tokens are refused on every protected route of the route table.

Each attack is tried against every route that needs a token (the app's route table minus the
open ones), and every answer must be the same 401 problem: no route forgets its auth, no
malformed token reaches a handler (or a 500). The email ``sub`` cases go through a local API
gateway answering ``GET /internal/users/by-email`` (PLATFORM-CONTRACTS.md).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import jwt
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from invite.app import create_app
from invite.kernel.settings import Settings
from tests.fakeserver import FakeServer, Reply
from tests.integration.api import PREFIX, Client, new_tenant
from tests.integration.gateway import user_service
from tests.security.test_tenant_isolation import ROUTE_SETTINGS, TENANT_FREE, api_routes

OTHER_SECRET = "another-secret-" + "y" * 32
GATEWAY_USERS: dict[str, Any] = {
    "known@example.com": 4242,
    "blank-id@example.com": "  ",
    "bool-id@example.com": True,
    "list-id@example.com": [1],
    "broken@example.com": Reply(200, body=b"<html>not json</html>"),
}


def protected_routes() -> list[tuple[str, str]]:
    """Every API route but the open ones, path parameters filled with a well-formed value."""
    routes = sorted(api_routes(ROUTE_SETTINGS) - TENANT_FREE.keys())
    return [(method, re.sub(r"\{\w+\}", str(uuid.uuid4()), path)) for method, path in routes]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forged(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token put together by hand: any header, any claims, any signature."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def claims(sub: Any = "1", *, lifetime: int = 600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + lifetime, **extra}
    return {k: v for k, v in body.items() if v is not None}


def tampered(secret: str) -> str:
    """A genuine token for tenant 1 whose payload now says tenant 2, signature kept."""
    header, _, signature = jwt.encode(claims("1"), secret, algorithm="HS256").split(".")
    return f"{header}.{b64(json.dumps(claims('2')).encode())}.{signature}"


def stripped(secret: str) -> str:
    header, payload, _ = jwt.encode(claims("1"), secret, algorithm="HS256").split(".")
    return f"{header}.{payload}."


Attack = Callable[[str], str]  # the service's secret -> the Authorization header's value

ATTACKS: dict[str, Attack] = {
    "alg-none": lambda s: "Bearer " + forged({"alg": "none", "typ": "JWT"}, claims()),
    "alg-None": lambda s: "Bearer " + forged({"alg": "None", "typ": "JWT"}, claims()),
    "alg-NONE-with-signature": lambda s: "Bearer " + forged({"alg": "NONE"}, claims(), b"sig"),
    "rs256-header": lambda s: "Bearer " + forged({"alg": "RS256", "typ": "JWT"}, claims(), b"\x00" * 256),
    "hs256-other-secret": lambda s: "Bearer " + jwt.encode(claims(), OTHER_SECRET, algorithm="HS256"),
    "hs256-empty-secret": lambda s: "Bearer " + forged({"alg": "HS256"}, claims(), b""),
    "hs384-right-secret": lambda s: "Bearer " + jwt.encode(claims(), s, algorithm="HS384"),
    "hs512-right-secret": lambda s: "Bearer " + jwt.encode(claims(), s, algorithm="HS512"),
    "payload-tampered": lambda s: "Bearer " + tampered(s),
    "signature-stripped": lambda s: "Bearer " + stripped(s),
    "expired": lambda s: "Bearer " + jwt.encode(claims(lifetime=-5), s, algorithm="HS256"),
    "not-yet-valid": lambda s: (
        "Bearer " + jwt.encode(claims(nbf=int(time.time()) + 3600), s, algorithm="HS256")
    ),
    "issued-in-the-future": lambda s: (
        "Bearer " + jwt.encode(claims(iat=int(time.time()) + 3600), s, algorithm="HS256")
    ),
    "no-exp": lambda s: "Bearer " + jwt.encode({"sub": "1", "iat": int(time.time())}, s, algorithm="HS256"),
    "no-sub-no-user_id": lambda s: "Bearer " + jwt.encode(claims(None), s, algorithm="HS256"),
    "empty-sub": lambda s: "Bearer " + jwt.encode(claims(""), s, algorithm="HS256"),
    "numeric-sub-not-a-string": lambda s: "Bearer " + forged_hs256(s, claims(1)),
    "null-user_id": lambda s: "Bearer " + jwt.encode(claims(None, user_id=None), s, algorithm="HS256"),
    "object-user_id": lambda s: "Bearer " + jwt.encode(claims(None, user_id={"id": 1}), s, algorithm="HS256"),
    "sub-neither-id-nor-email": lambda s: "Bearer " + jwt.encode(claims("root"), s, algorithm="HS256"),
    "email-sub-without-gateway": lambda s: "Bearer " + jwt.encode(claims("known@example.com"), s),
    "garbage-segments": lambda s: "Bearer a.b.c",
    "not-base64": lambda s: "Bearer !!!.???.***",
    "header-not-an-object": lambda s: "Bearer " + f"{b64(b'[1]')}.{b64(b'{}')}.",
    "nul-bytes": lambda s: "Bearer " + b64(b"\x00\x00") + ".\x00.x",
    "huge": lambda s: "Bearer " + "A" * 60_000,
    "unicode": lambda s: "Bearer " + "токен.ключ.подпись",
    "no-scheme": lambda s: jwt.encode(claims(), s, algorithm="HS256"),
    "basic-scheme": lambda s: "Basic " + base64.b64encode(b"admin:admin").decode(),
    "empty": lambda s: "",
}


def forged_hs256(secret: str, body: dict[str, Any]) -> str:
    """HS256 over claims PyJWT itself would refuse to sign as given (a non-string ``sub``)."""
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(body).encode())}"
    )
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def assert_refused(client: Client, authorization: str | None, routes: list[tuple[str, str]]) -> None:
    headers = {} if authorization is None else {b"Authorization": authorization.encode()}
    for method, path in routes:
        response = await client.request(method, f"{PREFIX}{path}", headers=headers)
        assert response.status_code == 401, f"{method} {path}: {response.status_code} {response.text[:200]}"
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_the_attack_is_refused(client: Client, app_settings: Settings, attack: str) -> None:
    assert app_settings.jwt_secret is not None
    await assert_refused(client, ATTACKS[attack](app_settings.jwt_secret), [("GET", "/tasks")])


# One middleware reads every token; what differs between routes is only whether they ask for one.
@pytest.mark.parametrize("attack", [None, "alg-none", "hs256-other-secret", "expired", "payload-tampered"])
async def test_every_protected_route_refuses(
    client: Client, app_settings: Settings, attack: str | None
) -> None:
    assert app_settings.jwt_secret is not None
    authorization = None if attack is None else ATTACKS[attack](app_settings.jwt_secret)
    await assert_refused(client, authorization, protected_routes())


async def test_a_token_elsewhere_than_the_header_is_not_read(client: Client, app_settings: Settings) -> None:
    assert app_settings.jwt_secret is not None
    token = jwt.encode(claims(new_tenant()), app_settings.jwt_secret, algorithm="HS256")
    assert (await client.get(f"{PREFIX}/tasks?token={token}&access_token={token}")).status_code == 401
    client.cookies.set("token", token)
    assert (await client.get(f"{PREFIX}/tasks")).status_code == 401


async def test_the_control_token_is_accepted(client: Client, app_settings: Settings) -> None:
    """The attacks above differ from this token only where they say: it passes."""
    assert app_settings.jwt_secret is not None
    token = jwt.encode(claims(new_tenant()), app_settings.jwt_secret, algorithm="HS256")
    assert (
        await client.get(f"{PREFIX}/tasks", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200


async def test_a_token_accepted_before_is_refused_once_expired(
    client: Client, app_settings: Settings
) -> None:
    """Verified tokens are kept for speed, but never past their ``exp``."""
    assert app_settings.jwt_secret is not None
    await asyncio.sleep(1 - time.time() % 1)  # at the start of a second: the token lives one whole second
    exp = int(time.time()) + 1
    token = jwt.encode({"sub": new_tenant(), "exp": exp}, app_settings.jwt_secret, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get(f"{PREFIX}/tasks", headers=headers)).status_code == 200
    await asyncio.sleep(exp - time.time() + 0.05)
    assert (await client.get(f"{PREFIX}/tasks", headers=headers)).status_code == 401


# --- email subjects through the API gateway -----------------------------------------------------


@pytest.fixture
def gateway() -> Iterator[FakeServer]:
    # the user service itself: the platform's gateway answers 500 for an unknown email
    with user_service(GATEWAY_USERS) as server:
        yield server


@pytest.fixture
async def gateway_client(app_settings: Settings, gateway: FakeServer) -> AsyncIterator[Client]:
    configured = msgspec.structs.replace(app_settings, user_service_url=gateway.url)
    async with AsyncTestClient(app=create_app(configured)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "email",
    [
        "stranger@example.com",  # unknown to the platform: 404 at the user service
        "broken@example.com",  # the gateway answers something unreadable
        "blank-id@example.com",
        "bool-id@example.com",
        "list-id@example.com",
        "x';DROP/**/TABLE/**/invite_tasks;--@example.com",
    ],
)
async def test_an_email_the_gateway_cannot_vouch_for_is_refused(
    gateway_client: Client, app_settings: Settings, email: str
) -> None:
    assert app_settings.jwt_secret is not None
    token = jwt.encode(claims(email), app_settings.jwt_secret, algorithm="HS256")
    await assert_refused(gateway_client, f"Bearer {token}", [("GET", "/tasks"), ("POST", "/tasks")])


async def test_a_known_email_is_the_gateways_user_id(
    gateway_client: Client, gateway: FakeServer, app_settings: Settings
) -> None:
    assert app_settings.jwt_secret is not None
    by_email = jwt.encode(claims("known@example.com"), app_settings.jwt_secret, algorithm="HS256")
    by_id = jwt.encode(claims("4242"), app_settings.jwt_secret, algorithm="HS256")
    created = await gateway_client.post(
        f"{PREFIX}/tasks",
        json={
            "platform": "telegram",
            "task_type": "invite_to_group",
            "title": "t",
            "target_group_id": "@my_group",
        },
        headers={"Authorization": f"Bearer {by_email}"},
    )
    assert created.status_code == 201, created.text
    seen = await gateway_client.get(
        f"{PREFIX}/tasks/{created.json()['id']}", headers={"Authorization": f"Bearer {by_id}"}
    )
    assert seen.status_code == 200
    assert gateway.requests_to("GET", "/internal/users/by-email")[0].arg("email") == "known@example.com"
