"""Fixtures for the security tests: the real app over the session database, two tenants, and a
local Parsing Service (so the parsing routes get as far as their tenant checks).

The engine is off here: these tests look at what the API lets one caller do to another's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from invite.app import create_app
from invite.kernel.settings import Settings
from tests.fakeserver import FakeServer, Reply
from tests.integration.api import Client, auth_headers, new_tenant

PARSING_TASK = "0b6f7f2e-9a41-4d55-8d0e-1c2b3a4d5e6f"


def parsing_page(people: list[dict[str, object]]) -> Reply:
    return Reply(
        json={
            "task_id": PARSING_TASK,
            "results": people,
            "total": len(people),
            "format": "json",
            "pagination": {"offset": 0, "limit": 1000, "has_more": False},
        }
    )


@pytest.fixture
def parsing() -> Iterator[FakeServer]:
    """A Parsing Service with one result for every task: ``@parsed_person``."""
    with FakeServer() as server:
        person: dict[str, object] = {
            "id": "1",
            "platform": "telegram",
            "platform_id": "777",
            "username": "parsed_person",
        }
        server.route("GET", "/results/{task_id}", parsing_page([person]))
        yield server


@pytest.fixture
def app_settings(settings: Settings, parsing: FakeServer) -> Settings:
    return msgspec.structs.replace(
        settings, parsing_service_url=parsing.url, engine_enabled=False, http_retries=0
    )


@pytest.fixture
async def client(app_settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=create_app(app_settings)) as test_client:
        yield test_client


@pytest.fixture
def owner(client: Client) -> dict[str, str]:
    """Tenant A's headers: A owns the data."""
    return auth_headers(client, new_tenant())


@pytest.fixture
def stranger(client: Client) -> dict[str, str]:
    """Tenant B's headers: B tries to reach A's data."""
    return auth_headers(client, new_tenant())
