"""Shutdown within a bound: SIGTERM ends the process in ``SHUTDOWN_TIMEOUT_SECONDS``, whatever the
clients attached to it do.

uvicorn, left alone, waits for every open connection before it runs the lifespan's shutdown:
an ``/events`` stream or a slow upload kept the process up, and the engine sending, for as
long as the client liked. So the signal itself begins the drain (``Drain.begin``), at once and
beside uvicorn's own wait:

1. the background services stop, the engine first: it claims nothing more, lets the actions
   in flight finish and be recorded, and releases its leases;
2. open event streams are told to end (``TaskEventHub.close_streams``);
3. uvicorn stops accepting and cuts off requests still running after half the bound
   (``timeout_graceful_shutdown``);
4. the lifespan's shutdown waits for step 1 for what is left of the bound; a service still
   stopping then is aborted (the engine leaves its leases to expire, as after a crash);
5. a last resort: the process exits at the bound even if something above hangs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Protocol

import structlog
import uvicorn

log = structlog.get_logger(__name__)

FORCE_EXIT_CODE = 70  # EX_SOFTWARE: the drain did not finish within the bound


class Stoppable(Protocol):
    async def stop(self) -> None: ...


class Drain:
    """The process's one shutdown: begun once (by the signal, or by the lifespan), awaited by both."""

    def __init__(self, bound_seconds: float, on_begin: Callable[[], None]) -> None:
        self.bound_seconds = bound_seconds
        self._on_begin = on_begin  # e.g. end the open event streams
        self._loop = asyncio.get_running_loop()
        self._services: Sequence[Stoppable] = ()
        self._began_at: float | None = None
        self._stopping: asyncio.Task[None] | None = None

    def serve(self, services: Sequence[Stoppable]) -> None:
        """These run now; a drain stops them in reverse order."""
        self._services = services

    @property
    def begun(self) -> bool:
        return self._began_at is not None

    def begin_from_signal(self) -> None:
        """Safe from a signal handler or another thread."""
        self._loop.call_soon_threadsafe(self.begin)

    def begin(self) -> None:
        if self._began_at is not None:
            return
        self._began_at = time.monotonic()
        log.info("shutting down", bound_seconds=self.bound_seconds)
        self._on_begin()
        self._stopping = self._loop.create_task(self._stop_all(), name="drain")

    async def finish(self) -> None:
        """Begin if not yet, and wait until every service has stopped or been aborted."""
        self.begin()
        assert self._stopping is not None
        await self._stopping

    def _remaining(self) -> float:
        assert self._began_at is not None
        return self.bound_seconds - (time.monotonic() - self._began_at)

    async def _stop_all(self) -> None:
        # one second of the bound is kept for what follows (closing pools, exiting)
        for service in reversed(self._services):
            try:
                async with asyncio.timeout(max(self._remaining() - 1.0, 0.0)):
                    await service.stop()
            except TimeoutError:
                log.error("service did not stop in time: aborted", service=type(service).__name__)
                abort = getattr(service, "abort", None)
                if abort is not None:
                    abort()
            except Exception:
                log.exception("service failed to stop", service=type(service).__name__)


class BoundedServer(uvicorn.Server):
    """uvicorn's server, whose exit signal also begins the drain and arms the last resort."""

    def __init__(
        self, config: uvicorn.Config, drain: Callable[[], Drain | None], bound_seconds: float
    ) -> None:
        super().__init__(config)
        self._drain = drain
        self._bound_seconds = bound_seconds
        self._armed = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        drain = self._drain()
        if drain is not None:
            drain.begin_from_signal()
        if not self._armed:
            self._armed = True
            timer = threading.Timer(self._bound_seconds, _force_exit, (self._bound_seconds,))
            timer.daemon = True
            timer.start()


def _force_exit(bound_seconds: float) -> None:
    print(f"invite: shutdown took longer than {bound_seconds:g} s; exiting now", file=sys.stderr, flush=True)
    os._exit(FORCE_EXIT_CODE)
