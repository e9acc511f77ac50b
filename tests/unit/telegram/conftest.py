"""Fixtures for the Telegram adapter: the stand-in server, the loopback MTProto server, sessions
made by the real Telethon, factories."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from telethon.crypto import AuthKey
from telethon.sessions import StringSession

from invite.platforms.base import AccountData, RateLimits
from invite.platforms.telegram import TelegramFactory, TelegramStrategy
from invite.platforms.telegram.sessions import parse_session
from tests.mtproto.server import MTProtoServer, key_id
from tests.unit.telegram.standin import StandInClient, TelegramServer

API_ID = 123456
API_HASH = "0123456789abcdef0123456789abcdef"
LIMITS = RateLimits(daily_quota=40, daily_quota_with_link=10, min_pause_seconds=15.0)


def telethon_session(
    dc_id: int = 2, address: str = "149.154.167.51", port: int = 443, key: bytes | None = None
) -> str:
    """A session string as the platform's Telethon login saves it."""
    session = StringSession()
    session.set_dc(dc_id, address, port)
    session.auth_key = AuthKey(key if key is not None else os.urandom(256))
    saved: str = session.save()
    return saved


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pyrogram appends unknown errors to ./unknown_errors.txt: keep it out of the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def server() -> TelegramServer:
    return TelegramServer()


@pytest.fixture
def make_factory(server: TelegramServer) -> Callable[..., TelegramFactory]:
    def make(**options: object) -> TelegramFactory:
        return TelegramFactory(
            API_ID,
            API_HASH,
            limits=LIMITS,
            client_factory=functools.partial(StandInClient, server=server),
            **options,  # type: ignore[arg-type]
        )

    return make


@pytest.fixture
def account() -> AccountData:
    return AccountData(id="acc-1", user_id="42", label="main", session=telethon_session())


@pytest.fixture
async def strategy(
    make_factory: Callable[..., TelegramFactory], account: AccountData, server: TelegramServer
) -> AsyncIterator[TelegramStrategy]:
    """A connected strategy; every test ends with the client closed and no unanswered request."""
    strategy = make_factory().for_account(account)
    outcome = await strategy.initialize_client(account)
    assert outcome.kind == "success", outcome
    yield strategy
    await strategy.close()
    assert server.unexpected == []


# --- the loopback MTProto server: the real client on a real socket ------------------------------
@pytest.fixture
async def loopback() -> AsyncIterator[MTProtoServer]:
    server = MTProtoServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def wire_account(loopback: MTProtoServer) -> AccountData:
    """An account whose Telethon session (made by the real telethon) names the loopback server."""
    key = os.urandom(256)
    loopback.add_key(key)
    return AccountData(
        id="acc-wire",
        user_id="42",
        label="wire",
        session=telethon_session(address="127.0.0.1", port=loopback.port, key=key),
    )


def wire_key(account: AccountData) -> bytes:
    """The auth key id of an account's session, as the loopback server counts it."""
    return key_id(parse_session(account.session).auth_key)


@pytest.fixture
def wire_factory() -> Callable[..., TelegramFactory]:
    """Factories of strategies on the installed ``pyrogram.Client``, unchanged."""

    def make(**options: object) -> TelegramFactory:
        return TelegramFactory(API_ID, API_HASH, limits=LIMITS, **options)  # type: ignore[arg-type]

    return make
