"""A loopback MTProto 2.0 server that the unchanged, installed kurigram ``Client`` talks to.

What it speaks, as Telegram's servers do (core.telegram.org/mtproto):

- the abridged TCP transport, kurigram's default (``0xef``, then packets prefixed with their
  length in 4-byte units), and 4-byte transport errors (−404: auth key unknown);
- encrypted messages only: the session string's auth key is registered with ``add_key`` (the
  key exchange is never needed, the client has a key), msg_key as MTProto 2.0 defines it (the
  middle of SHA-256 over part of the key and the plaintext, x = 0 inbound, x = 8 outbound),
  AES-256-IGE through tgcrypto (``pyrogram.crypto``);
- server message ids odd and strictly increasing across every connection (1 mod 4 for
  answers, 3 mod 4 otherwise), seq_no per session (odd for content-related messages);
- ``new_session_created`` on a session's first message, ``bad_server_salt`` when the salt is
  not the session's (the client starts with 0), ``pong`` for ``ping`` and
  ``ping_delay_disconnect``, ``msgs_ack`` both ways (answers are acknowledged), ``rpc_result``
  with the answer or an ``rpc_error``, large answers ``gzip_packed``, several messages of one
  flush in a ``msg_container``.

Every TL object is built and read with ``pyrogram.raw``; what each function answers comes from
``World.reply`` (``tests.mtproto.world``). The server unwraps ``invokeWithLayer``,
``initConnection`` and ``invokeWithoutUpdates`` and answers ``help.getConfig`` itself.

Faults a test scripts: ``lose_answer`` (the request is carried out, then the socket is closed
before the answer), ``delay`` (answer after some seconds), ``kill_key`` (every packet of that
key answered with transport error −404), ``drop_connections`` (close every socket now), and any
``rpc_error`` through ``World.script``. It counts connections per auth key (``open_now``,
``most_at_once``, ``connects``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from hashlib import sha1, sha256
from io import BytesIO
from typing import Any

from pyrogram import raw
from pyrogram.crypto import aes, mtproto
from pyrogram.raw.core import GzipPacked, Int, Long, Message, MsgContainer, TLObject
from pyrogram.raw.core.primitives import Vector

from tests.mtproto.world import DATE, World, rpc_error

ABRIDGED = b"\xef"
GZIP_OVER = 128  # answers longer than this (bytes) are sent gzip_packed (Config among them)
AUTH_KEY_UNKNOWN = -404
_WRAPPERS = (raw.functions.InvokeWithLayer, raw.functions.InitConnection)
_SERVICE = (raw.types.MsgsAck, raw.functions.Ping, raw.functions.PingDelayDisconnect)


def key_id(auth_key: bytes) -> bytes:
    """The auth key id as MTProto defines it: the low 64 bits of the key's SHA-1."""
    return sha1(auth_key).digest()[-8:]  # noqa: S324  (the protocol says SHA-1)


