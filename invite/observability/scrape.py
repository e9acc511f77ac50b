"""``GET /metrics``: the default registry in Prometheus' text format, task gauges fresh from the DB."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import structlog
from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from invite.kernel.settings import Settings
from invite.kernel.sql import Sql
from invite.observability.metrics import active_tasks

PLATFORMS = ("telegram", "instagram", "whatsapp")
GAUGE_TIMEOUT_SECONDS = 5.0  # well inside Prometheus' default 10 s scrape timeout

log = structlog.get_logger(__name__)


class Running(msgspec.Struct, frozen=True):
    platform: str
    n: int


async def refresh_task_gauges(pool: asyncpg.Pool, settings: Settings) -> None:
    async with asyncio.timeout(GAUGE_TIMEOUT_SECONDS):
        rows = await Sql(settings.sql_dir).fetch(pool, "tasks.running_by_platform", Running)
    running = {r.platform: r.n for r in rows}
    for platform in PLATFORMS:
        active_tasks.labels(platform=platform).set(running.get(platform, 0))


@get("/metrics", opt={"exclude_from_auth": True}, include_in_schema=False)
async def metrics(
    db_pool: NamedDependency[asyncpg.Pool], app_settings: NamedDependency[Settings]
) -> Response[bytes]:
    try:
        await refresh_task_gauges(db_pool, app_settings)
    except Exception as exc:  # a scrape still answers, with the last known values
        log.warning("task gauges not refreshed", error=type(exc).__name__)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
