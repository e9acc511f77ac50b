"""What the end-to-end tests through the real kurigram client share: the Integration Service
handing out sessions that lead to the loopback MTProto server (``tests.mtproto.server``), and
the ``pyrogram.Client`` factory ``TelegramFactory`` is given to reach it."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import pyrogram

from invite.kernel.clock import VirtualClock
from invite.platforms.telegram.strategy import SessionStorage
from tests.fakeserver import FakeServer, Reply, Request
from tests.integration.test_integration_client import Account, IntegrationService
from tests.mtproto.server import MTProtoServer
from tests.unit.telegram.conftest import telethon_session


def loopback_client(server: MTProtoServer, **kwargs: Any) -> pyrogram.Client:
    """The installed ``pyrogram.Client`` for ``TelegramFactory``, its storage pointed at the
    loopback server (a native Pyrogram session names no address at all)."""
    storage = kwargs["storage_engine"]
    address = (server.host, server.port)
    kwargs["storage_engine"] = SessionStorage(storage.name, storage.session_string, address)
    return pyrogram.Client(**kwargs)


class Platform(IntegrationService):
    """The Integration Service of the client's contract tests, with these accounts and sessions, on
    the engine's clock: its 30-minute leases are renewed and the rests it gives after a FloodWait
    or a spam flag end in simulated time."""

    def __init__(
        self, server: FakeServer, sessions: dict[str, str], clock: VirtualClock, accounts: Iterable[Account]
    ) -> None:
        super().__init__(server, clock)
        self.sessions = sessions
        self.accounts = {account.id: account for account in accounts}

    def allocate(self, request: Request) -> Reply:
        reply = super().allocate(request)
        body: Any = reply.json
        if reply.status == 200:
            allocation = body["allocation"]
            allocation["session_data"] = {"encrypted_session": self.sessions[allocation["account_id"]]}
        return Reply(reply.status, json=body)


def platform_session(key: bytes, port: int) -> str:
    """``session_data.encrypted_session`` as the platform stores it: base64 of a Telethon string
    (here naming the loopback server as its DC's address)."""
    return base64.b64encode(telethon_session(address="127.0.0.1", port=port, key=key).encode()).decode()
