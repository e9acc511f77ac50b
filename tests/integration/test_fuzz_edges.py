"""The edges a fuzzer rarely reaches, for every operation of the OpenAPI document.

Generated from the document, not listed by hand: every integer parameter gets integers far past
int64 either way, every date-time parameter the first and last instants of the calendar at
±14:00 (years 0 and 10000 once converted to UTC), and every operation with a JSON body one
nested 100,000 levels deep. Each answer is a 4xx problem (or the 503 of a neighbour this test
runs without), never a 500. (The schemathesis run of
test_fuzz_api.py draws its date-times from the same extremes.)
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from invite.app import create_app
from tests.integration.api import Client, message_task
from tests.security.test_tenant_isolation import ROUTE_SETTINGS

HUGE_INTEGERS = [str(10**21), str(-(10**21)), str(2**63)]
EXTREME_INSTANTS = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
]
DEEP_BODIES = ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000]


def _document() -> dict[str, Any]:
    schema: dict[str, Any] = create_app(ROUTE_SETTINGS).openapi_schema.to_schema()
    return schema


def _cases() -> list[Any]:
    """(method, path, query) for every integer and date-time query parameter; (method, path, body)."""
    cases = []
    for path, item in _document()["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "query":
                    continue
                kinds, formats = _kinds(parameter.get("schema", {}))
                values = (HUGE_INTEGERS if "integer" in kinds else []) + (
                    EXTREME_INSTANTS if "date-time" in formats else []
                )
                for value in values:
                    cases.append(
                        pytest.param(
                            method.upper(),
                            path,
                            {parameter["name"]: value},
                            None,
                            id=f"{method}-{path}-{value}",
                        )
                    )
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                for n, body in enumerate(DEEP_BODIES):
                    cases.append(pytest.param(method.upper(), path, {}, body, id=f"{method}-{path}-deep{n}"))
    return cases


def _kinds(schema: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The types and formats a parameter's schema admits (through oneOf/anyOf, type lists)."""
    kinds: set[str] = set()
    formats: set[str] = set()
    for part in [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]:
        kind = part.get("type")
        kinds.update(kind if isinstance(kind, list) else [kind] if kind else [])
        if "format" in part:
            formats.add(part["format"])
    return kinds, formats


@pytest.fixture
async def edge_client(client: Client, headers: dict[str, str]) -> tuple[Client, dict[str, str], str]:
    created = await client.post(f"{ROUTE_SETTINGS.api_prefix}/tasks", json=message_task(), headers=headers)
    assert created.status_code == 201, created.text
    return client, headers, created.json()["id"]


@pytest.mark.parametrize(("method", "path", "query", "body"), _cases())
async def test_edges_get_a_4xx_problem(
    edge_client: tuple[AsyncTestClient[Any], dict[str, str], str],
    method: str,
    path: str,
    query: dict[str, str],
    body: str | None,
) -> None:
    client, headers, task_id = edge_client
    url = path.replace("{task_id}", task_id).replace("{import_id}", str(uuid.uuid4()))
    url = url.replace("{account_id}", "sandbox-1").replace("{identifier}", "someone")
    extra = {"content-type": "application/json"} if body is not None else {}
    response = await client.request(method, url, params=query, content=body, headers={**headers, **extra})
    # 503: a neighbour this test runs without (the Parsing Service) is named, as in production
    assert response.status_code < 500 or response.status_code == 503, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), response.text


def test_the_edges_cover_the_document() -> None:
    """Dates, big integers and bodies are all there to try (the sweep is not empty by mistake)."""
    ids = [case.id for case in _cases()]
    assert any("+14:00" in i for i in ids)
    assert any(str(10**21) in i for i in ids)
    assert sum("deep" in i for i in ids) >= 4
