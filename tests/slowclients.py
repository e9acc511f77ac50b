"""Clients that hold a connection to the service open without finishing it: an ``/events``
stream that is never read, and uploads that send a byte now and then (slowloris). Used by the
shutdown test and by ``bench/chaos.py``'s SIGTERM scenario."""

from __future__ import annotations

import asyncio
import contextlib

from tests.campaigns import PREFIX


class SlowClients:
    """``uploads`` slow uploads and one unread event stream of ``task_id``, on 127.0.0.1:``port``."""

    def __init__(self, port: int, token: str, task_id: str, uploads: int = 5) -> None:
        self._port = port
        self._token = token
        self._task_id = task_id
        self._uploads = uploads
        self._writers: list[asyncio.StreamWriter] = []
        self._dribbling: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SlowClients:
        _, stream = await asyncio.open_connection("127.0.0.1", self._port)
        stream.write(
            f"GET {PREFIX}/tasks/{self._task_id}/events HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {self._token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        self._writers.append(stream)
        uploads = []
        for _ in range(self._uploads):
            _, upload = await asyncio.open_connection("127.0.0.1", self._port)
            upload.write(
                f"POST {PREFIX}/import/file HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self._token}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 10000000\r\n\r\n--b\r\n".encode()
            )
            uploads.append(upload)
        self._writers += uploads
        self._dribbling = asyncio.create_task(_dribble(uploads))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._dribbling is not None:
            self._dribbling.cancel()
        for writer in self._writers:
            writer.close()


async def _dribble(uploads: list[asyncio.StreamWriter]) -> None:
    while True:
        for upload in uploads:
            with contextlib.suppress(OSError):
                upload.write(b"x")
        await asyncio.sleep(0.5)
