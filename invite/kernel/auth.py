"""Who is calling: Litestar's JWT auth (HS256) and the tenant behind the token.

Tenant resolution follows PLATFORM-CONTRACTS.md: a numeric (or UUID) ``sub`` is the tenant
id; otherwise a ``user_id`` claim (service tokens) is; otherwise an email ``sub`` is looked
up (``GET /internal/users/by-email``) and cached. Anything else is 401.

The look-up asks the user service itself when USER_SERVICE_URL is set, else the API gateway.
The gateway answers 500 for an email it does not know (it swallows the user service's 404,
PLATFORM-AS-RUN.md), which cannot be told from an outage: 503. The user service answers 404:
401, and that "no such user" is remembered for IDENTITY_NEGATIVE_TTL_SECONDS, so a deleted
user's polling client costs one look-up, not one per request.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import msgspec
import structlog
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

from invite.kernel.http import integration_token, request
from invite.kernel.secrets import SecretMissing, secrets_from_settings
from invite.kernel.settings import Settings, SettingsError

DEV_SECRET_FILE = "dev-jwt-secret"
_NUMERIC = re.compile(r"^[0-9]{1,32}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_KEPT_UNKNOWN = 10_000  # "no such user" answers remembered at most

log = structlog.get_logger(__name__)


class Tenant(msgspec.Struct, frozen=True):
    """The customer a request acts for; every query is scoped by ``user_id`` (opaque)."""

    user_id: str


def dev_mode(settings: Settings) -> bool:
    return settings.jwt_secret is None and settings.vault_addr is None


def dev_secret(settings: Settings) -> str:
    """Development mode's secret: generated once, kept in DATA_DIR so tokens survive restarts."""
    path = Path(settings.data_dir) / DEV_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


class JwtSecret:
    """The one place the HS256 secret is looked up, per request (so a rotation in Vault lands).

    Vault (``kv/jwt`` ``secret_key``) when VAULT_ADDR is set, else JWT_SECRET, both through
    ``invite.kernel.secrets``; with neither, the development secret.
    """

    def __init__(self, settings: Settings) -> None:
        self._dev = dev_secret(settings) if dev_mode(settings) else None
        self._secrets = None if self._dev is not None else secrets_from_settings(settings)

    async def __call__(self) -> str:
        if self._secrets is None:
            assert self._dev is not None
            return self._dev
        try:
            return await self._secrets.jwt_secret()
        except SecretMissing as exc:
            raise SettingsError(f"JWT_SECRET: {exc}") from None

    async def aclose(self) -> None:
        if self._secrets is not None:
            await self._secrets.aclose()


def issue_token(secret: str, user_id: str, lifetime: timedelta, now: datetime | None = None) -> str:
    """A tenant's access token, shaped as the platform's user service issues them."""
    issued = now or datetime.now(UTC)
    claims = {"sub": user_id, "iat": int(issued.timestamp()), "exp": int((issued + lifetime).timestamp())}
    return jwt.encode(claims, secret, algorithm="HS256")


class PlatformJWTMiddleware(JWTAuthenticationMiddleware):
    """Litestar's JWT middleware, verifying with the secret current at the request (JwtSecret)."""

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        state = connection.app.state
        secret = await state.jwt_secret()
        verified: VerifiedTokens = state.verified_tokens
        token = verified.get(secret, encoded_token)
        if token is None:
            token = self.token_cls.decode(
                encoded_token=encoded_token,
                secret=secret,
                algorithm=self.algorithm,
                verify_exp=True,
                verify_nbf=True,
            )
            verified.put(secret, encoded_token, token)
        return AuthenticationResult(user=await self.retrieve_user_handler(token, connection), auth=token)


