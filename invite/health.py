"""Liveness and readiness, without auth: the orchestrator and the load balancer call these.

Liveness answers under the API prefix and at the root too: the platform's gateway and admin
service probe ``{service}/health``."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import structlog
from litestar import get
from litestar.di import NamedDependency

from invite.kernel.problems import Problem
from invite.kernel.settings import Settings
from invite.kernel.sql import Sql

READY_TIMEOUT_SECONDS = 2.0

log = structlog.get_logger(__name__)


class HealthResponse(msgspec.Struct):
    status: str


@get("/health", opt={"exclude_from_auth": True}, security=[{}], tags=["service"], summary="Liveness")
async def health() -> HealthResponse:
    return HealthResponse("ok")


@get("/health", opt={"exclude_from_auth": True}, security=[{}], tags=["service"], summary="Liveness (root)")
async def root_health() -> HealthResponse:
    return HealthResponse("ok")


@get(
    "/health/ready",
    opt={"exclude_from_auth": True},
    security=[{}],
    tags=["service"],
    summary="Readiness (database)",
)
async def ready(
    db_pool: NamedDependency[asyncpg.Pool], app_settings: NamedDependency[Settings]
) -> HealthResponse:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await Sql(app_settings.sql_dir).fetchval(db_pool, "health.ping")
    except Exception as exc:
        log.warning("readiness check failed", error=type(exc).__name__)
        raise Problem(503, "Service unavailable", "the database does not answer") from None
    return HealthResponse("ready")
