"""Calls to the platform's neighbouring services: service tokens, timeouts, retries.

Tokens are shaped as PLATFORM-CONTRACTS.md says each service expects them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
import structlog

from invite.observability.metrics import integration_errors

SERVICE_NAME = "invite-service"
TOKEN_LIFETIME = timedelta(minutes=5)
_RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# The server closed the connection under the request without answering.
_DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)

log = structlog.get_logger(__name__)


class UpstreamError(Exception):
    """A neighbouring service is unreachable or failing; ``service`` names it."""

    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.detail = detail


def integration_token(secret: str, now: datetime) -> str:
    """The integration service's service JWT (sent with ``X-User-Id: <tenant>``)."""
    claims = {
        "sub": f"service:{SERVICE_NAME}",
        "service": SERVICE_NAME,
        "iat": int(now.timestamp()),
        "exp": int((now + TOKEN_LIFETIME).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def parsing_token(secret: str, user_id: str, now: datetime) -> str:
    """The parsing service's service JWT: it reads the tenant from ``user_id``."""
    tenant: int | str = int(user_id) if user_id.isdigit() else user_id
    claims = {"service": SERVICE_NAME, "user_id": tenant, "exp": int((now + TOKEN_LIFETIME).timestamp())}
    return jwt.encode(claims, secret, algorithm="HS256")


async def request(
    client: httpx.AsyncClient,
    service: str,
    method: str,
    url: str,
    *,
    retries: int,
    backoff_seconds: float = 0.2,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    accept_status: frozenset[int] = frozenset(),
) -> httpx.Response:
    """Send one request, retrying network errors and 429/5xx with exponential backoff.

    Returns the response when it is 2xx or in ``accept_status`` (e.g. 404 meaning "none
    free"); raises UpstreamError otherwise. Only idempotent calls, or calls the service
    treats as idempotent, should pass ``retries`` > 0. Every call, ``retries`` 0 included, is
    sent once more at once when the server dropped the connection under it without an answer:
    the platform's servers close a keep-alive connection after an unhandled exception, and the
    next request on it fails before the service sees it; the pool then opens a fresh one.
    """
    last = "no attempt made"
    attempt = 0
    spare = 1  # the one extra try after a dropped connection
    while attempt <= retries:
        try:
            response = await client.request(method, url, headers=headers, params=params, json=json)
        except httpx.TimeoutException:
            last = "timed out"
        except _DROPPED as exc:
            last = f"unreachable ({type(exc).__name__})"
            if spare:
                spare -= 1
                log.info("connection dropped by the server, sending again", service=service, url=url)
                continue
        except httpx.TransportError as exc:
            last = f"unreachable ({type(exc).__name__})"
        else:
            if response.is_success or response.status_code in accept_status:
                return response
            last = f"answered {response.status_code}"
            if response.status_code not in _RETRYABLE_STATUS and response.status_code < 500:
                break
        attempt += 1
        if attempt <= retries:
            await asyncio.sleep(backoff_seconds * 2 ** (attempt - 1))
    integration_errors.labels(service=service).inc()
    log.warning("upstream call failed", service=service, method=method, url=url, reason=last)
    raise UpstreamError(service, last)
