"""The engine scenarios' fixture: ``engine_scenario``, a ``Scenario`` (harness.py) on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.engine.harness import Scenario, open_scenario


@pytest.fixture
async def engine_scenario(fresh_database_url: str) -> AsyncIterator[Scenario]:
    async with open_scenario(fresh_database_url) as scenario:
        yield scenario
