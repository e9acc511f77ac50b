"""Client of the platform's Parsing Service: the people a parsing task collected.

``GET {PARSING_SERVICE_URL}/results/{task_id}?limit=&offset=`` with the parsing service's
JWT (PLATFORM-CONTRACTS.md), followed page by page while ``pagination.has_more``. The
result is all or nothing: any failure raises, never a partial list, so an import built on
it is never partial either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec

from invite.kernel.clock import Clock, RealClock
from invite.kernel.http import UpstreamError, parsing_token, request
from invite.platforms.parsing import ParsingResult, ParsingTaskSummary, TooManyResults, parse_task_id

SERVICE = "parsing-service"
PAGE_SIZE = 1000  # the service's own maximum page

SecretProvider = Callable[[], Awaitable[str]]


class _Pagination(msgspec.Struct):
    has_more: bool = False


class _Page(msgspec.Struct):
    results: list[ParsingResult] = msgspec.field(default_factory=list)
    total: int | None = None
    pagination: _Pagination = msgspec.field(default_factory=_Pagination)


_decode_page = msgspec.json.Decoder(_Page).decode


class _Grouped(msgspec.Struct):
    tasks: list[ParsingTaskSummary] = msgspec.field(default_factory=list)


_decode_grouped = msgspec.json.Decoder(_Grouped).decode


class ParsingClient:
    """Reads parsing results for a tenant. One instance per process; close it on shutdown."""

    def __init__(
        self,
        base_url: str,
        secret_provider: SecretProvider,
        *,
        timeout_seconds: float = 10.0,
        retries: int = 3,
        backoff_seconds: float = 0.2,
        page_size: int = PAGE_SIZE,
        max_results: int = 100_000,
        clock: Clock | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._secret = secret_provider
        self._retries = retries
        self._backoff = backoff_seconds
        self._page_size = page_size
        self._max_results = max_results
        self._clock = clock or RealClock()
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch_results(
        self, task_id: str, user_id: str, *, max_results: int | None = None
    ) -> list[ParsingResult]:
        """Every result of ``task_id`` visible to tenant ``user_id``, deduplicated by id.

        An unknown or foreign task gives an empty list (the service answers so). Raises
        InvalidTaskId for a task id that is not a uuid, TooManyResults past
        ``max_results``, and UpstreamError when the service is unreachable or answers
        badly — never a partial list.
        """
        task = parse_task_id(task_id)
        limit = self._max_results if max_results is None else max_results
        url = f"{self._base_url}/results/{task}"
        headers = await self._headers(user_id)
        found: dict[str | int, ParsingResult] = {}
        offset = 0
        while True:
            page = await self._page(url, headers, user_id, offset)
            if page.total is not None and page.total > limit:
                raise TooManyResults(page.total, limit)
            for result in page.results:
                found.setdefault(result.id, result)
            if len(found) > limit:
                raise TooManyResults(page.total or len(found), limit)
            if not page.pagination.has_more:
                return list(found.values())
            if not page.results:
                raise UpstreamError(SERVICE, "announced more results but sent an empty page")
            offset += len(page.results)

    async def tasks(self, user_id: str) -> list[ParsingTaskSummary]:
        """Tenant ``user_id``'s parsing tasks, newest first: ``GET /api/v1/results/grouped``, the
        list the platform's own pages offer (it reads the tenant from the JWT). Not at the root:
        there ``/results/{task_id}`` takes the path and answers an empty task "grouped"
        (docs/platform-as-run.md). UpstreamError when the service fails or answers badly."""
        response = await request(
            self._client,
            SERVICE,
            "GET",
            f"{self._base_url}/api/v1/results/grouped",
            retries=self._retries,
            backoff_seconds=self._backoff,
            headers=await self._headers(user_id),
            params={"user_id": user_id} if user_id.isdigit() else None,
        )
        try:
            return _decode_grouped(response.content).tasks
        except msgspec.DecodeError as exc:
            raise UpstreamError(SERVICE, f"answered an unexpected body ({exc})") from None

    async def _headers(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {parsing_token(await self._secret(), user_id, self._clock.now())}"}

    async def _page(self, url: str, headers: dict[str, str], user_id: str, offset: int) -> _Page:
        params: dict[str, Any] = {"limit": self._page_size, "offset": offset}
        if user_id.isdigit():
            # Belt and braces: the service also filters by this query parameter.
            params["user_id"] = user_id
        response = await request(
            self._client,
            SERVICE,
            "GET",
            url,
            retries=self._retries,
            backoff_seconds=self._backoff,
            headers=headers,
            params=params,
        )
        try:
            return _decode_page(response.content)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            raise UpstreamError(SERVICE, f"answered an unexpected body ({exc})") from None