class _Vector(TLObject[Any]):
    """A bare list answer (``Vector<T>``) written with pyrogram's own ``Vector``."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def write(self, *args: Any) -> bytes:
        return Vector(self.items)


@dataclass
class _Session:
    salt: int = field(default_factory=lambda: int.from_bytes(os.urandom(8), "little", signed=True))
    content_sent: int = 0
    created: bool = False


@dataclass(eq=False)
class _Connection:
    auth_key_id: bytes | None
    writer: asyncio.StreamWriter
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def send_packet(self, packet: bytes) -> None:
        length = len(packet) // 4
        prefix = bytes([length]) if length <= 126 else b"\x7f" + length.to_bytes(3, "little")
        self.writer.write(prefix + packet)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Delivered:
    """A request the server carried out: what a test reads to know what Telegram did."""

    auth_key_id: bytes
    query: Any
    answered: bool  # False: its answer was lost (``lose_answer``)


class MTProtoServer:
    def __init__(self, world: World | None = None, host: str = "127.0.0.1") -> None:
        self.world = world or World()
        self.host = host
        self.port = 0
        self._keys: dict[bytes, bytes] = {}
        self._worlds: dict[bytes, World] = {}  # a key's own world, where a test gave one
        self._sessions: dict[tuple[bytes, bytes], _Session] = {}
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._last_msg_id = 0
        self.dead_keys: set[bytes] = set()
        self._lose: dict[type, int] = {}
        self._delays: dict[type, float] = {}
        self.open_now: Counter[bytes] = Counter()  # connections open at this moment, per key
        self.most_at_once: Counter[bytes] = Counter()  # the most ever open together, per key
        self.connects: Counter[bytes] = Counter()  # connections ever made, per key
        self.delivered: list[Delivered] = []
        self.acked: set[int] = set()  # our message ids the client acknowledged
        self.transport_errors = 0
        self.errors_sent: list[str] = []  # the rpc_error messages answered, in order
        self.sent: Counter[str] = Counter()  # service messages sent, by kind: what was exercised

    # --- set-up ---------------------------------------------------------------------------------
    def add_key(self, auth_key: bytes, world: World | None = None) -> bytes:
        """Accept ``auth_key`` (as if a login had made it), answered from ``world`` if given
        (Telegram as that account sees it), else from the server's; returns the key's id."""
        kid = key_id(auth_key)
        self._keys[kid] = auth_key
        if world is not None:
            self._worlds[kid] = world
        return kid

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- faults ---------------------------------------------------------------------------------
    def lose_answer(self, function: type, times: int = 1) -> None:
        """The next ``times`` calls of ``function`` that succeed are carried out, then their
        connection is closed before the answer leaves: the client never learns the outcome."""
        self._lose[function] = times

    def delay(self, function: type, seconds: float) -> None:
        """Answer every call of ``function`` after ``seconds`` (pings keep being answered)."""
        self._delays[function] = seconds

    def kill_key(self, auth_key_id: bytes) -> None:
        """The key is unknown from now on: every packet is answered with transport error −404."""
        self.dead_keys.add(auth_key_id)

    def drop_connections(self) -> None:
        for connection in list(self._connections):
            connection.close()

    def calls(self, function: type, auth_key_id: bytes | None = None) -> list[Any]:
        """The calls of ``function`` carried out (answered or not), optionally for one key."""
        return [
            d.query
            for d in self.delivered
            if isinstance(d.query, function) and auth_key_id in (None, d.auth_key_id)
        ]

    # --- the wire -------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(None, writer)
        self._connections.add(connection)
        try:
            if await reader.readexactly(1) != ABRIDGED:
                return  # only the transport kurigram uses by default
            while True:
                packet = await _read_packet(reader)
                kid = packet[:8]
                if connection.auth_key_id is None:
                    connection.auth_key_id = kid
                    self.connects[kid] += 1
                    self.open_now[kid] += 1
                    self.most_at_once[kid] = max(self.most_at_once[kid], self.open_now[kid])
                auth_key = self._keys.get(kid)
                if auth_key is None or kid in self.dead_keys:
                    self.transport_errors += 1
                    connection.send_packet(Int(AUTH_KEY_UNKNOWN))
                    await writer.drain()
                    continue
                salt, session_id, message = _open(auth_key, packet)
                task = asyncio.get_running_loop().create_task(
                    self._handle(connection, auth_key, salt, session_id, message)
                )
                connection.tasks.add(task)
                task.add_done_callback(connection.tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for task in list(connection.tasks):
                task.cancel()
            self._connections.discard(connection)
            if connection.auth_key_id is not None:
                self.open_now[connection.auth_key_id] -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _handle(
        self, connection: _Connection, auth_key: bytes, salt: int, session_id: bytes, message: Message
    ) -> None:
        kid = key_id(auth_key)
        session = self._sessions.setdefault((kid, session_id), _Session())
        out: list[tuple[TLObject[Any], bool]] = []  # (body, content-related)
        if not session.created:
            session.created = True
            self.sent["new_session_created"] += 1
            unique_id = int.from_bytes(os.urandom(8), "little", signed=True)
            out.append(
                (
                    raw.types.NewSessionCreated(
                        first_msg_id=message.msg_id, unique_id=unique_id, server_salt=session.salt
                    ),
                    False,
                )
            )
        if salt != session.salt:
            self.sent["bad_server_salt"] += 1
            out.append(
                (
                    raw.types.BadServerSalt(
                        bad_msg_id=message.msg_id,
                        bad_msg_seqno=message.seq_no,
                        error_code=48,
                        new_server_salt=session.salt,
                    ),
                    False,
                )
            )
            self._flush(connection, auth_key, session, session_id, out)
            return
        body = message.body
        if isinstance(body, raw.types.MsgsAck):
            self.acked.update(body.msg_ids)
        elif isinstance(body, raw.functions.Ping | raw.functions.PingDelayDisconnect):
            self.sent["pong"] += 1
            out.append((raw.types.Pong(msg_id=message.msg_id, ping_id=body.ping_id), False))
        else:
            out.append((raw.types.MsgsAck(msg_ids=[message.msg_id]), False))
            self._flush(connection, auth_key, session, session_id, out)
            out = []
            answer = await self._answer(kid, body)
            if answer is None:  # lost on purpose: the connection goes down with it
                connection.close()
                return
            out.append((raw.types.RpcResult(req_msg_id=message.msg_id, result=answer), True))
        if out:
            self._flush(connection, auth_key, session, session_id, out)

    async def _answer(self, kid: bytes, body: Any) -> TLObject[Any] | None:
        query = body
        while isinstance(query, _WRAPPERS):
            query = query.query
        inner = query.query if isinstance(query, raw.functions.InvokeWithoutUpdates) else query
        delay = self._delays.get(type(inner))
        if delay:
            await asyncio.sleep(delay)
        if isinstance(inner, raw.functions.help.GetConfig):
            result: Any = _config()
        else:
            result = await self._worlds.get(kid, self.world).reply(query)
        refused = isinstance(result, raw.types.RpcError | BaseException)
        lose = 0 if refused else self._lose.get(type(inner), 0)
        self.delivered.append(Delivered(kid, inner, answered=not lose))
        if lose:
            self._lose[type(inner)] = lose - 1
            return None
        if isinstance(result, BaseException):  # a test's Python exception: Telegram's side failed
            result = rpc_error(500, "INTERNAL_SERVER_ERROR")
        if isinstance(result, raw.types.RpcError):
            self.errors_sent.append(result.error_message)
        answer: TLObject[Any] = _Vector(result) if isinstance(result, list) else result
        if len(answer.write()) > GZIP_OVER:
            self.sent["gzip_packed"] += 1
            return GzipPacked(answer)
        return answer

    def _flush(
        self,
        connection: _Connection,
        auth_key: bytes,
        session: _Session,
        session_id: bytes,
        bodies: list[tuple[TLObject[Any], bool]],
    ) -> None:
        messages = [self._message(session, body, content) for body, content in bodies]
        if len(messages) == 1:
            envelope = messages[0]
        else:
            self.sent["msg_container"] += 1
            envelope = self._message(session, MsgContainer(messages), False)
        with contextlib.suppress(ConnectionError, RuntimeError):
            connection.send_packet(_seal(auth_key, session.salt, session_id, envelope))

    def _message(self, session: _Session, body: TLObject[Any], content_related: bool) -> Message:
        seq_no = session.content_sent * 2 + (1 if content_related else 0)
        if content_related:
            session.content_sent += 1
        answer = isinstance(body, raw.types.RpcResult | raw.types.Pong | raw.types.BadServerSalt)
        return Message(body, self._msg_id(answer), seq_no, len(body.write()))

    def _msg_id(self, answer: bool) -> int:
        """Odd, strictly increasing over every connection: 1 mod 4 for answers, 3 mod 4 otherwise."""
        wanted = 1 if answer else 3
        msg_id = max(int(time.time() * 2**32), self._last_msg_id + 1)
        msg_id += (wanted - msg_id) % 4
        self._last_msg_id = msg_id
        return msg_id


def _config() -> raw.types.Config:
    """Enough of Telegram's Config for a client that never leaves its DC (sent gzip_packed)."""
    now = int(time.time())
    return raw.types.Config(
        date=now,
        expires=now + 3600,
        test_mode=False,
        this_dc=2,
        dc_options=[raw.types.DcOption(id=2, ip_address="127.0.0.1", port=443)],
        dc_txt_domain_name="loopback",
        chat_size_max=200,
        megagroup_size_max=200_000,
        forwarded_count_max=100,
        online_update_period_ms=210_000,
        offline_blur_timeout_ms=5_000,
        offline_idle_timeout_ms=30_000,
        online_cloud_timeout_ms=300_000,
        notify_cloud_delay_ms=30_000,
        notify_default_delay_ms=1_500,
        push_chat_period_ms=60_000,
        push_chat_limit=2,
        edit_time_limit=172_800,
        revoke_time_limit=2**31 - 1,
        revoke_pm_time_limit=2**31 - 1,
        rating_e_decay=2_419_200,
        stickers_recent_limit=200,
        channels_read_media_period=604_800,
        call_receive_timeout_ms=20_000,
        call_ring_timeout_ms=90_000,
        call_connect_timeout_ms=30_000,
        call_packet_timeout_ms=10_000,
        me_url_prefix="https://t.me/",
        caption_length_max=1024,
        message_length_max=4096,
        webfile_dc_id=4,
    )


