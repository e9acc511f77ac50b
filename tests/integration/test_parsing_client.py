"""The Parsing Service client against a local server answering as PLATFORM-CONTRACTS.md says."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import jwt
import pytest

from invite.integrations.parsing import ParsingClient
from invite.kernel.http import UpstreamError
from invite.platforms.parsing import InvalidTaskId, TooManyResults
from tests.fakeserver import FakeServer, Reply, Request
from tests.integration.parsing import ParsingService

SECRET = "parsing-test-secret-" + "s" * 24
TASK = "0b6f7f2e-9a41-4d55-8d0e-1c2b3a4d5e6f"


def result(n: int, task: str = TASK) -> dict[str, Any]:
    """One result exactly as the parsing service formats it (plus a field we do not know)."""
    return {
        "id": str(n),
        "task_id": "17",
        "platform": "telegram",
        "platform_id": str(100_000 + n),
        "username": f"user{n}",
        "display_name": f"User {n}",
        "author_phone": None,
        "created_at": "2026-01-05T09:00:00",
        "platform_specific_data": {
            "user_id": 100_000 + n,
            "username": f"user{n}",
            "first_name": f"First{n}",
            "last_name": None,
            "is_bot": False,
            "is_verified": False,
            "is_premium": n % 2 == 0,
            "user_type": "member",
            "phone": None,
            "language_code": "ru",
            "chat_id": -1001234567890,
            "chat_title": "Test chat",
            "some_future_field": {"nested": True},
        },
        "a_field_added_later": 1,
    }


async def secret() -> str:
    return SECRET


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
async def client(server: FakeServer) -> AsyncIterator[ParsingClient]:
    client = ParsingClient(
        server.url, secret, timeout_seconds=0.5, retries=2, backoff_seconds=0.01, page_size=2
    )
    try:
        yield client
    finally:
        await client.aclose()


async def test_follows_pagination_over_three_pages(server: FakeServer, client: ParsingClient) -> None:
    server.route("GET", "/results/{task_id}", ParsingService(SECRET, [result(n) for n in range(5)]))

    people = await client.fetch_results(TASK, "42")

    assert [p.username for p in people] == [f"user{n}" for n in range(5)]
    assert people[0].platform_id == "100000"
    assert people[0].platform_specific_data is not None
    assert people[0].platform_specific_data.first_name == "First0"
    assert people[0].platform_specific_data.is_bot is False
    calls = server.requests_to("GET", f"/results/{TASK}")
    assert [(c.arg("offset"), c.arg("limit")) for c in calls] == [("0", "2"), ("2", "2"), ("4", "2")]
    claims = jwt.decode(
        calls[0].headers["authorization"].removeprefix("Bearer "), SECRET, algorithms=["HS256"]
    )
    assert claims["user_id"] == 42
    assert calls[0].arg("user_id") == "42"


async def test_unknown_task_is_an_empty_list(server: FakeServer, client: ParsingClient) -> None:
    # the service answers an unknown or foreign task with an empty list, not 404
    server.route("GET", "/results/{task_id}", ParsingService(SECRET, []))

    assert await client.fetch_results(str(uuid.uuid4()), "42") == []


async def test_a_task_id_that_is_not_a_uuid_is_refused_before_any_call(
    server: FakeServer, client: ParsingClient
) -> None:
    with pytest.raises(InvalidTaskId):
        await client.fetch_results("../admin", "42")
    assert server.requests == []


async def test_failing_service_raises_after_retries(server: FakeServer, client: ParsingClient) -> None:
    server.route("GET", "/results/{task_id}", Reply(500, json={"detail": "boom"}))

    with pytest.raises(UpstreamError) as caught:
        await client.fetch_results(TASK, "42")

    assert caught.value.service == "parsing-service"
    assert len(server.requests) == 3  # the first try and two retries


async def test_a_500_in_the_middle_is_retried_and_the_result_is_whole(
    server: FakeServer, client: ParsingClient
) -> None:
    service = ParsingService(SECRET, [result(n) for n in range(5)])
    failed: list[str] = []

    def flaky(request: Request) -> Reply:
        if request.arg("offset") == "2" and not failed:
            failed.append("once")
            return Reply(500)
        return service(request)

    server.route("GET", "/results/{task_id}", flaky)

    people = await client.fetch_results(TASK, "42")

    assert len(people) == 5


async def test_a_page_that_keeps_failing_gives_nothing_partial(
    server: FakeServer, client: ParsingClient
) -> None:
    service = ParsingService(SECRET, [result(n) for n in range(5)])
    server.route(
        "GET",
        "/results/{task_id}",
        lambda r: Reply(503) if r.arg("offset") == "2" else service(r),
    )

    with pytest.raises(UpstreamError):
        await client.fetch_results(TASK, "42")


async def upstream_error(client: ParsingClient) -> UpstreamError:
    """The UpstreamError that fetching TASK with ``client`` raises; the client is closed after."""
    async with aclosing(client):
        with pytest.raises(UpstreamError) as caught:
            await client.fetch_results(TASK, "42")
    return caught.value


async def test_timeout_raises_upstream_error(server: FakeServer) -> None:
    server.route("GET", "/results/{task_id}", Reply(json={"results": []}, delay=1.0))
    client = ParsingClient(server.url, secret, timeout_seconds=0.1, retries=1, backoff_seconds=0.01)

    assert "timed out" in (await upstream_error(client)).detail


async def test_unreachable_service_raises_upstream_error() -> None:
    client = ParsingClient("http://127.0.0.1:1", secret, retries=1, backoff_seconds=0.01)

    assert "unreachable" in (await upstream_error(client)).detail


@pytest.mark.parametrize(
    "body",
    [
        b"<html>Bad gateway</html>",
        b'{"results": [{"username": "no id"}], "pagination": {"has_more": false}}',
        b'{"results": "not a list"}',
    ],
    ids=["not-json", "result-without-id", "results-not-a-list"],
)
async def test_a_body_that_is_not_the_contract_raises_upstream_error(
    server: FakeServer, client: ParsingClient, body: bytes
) -> None:
    server.route("GET", "/results/{task_id}", Reply(body=body, headers={"Content-Type": "application/json"}))

    with pytest.raises(UpstreamError) as caught:
        await client.fetch_results(TASK, "42")

    assert caught.value.service == "parsing-service"


async def test_more_results_than_allowed_are_refused(server: FakeServer, client: ParsingClient) -> None:
    server.route("GET", "/results/{task_id}", ParsingService(SECRET, [result(n) for n in range(7)]))

    with pytest.raises(TooManyResults) as caught:
        await client.fetch_results(TASK, "42", max_results=4)

    assert (caught.value.total, caught.value.limit) == (7, 4)
    assert len(server.requests) == 1  # the first page's total was enough to know


async def test_has_more_with_an_empty_page_is_not_an_endless_loop(
    server: FakeServer, client: ParsingClient
) -> None:
    server.route(
        "GET",
        "/results/{task_id}",
        Reply(json={"results": [], "total": 3, "pagination": {"offset": 0, "limit": 2, "has_more": True}}),
    )

    with pytest.raises(UpstreamError):
        await client.fetch_results(TASK, "42")


async def test_results_repeated_across_pages_are_kept_once(server: FakeServer, client: ParsingClient) -> None:
    # newest first + offset pagination: a result added while paging shifts the pages
    pages = {
        "0": [result(1), result(2)],
        "2": [result(2), result(3)],
    }
    server.route(
        "GET",
        "/results/{task_id}",
        lambda r: Reply(
            json={
                "results": pages[r.arg("offset") or "0"],
                "total": 4,
                "pagination": {"has_more": r.arg("offset") == "0"},
            }
        ),
    )

    people = await client.fetch_results(TASK, "42")

    assert [p.id for p in people] == ["1", "2", "3"]
