"""A coroutine that runs beside the API for the life of the process (gauges, retention, events)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import ClassVar


class BackgroundLoop:
    """``start`` launches ``_run``; ``stop`` cancels it and waits until it has ended."""

    name: ClassVar[str]
    _runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def _run(self) -> None:
        raise NotImplementedError