async def _read_packet(reader: asyncio.StreamReader) -> bytes:
    first = await reader.readexactly(1)
    length = first[0] if first != b"\x7f" else int.from_bytes(await reader.readexactly(3), "little")
    return await reader.readexactly(length * 4)


def _open(auth_key: bytes, packet: bytes) -> tuple[int, bytes, Message]:
    """Decrypt a client's packet: (salt, session id, message). x = 0 for client to server."""
    msg_key = packet[8:24]
    aes_key, aes_iv = mtproto.kdf(auth_key, msg_key, True)
    plain = aes.ige256_decrypt(packet[24:], aes_key, aes_iv)
    if sha256(auth_key[88:120] + plain).digest()[8:24] != msg_key:
        raise ConnectionError("msg_key mismatch: not encrypted with this auth key")
    salt = Long.read(BytesIO(plain[:8]))
    return salt, plain[8:16], Message.read(BytesIO(plain[16:]))


def _seal(auth_key: bytes, salt: int, session_id: bytes, message: Message) -> bytes:
    """Encrypt a message for the client: msg_key from auth_key[96:128] (x = 8, server to client)."""
    data = Long(salt) + session_id + message.write()
    padding = os.urandom(-(len(data) + 12) % 16 + 12)
    msg_key = sha256(auth_key[96:128] + data + padding).digest()[8:24]
    aes_key, aes_iv = mtproto.kdf(auth_key, msg_key, False)
    return key_id(auth_key) + msg_key + aes.ige256_encrypt(data + padding, aes_key, aes_iv)


__all__ = ["DATE", "Delivered", "MTProtoServer", "key_id"]
