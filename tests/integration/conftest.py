"""Fixtures for API tests: the real app (lifespan, pool, migrations) over the session database.

``client`` is Litestar's AsyncTestClient around ``create_app(settings)``; ``tenant`` is a fresh
customer for this test and ``headers`` carries its bearer token. Helpers: ``tests/integration/api.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from invite.app import create_app
from invite.kernel.settings import Settings
from tests.integration.api import Client, auth_headers, new_tenant


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def tenant() -> str:
    return new_tenant()


@pytest.fixture
def headers(client: Client, tenant: str) -> dict[str, str]:
    return auth_headers(client, tenant)
