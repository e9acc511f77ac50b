"""A stand-in for Telegram's servers at ``Session.send``, for the fast per-error tests.

``StandInClient`` is a real ``pyrogram.Client`` whose network session is a real
``pyrogram.session.Session`` with its transport cut off: ``start``/``stop`` open nothing and
``send`` (the point every raw request of the session goes through, under ``Session.invoke``'s
own FloodWait and retry handling) hands the request to ``TelegramServer``. Everything above it
- the high-level methods, peer storage, session-string loading, ``RPCError.raise_it`` picking
the error class for a code and message - is the installed kurigram's own code.

The server answers from the world of ``tests.mtproto.world`` (real raw ``types``), or, where a
test scripted it, with an ``RpcError`` (raised through Pyrogram's own ``raise_it``, as a real
answer is) or a Python exception. What only shows on a real socket is tested against the
loopback MTProto server (``tests.mtproto.server``) instead.
"""

from __future__ import annotations

from typing import Any

import pyrogram
from pyrogram import raw
from pyrogram.errors import RPCError
from pyrogram.session import Session

from tests.mtproto.world import (
    DATE,
    ME_ID,
    OWNER_ID,
    World,
    basic_group,
    channel,
    marked,
    peer_of,
    rpc_error,
    updates,
    user,
)

__all__ = [
    "DATE",
    "ME_ID",
    "OWNER_ID",
    "StandInClient",
    "TelegramServer",
    "basic_group",
    "channel",
    "marked",
    "peer_of",
    "rpc_error",
    "updates",
    "user",
]


class TelegramServer(World):
    """The world, answering at ``Session.send``: errors raised as Pyrogram raises a real answer's."""

    def __init__(self) -> None:
        super().__init__()
        self.clients: list[Any] = []
        self.connects = 0
        self.sessions_stopped = 0
        self.raised: list[BaseException] = []
        self.refuse_connect: BaseException | None = None

    async def connect(self) -> None:
        self.connects += 1
        if self.refuse_connect is not None:
            raise self.refuse_connect

    async def answer(self, request: Any) -> Any:
        result = await self.reply(request)
        query = self.calls[-1]
        try:
            if isinstance(result, raw.types.RpcError):
                RPCError.raise_it(result, type(query))
            if isinstance(result, BaseException):
                raise result
        except BaseException as exc:
            self.raised.append(exc)
            raise
        return result


class StandInSession(Session):
    """A real Pyrogram session whose transport is the stand-in server."""

    def __init__(
        self, client: pyrogram.Client, server: TelegramServer, dc_id: int, auth_key: bytes, test_mode: bool
    ):
        super().__init__(client, dc_id, "stand-in", 0, auth_key, test_mode)
        self.server = server

    async def start(self) -> None:
        await self.server.connect()
        self.is_started.set()

    async def stop(self) -> None:
        self.server.sessions_stopped += 1
        self.is_started.clear()

    async def send(self, data: Any, wait_response: bool = True, timeout: float = Session.WAIT_TIMEOUT) -> Any:
        return await self.server.answer(data)


class StandInClient(pyrogram.Client):
    """``pyrogram.Client`` connected to the stand-in server instead of Telegram's data centres."""

    def __init__(self, *args: Any, server: TelegramServer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server = server
        self.init_kwargs = kwargs
        server.clients.append(self)

    async def get_session(self, *args: Any, **kwargs: Any) -> Session:
        session = StandInSession(
            self,
            self.server,
            await self.storage.dc_id(),
            await self.storage.auth_key(),
            await self.storage.test_mode(),
        )
        await session.start()
        return session