class VerifiedTokens:
    """Tokens verified lately, kept until they expire: a client that polls (a status page) is not
    decoded and its signature checked again on every request. Keyed by the secret as well, so a
    rotated secret verifies every token anew; the oldest entry goes when ``size`` are kept."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._tokens: dict[tuple[str, str], Token] = {}

    def get(self, secret: str, encoded_token: str) -> Token | None:
        key = (secret, encoded_token)
        token = self._tokens.get(key)
        if token is not None and token.exp <= datetime.now(UTC):
            del self._tokens[key]
            return None
        return token

    def put(self, secret: str, encoded_token: str, token: Token) -> None:
        if len(self._tokens) >= self._size:
            del self._tokens[next(iter(self._tokens))]
        self._tokens[(secret, encoded_token)] = token


@dataclass
class PlatformToken(Token):
    """Litestar's Token, accepting the platform's service tokens (``user_id``, no ``sub``/``iat``)."""

    @classmethod
    def decode_payload(
        cls,
        encoded_token: str,
        secret: str,
        algorithms: list[str],
        issuer: Any = None,
        audience: Any = None,
        options: Any = None,
    ) -> Any:
        payload = super().decode_payload(encoded_token, secret, algorithms, issuer, audience, options)
        if "sub" not in payload and "user_id" in payload:
            payload["sub"] = f"user_id:{payload['user_id']}"
        payload.setdefault("iat", int(time.time()))
        return payload


class _GatewayUser(msgspec.Struct):
    id: int | str


class IdentityResolver:
    """Turns a verified token into a Tenant; email look-ups are cached for a while."""

    def __init__(self, settings: Settings, secret: JwtSecret, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._secret = secret
        self._http = http
        self._by_email: dict[str, tuple[float, str]] = {}
        self._unknown: dict[str, float] = {}  # email → until when "no such user" is believed

    async def tenant(self, token: Token) -> Tenant:
        sub = token.sub
        if _NUMERIC.match(sub):
            return Tenant(sub)
        if _is_uuid(sub):
            return Tenant(sub.lower())
        claimed = token.extras.get("user_id")
        if claimed is not None:
            return Tenant(_tenant_claim(claimed))
        if _EMAIL.match(sub):
            return Tenant(await self._user_id_for(sub.lower()))
        raise NotAuthorizedException("the token names no user (sub or user_id)")

    async def _user_id_for(self, email: str) -> str:
        now = time.monotonic()
        cached = self._by_email.get(email)
        if cached is not None and cached[0] > now:
            return cached[1]
        if self._unknown.get(email, 0.0) > now:
            raise NotAuthorizedException("unknown user")
        settings = self._settings
        service, base = (
            ("user-service", settings.user_service_url)
            if settings.user_service_url
            else ("api-gateway", settings.api_gateway_url)
        )
        if base is None:
            log.warning("email subject but neither USER_SERVICE_URL nor API_GATEWAY_URL is set")
            raise NotAuthorizedException("email subjects cannot be resolved here")
        response = await request(
            self._http,
            service,
            "GET",
            f"{base.rstrip('/')}/internal/users/by-email",
            retries=settings.http_retries,
            params={"email": email},
            headers={"Authorization": f"Bearer {integration_token(await self._secret(), datetime.now(UTC))}"},
            accept_status=frozenset({404}),
        )
        if response.status_code == 404:
            if len(self._unknown) >= _KEPT_UNKNOWN:
                self._unknown.clear()  # a flood of made-up emails must not grow it without end
            self._unknown[email] = time.monotonic() + settings.identity_negative_ttl_seconds
            raise NotAuthorizedException("unknown user")
        try:
            user = msgspec.json.decode(response.content, type=_GatewayUser)
        except msgspec.DecodeError:
            log.warning("api gateway answered an unreadable user", status=response.status_code)
            raise NotAuthorizedException("unknown user") from None
        user_id = _tenant_claim(user.id)
        self._by_email[email] = (time.monotonic() + self._settings.identity_cache_ttl_seconds, user_id)
        return user_id


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _tenant_claim(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
        raise NotAuthorizedException("the token's user id is not usable")
    return str(value).strip()


async def _retrieve_tenant(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> Tenant:
    resolver: IdentityResolver = connection.app.state.identity
    tenant = await resolver.tenant(token)
    structlog.contextvars.bind_contextvars(tenant=tenant.user_id)
    return tenant


def jwt_auth(exclude: list[str]) -> JWTAuth[Tenant, PlatformToken]:
    """The app's auth config; handlers opt out with ``opt={"exclude_from_auth": True}``."""
    return JWTAuth[Tenant, PlatformToken](
        token_secret="",  # unused: PlatformJWTMiddleware asks JwtSecret on every request
        algorithm="HS256",
        token_cls=PlatformToken,
        authentication_middleware_class=PlatformJWTMiddleware,
        retrieve_user_handler=_retrieve_tenant,
        exclude=exclude,
        description="HS256 JWT from the platform: `sub` is the user id or email, or `user_id` for services.",
    )
