"""Schemathesis over the service's own OpenAPI document, in-process against the ASGI app.

For every operation of ``/docs/openapi.json``: a bounded number of schema-valid requests and
of schema-invalid ones, with a valid bearer token. Path ids are, half of the time, ids of the
tenant's real tasks (in every state) and import, so the handlers get past their 404s. Checks:
no 5xx, the status code, content type, headers and body as documented, invalid data refused.
Date-times are drawn from the whole calendar at offsets up to ±14:00, its ends included; the
other edges (integers past int64, bodies nested 100,000 deep) are swept in test_fuzz_edges.py.
Not checked: that every schema-valid body is accepted (``positive_data_acceptance``) — rules
across fields and against the service's limits (a task's settings may lower the quota, not
raise it; an invite task needs a group) are enforced by the handlers, not the schema.

A Parsing Service runs on loopback so the parsing routes answer as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from invite.app import create_app
from invite.kernel.auth import issue_token
from invite.kernel.settings import Settings
from tests.fakeserver import FakeServer, Reply
from tests.integration.api import new_tenant
from tests.integration.parsing import grouped_route
from tests.integration.test_fuzz_edges import EXTREME_INSTANTS
from tests.security.test_tenant_isolation import ROUTE_SETTINGS

EXAMPLES = 12  # per operation and generation mode: the whole run stays well under a minute
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
TENANT = new_tenant()

# date-times from the whole calendar at any offset up to ±14:00, the calendar's ends included
# (a time in year 0 or 10000 once in UTC used to reach the database driver and answer 500)
_OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
schemathesis.openapi.format(
    "date-time",
    st.one_of(
        st.sampled_from(EXTREME_INSTANTS),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=_OFFSETS).map(
            datetime.isoformat
        ),
    ),
)


def operations() -> list[tuple[str, str, bool]]:
    """(method, path, whether it takes any input) of every operation of the document."""
    document = create_app(ROUTE_SETTINGS).openapi_schema.to_schema()
    return sorted(
        (method.upper(), path, bool(operation.get("parameters") or operation.get("requestBody")))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "delete", "patch")
    )


CASES = [
    pytest.param(
        method, path, mode, id=f"{mode.value}-{method}-{path.removeprefix(ROUTE_SETTINGS.api_prefix)}"
    )
    for method, path, takes_input in operations()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if takes_input or mode is GenerationMode.POSITIVE  # nothing to make invalid without input
]


@pytest.fixture(scope="module")
def parsing() -> Iterator[FakeServer]:
    with FakeServer() as server:
        person = {"id": "1", "platform": "telegram", "platform_id": "777", "username": "parsed_person"}
        page = {
            "results": [person],
            "total": 1,
            "pagination": {"offset": 0, "limit": 1000, "has_more": False},
        }
        grouped_route(server, [], "1")  # the tenant's parsing tasks, where the platform serves them
        server.route("GET", "/results/{task_id}", Reply(json={"task_id": "x", **page}))
        yield server


@pytest.fixture(scope="module")
def fuzz_settings(database_url: str, parsing: FakeServer) -> Settings:
    return Settings(
        database_url=database_url,
        jwt_secret="fuzz-secret-" + "f" * 32,
        log_json=False,
        log_level="WARNING",
        engine_enabled=False,
        parsing_service_url=parsing.url,
        http_retries=0,
    )


@pytest.fixture(scope="module")
def api_schema(fuzz_settings: Settings) -> Iterator[BaseSchema]:
    app = create_app(fuzz_settings)
    yield schemathesis.openapi.from_asgi("/docs/openapi.json", app)
    asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def headers(fuzz_settings: Settings) -> dict[str, str]:
    assert fuzz_settings.jwt_secret is not None
    token = issue_token(fuzz_settings.jwt_secret, TENANT, timedelta(minutes=30))
    return {"Authorization": f"Bearer {token}"}


async def _seed(url: str) -> dict[str, list[str]]:
    """The tenant's tasks in every state, with people, and one import record."""
    conn = await asyncpg.connect(url)
    try:
        tasks = []
        for status in ("draft", "scheduled", "running", "paused", "completed", "cancelled", "failed"):
            task_id = await conn.fetchval(
                """INSERT INTO invite_tasks (user_id, platform, task_type, title, message_template, status)
                   VALUES ($1, 'telegram', 'send_messages', 'fuzz', 'Hi {first_name}', $2) RETURNING id""",
                TENANT,
                status,
            )
            await conn.execute(
                """INSERT INTO invite_targets (task_id, user_identifier, identifier_key, status)
                   SELECT $1, '@fuzz' || n, 'u:fuzz' || n,
                          (ARRAY['pending','succeeded','failed','uncertain'])[n % 4 + 1]
                   FROM generate_series(1, 8) n""",
                task_id,
            )
            tasks.append(str(task_id))
        return {"task_id": tasks}
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def real_ids(database_url: str, fuzz_settings: Settings, headers: dict[str, str]) -> dict[str, list[str]]:
    ids = asyncio.run(_seed(database_url))
    with TestClient(app=create_app(fuzz_settings)) as client:
        imported = client.post(
            f"{fuzz_settings.api_prefix}/import/file",
            files={"file": ("people.csv", b"username\nalice_fuzz\nbob_the_fuzz\nx\n", "text/csv")},
            data={"task_id": ids["task_id"][0]},
            headers=headers,
        )
        assert imported.status_code == 201, imported.text
    return {**ids, "import_id": [imported.json()["import_id"]]}


def with_real_ids(strategy: Any, ids: dict[str, list[str]]) -> Any:
    """Cases whose path ids are, half of the time, one of the tenant's own."""

    def swap(case: schemathesis.Case[Any], picks: dict[str, str | None]) -> schemathesis.Case[Any]:
        for name, value in picks.items():
            if value is not None and case.path_parameters and name in case.path_parameters:
                case.path_parameters[name] = value
        return case

    picks = st.fixed_dictionaries({name: st.sampled_from([None, *values]) for name, values in ids.items()})
    return st.tuples(strategy, picks).map(lambda pair: swap(*pair))


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_operation(
    api_schema: BaseSchema,
    headers: dict[str, str],
    real_ids: dict[str, list[str]],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    strategy = api_schema[path][method].as_strategy(generation_mode=mode)
    # an event stream never ends: what it sent in the first half second is what is checked
    read_timeout = 0.5 if path.endswith("/events") else 30.0
    if mode is GenerationMode.POSITIVE:
        strategy = with_real_ids(strategy, real_ids)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=read_timeout)

    run()


def test_the_document_is_fuzzed_whole() -> None:
    """Every operation of the route table is in the document (none hidden from the fuzzer)."""
    from tests.security.test_tenant_isolation import api_routes

    documented = {(m, p.removeprefix(ROUTE_SETTINGS.api_prefix)) for m, p, _ in operations()}
    assert {(m, p) for m, p in api_routes(ROUTE_SETTINGS)} <= documented
