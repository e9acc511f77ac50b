"""A campaign without the sandbox: the engine drives the real Telegram adapter and the real
Integration Service client over a real socket, and everything it did shows in the execution log.

- Accounts come from ``IntegrationClient`` (made by ``invite.wiring.open_accounts``) against a
  local HTTP server answering as PLATFORM-CONTRACTS.md says: list, allocate (sessions made by
  the real ``telethon`` package, base64-wrapped as the platform stores them, and one native
  Pyrogram session), release, handle-error.
- Actions go through ``TelegramFactory``/``TelegramStrategy`` on the installed kurigram
  ``Client``, unchanged, to the loopback MTProto server (``tests.mtproto.server``): each
  account's auth key is known to it, with Telegram as that account sees it (one world of
  people and one group, shared). Errors are pyrogram's real classes, raised by pyrogram's own
  ``RPCError.raise_it`` from the ``rpc_error`` the server sent.
- One invite task and one message task of 10 people each, three accounts: one dies (its session
  is revoked: AUTH_KEY_UNREGISTERED) at its first action; the first invite of one person meets a
  FloodWait, the first message to another a PeerFlood; some people are private, already in the
  group, or not on Telegram; one account meets a FloodWait at connect. The answer to one
  message is lost (the server carries it out and drops the socket), and later every connection
  is dropped at once. Nobody gets a message twice (the server's own record), no key is ever
  connected twice, every account is closed at the end.
  The engine runs on a virtual clock (hours of pacing in seconds).
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import asyncpg
import pyrogram
import pytest
from pyrogram import raw

from invite.kernel.clock import VirtualClock
from invite.platforms.telegram import TelegramFactory
from invite.platforms.telegram.sessions import parse_session
from invite.wiring import build_engine, open_accounts
from tests.e2e.telegram_wire import Platform, loopback_client, platform_session
from tests.fakeserver import FakeServer
from tests.integration.engine.harness import (
    engine_pool,
    engine_settings,
    execution_log,
    make_task,
    wait_for_status,
)
from tests.integration.test_integration_client import TENANT, Account, secret
from tests.mtproto.server import MTProtoServer, key_id
from tests.mtproto.world import World, rpc_error
from tests.unit.telegram.conftest import API_HASH, API_ID
from tests.unit.telegram.test_sessions import pyrogram_exported

ALPHA, BETA, DEAD = (
    "0a1b2c3d-0000-4000-8000-00000000000a",
    "0a1b2c3d-0000-4000-8000-00000000000b",
    "0a1b2c3d-0000-4000-8000-00000000000d",
)
ACCOUNTS = (
    Account(ALPHA, "+79123450001", "alpha_account"),
    Account(BETA, "+79123450002", "beta_account"),
    Account(DEAD, "+79123450003", "dead_account"),
)
GROUP = "campaign_group"
PEOPLE = 10
FLOOD_SECONDS = 120
TEMPLATE = "Hello {first_name}!"

# who the people are (invitees inv1..inv10, recipients msg1..msg10, as the harness names them)
PRIVATE, MEMBER, NOBODY, FLOODED = "inv6", "inv7", "inv8", "inv9"
FLAGGED, NOBODY_TO_WRITE = "msg3", "msg8"
INVITEES = {f"inv{n}" for n in range(1, PEOPLE + 1)}
RECIPIENTS = {f"msg{n}" for n in range(1, PEOPLE + 1)}
SESSION_USES = (  # every call an action starts with: a revoked session fails at the first
    raw.functions.channels.GetParticipant,
    raw.functions.contacts.ResolveUsername,
    raw.functions.channels.InviteToChannel,
    raw.functions.messages.SendMessage,
    raw.functions.users.GetUsers,
)


DROP_AFTER = 4  # messages delivered before every connection is dropped at once
CONNECT_FLOOD_SECONDS = 300  # BETA's first connect


def person_id(username: str) -> int:
    return (5000 if username.startswith("inv") else 6000) + int(username[3:])


class Telegram:
    """What Telegram answers about the people, whichever account asks: one loopback server,
    a world per account (its contacts, its sent messages) sharing the group's members."""

    def __init__(self, server: MTProtoServer) -> None:
        self.server = server
        self.flood_waited = False  # the first invite of FLOODED meets a FloodWait
        self.spam_flagged = False  # the first message to FLAGGED meets a PeerFlood
        self.messages: dict[int, list[str]] = {}  # person → texts received
        self.members: dict[int, set[int]] = {900: {person_id(MEMBER)}}

    def account(self, session: str, *, revoked: bool = False, flood_at_connect: bool = False) -> World:
        world = World()
        world.members = self.members
        for n in range(1, PEOPLE + 1):
            for name in (f"inv{n}", f"msg{n}"):
                if name not in (NOBODY, NOBODY_TO_WRITE):
                    world.add_person(person_id(name), username=name)
        world.add_group(900, username=GROUP)
        world.script(raw.functions.channels.InviteToChannel, lambda query: self._invite(world, query))
        world.script(raw.functions.messages.SendMessage, lambda query: self._send(world, query))
        if flood_at_connect:  # its first connect meets a FloodWait, the next one (after it) none
            waits = [rpc_error(420, f"FLOOD_WAIT_{CONNECT_FLOOD_SECONDS}")]
            world.script(
                raw.functions.users.GetFullUser,
                lambda query: waits.pop() if waits else world._get_full_user(query),
            )
        if revoked:  # the session was good at connect, and is revoked by its first action
            for function in SESSION_USES:
                world.script(function, rpc_error(401, "AUTH_KEY_UNREGISTERED"))
        self.server.add_key(parse_session(session).auth_key, world)
        return world

    def client(self, **kwargs: Any) -> pyrogram.Client:
        return loopback_client(self.server, **kwargs)

    def _invite(self, world: World, query: Any) -> Any:
        [invitee] = query.users
        if invitee.user_id == person_id(PRIVATE):
            return rpc_error(403, "USER_PRIVACY_RESTRICTED")
        if invitee.user_id == person_id(FLOODED) and not self.flood_waited:
            self.flood_waited = True
            return rpc_error(420, f"FLOOD_WAIT_{FLOOD_SECONDS}")
        return world._invite(query)  # a current member: no error, nobody added (as Telegram does)

    def _send(self, world: World, query: Any) -> Any:
        if query.peer.user_id == person_id(FLAGGED) and not self.spam_flagged:
            self.spam_flagged = True
            return rpc_error(400, "PEER_FLOOD")
        answer = world._send_message(query)  # RANDOM_ID_DUPLICATE for a random_id sent before
        if not isinstance(answer, raw.types.RpcError):
            self.messages.setdefault(query.peer.user_id, []).append(query.message)
            if sum(map(len, self.messages.values())) == DROP_AFTER:
                asyncio.get_running_loop().call_later(0.05, self.server.drop_connections)
        return answer


@pytest.mark.slow
async def test_a_campaign_through_kurigram_and_the_integration_service(
    fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loopback = MTProtoServer()
    await loopback.start()
    telegram = Telegram(loopback)
    sessions = {
        ALPHA: platform_session(os.urandom(256), loopback.port),
        BETA: await pyrogram_exported(4, os.urandom(256), user_id=0),
        DEAD: platform_session(os.urandom(256), loopback.port),
    }
    telegram.account(sessions[ALPHA])
    telegram.account(sessions[BETA], flood_at_connect=True)
    telegram.account(sessions[DEAD], revoked=True)
    keys = {account_id: key_id(parse_session(session).auth_key) for account_id, session in sessions.items()}
    loopback.lose_answer(raw.functions.messages.SendMessage)  # the first message that goes out
    clock = VirtualClock()

    with FakeServer() as server:
        platform = Platform(server, sessions, clock, ACCOUNTS)
        settings = engine_settings(
            fresh_database_url,
            integration_service_url=server.url,
            telegram_driver="telegram",
            telegram_call_timeout_seconds=1.0,
        )
        strategies = TelegramFactory.from_settings(
            settings, api_id=API_ID, api_hash=API_HASH, client_factory=telegram.client, clock=clock
        )
        async with engine_pool(settings) as pool, open_accounts(settings, secret) as accounts:
            invites = await make_task(pool, targets=PEOPLE, user_id=TENANT, group=GROUP, prefix="inv")
            messages = await make_task(
                pool,
                targets=PEOPLE,
                user_id=TENANT,
                task_type="send_messages",
                template=TEMPLATE,
                prefix="msg",
            )
            await pool.execute(
                "UPDATE invite_tasks SET driver = 'telegram'"
            )  # the harness makes sandbox tasks
            engine = build_engine(pool, settings, clock, strategies=strategies, accounts=accounts)
            await engine.start()
            try:
                await wait_for_status(pool, clock, invites, "completed")
                await wait_for_status(pool, clock, messages, "completed")
            finally:
                await engine.stop()
            log = await execution_log(pool)
            details = await _details(pool)
            finals = await _final_states(pool)
            dead_account = await pool.fetchrow(
                "SELECT status, status_reason FROM invite_accounts WHERE id = $1", DEAD
            )
    await asyncio.sleep(0.1)  # the server sees the last sockets close
    left_open = {account_id: loopback.open_now[key] for account_id, key in keys.items()}
    await loopback.close()

    # every outcome shows in the execution log, for the person it belongs to
    outcomes = {(row["identifier_key"], row["status"]) for row in log}
    assert {
        ("u:inv1", "success"),
        (f"u:{PRIVATE}", "privacy_restricted"),
        (f"u:{MEMBER}", "already_member"),
        (f"u:{NOBODY}", "not_found"),
        (f"u:{FLOODED}", "flood_wait"),
        (f"u:{FLOODED}", "success"),
        (f"u:{FLAGGED}", "peer_flood"),
        (f"u:{FLAGGED}", "success"),
        (f"u:{NOBODY_TO_WRITE}", "not_found"),
    } <= outcomes
    assert {row["account_id"] for row in log} == {ALPHA, BETA, DEAD}  # Telethon and Pyrogram sessions alike
    [death] = [row for row in log if row["status"] == "account_dead"]
    assert death["account_id"] == DEAD
    assert {row["status"] for row in log if row["account_id"] == DEAD} == {"account_dead"}
    assert details["flood_wait"] == {"detail": "FLOOD_WAIT_X", "seconds": FLOOD_SECONDS}
    assert details["privacy_restricted"]["detail"] == "USER_PRIVACY_RESTRICTED"
    assert details["account_dead"]["detail"] == "AUTH_KEY_UNREGISTERED"
    assert {
        f"FLOOD_WAIT_{FLOOD_SECONDS}",
        "PEER_FLOOD",
        "USER_PRIVACY_RESTRICTED",
        "USERNAME_NOT_OCCUPIED",
        "AUTH_KEY_UNREGISTERED",
    } <= set(loopback.errors_sent)  # read back by pyrogram's own error classes

    # the people end where they belong (already in the group counts as done); the message whose
    # answer was lost was asked again under its random_id (a duplicate: delivered); each message
    # went out once, rendered
    [lost] = [d.query.peer.user_id for d in loopback.delivered if not d.answered]
    lost_name = next(name for name in RECIPIENTS if person_id(name) == lost)
    invited = INVITEES - {PRIVATE, NOBODY, MEMBER}
    written = RECIPIENTS - {NOBODY_TO_WRITE}
    skipped = {PRIVATE, NOBODY, NOBODY_TO_WRITE}
    assert finals == {f"u:{name}": "succeeded" for name in invited | written | {MEMBER}} | {
        f"u:{name}": "skipped" for name in skipped
    }
    assert (f"u:{lost_name}", "success") in outcomes
    assert "RANDOM_ID_DUPLICATE" in loopback.errors_sent
    assert loopback.acked  # the clients acknowledged the server's answers (msgs_ack, ten at a time)
    assert telegram.messages == {person_id(name): [f"Hello Name{name[3:]}!"] for name in written}
    assert telegram.members[900] == {person_id(name) for name in invited | {MEMBER}}

    # one connection per key at a time, a new one after each drop, none left at the end
    assert all(loopback.most_at_once[key] == 1 for key in keys.values())
    assert left_open == {ALPHA: 0, BETA: 0, DEAD: 0}
    assert (
        loopback.connects[keys[ALPHA]] + loopback.connects[keys[BETA]] > 2
    )  # they came back after the drops

    # the dead account is blocked here and reported to the platform in its words
    assert dead_account is not None
    assert dead_account["status"] == "blocked"
    assert "AUTH_KEY_UNREGISTERED" in dead_account["status_reason"]
    reports = [
        (r.params["account_id"], r.json())
        for r in server.requests_to("POST", "/api/v1/account-manager/handle-error/")
    ]
    by_type: dict[str, list[tuple[str, str]]] = {}
    for account_id, body in reports:
        by_type.setdefault(body["error_type"], []).append((account_id, body["error_message"]))
    assert [account_id for account_id, _ in by_type["auth_key_error"]] == [DEAD]
    flooded_by = next(row["account_id"] for row in log if row["status"] == "flood_wait")
    waits = []
    for account_id, message in by_type["flood_wait"]:
        first_number = re.search(r"\d+", message)  # the platform takes the first number as the seconds
        assert first_number is not None
        waits.append((account_id, int(first_number[0])))
    # the invite's FloodWait, and BETA's at connect (it was not leased again inside that one)
    assert sorted(waits) == sorted([(flooded_by, FLOOD_SECONDS), (BETA, CONNECT_FLOOD_SECONDS)])
    assert len(by_type["flood_wait"]) == 2
    assert [a for a, _ in by_type["peer_flood"]] == [
        next(row["account_id"] for row in log if row["status"] == "peer_flood")
    ]
    assert len(reports) == 4

    # every lease was released, with what the account did under it
    allocated = [r.json() for r in server.requests_to("POST", "/api/v1/account-manager/allocate")]
    assert {a["preferred_account_id"] for a in allocated} == {
        account_id for account_id, _ in platform.releases
    }
    assert all(account.locked_by is None for account in platform.accounts.values())
    usage = [stats["usage_stats"] for _, stats in platform.releases]
    assert sum(u["invites_sent"] for u in usage) == len(invited)
    assert sum(u["messages_sent"] for u in usage) == len(written)
    # the death went through handle-error: the release does not report it again
    [dead_release] = [stats["usage_stats"] for account_id, stats in platform.releases if account_id == DEAD]
    assert (dead_release["success"], dead_release["error_type"]) == (True, None)
    assert platform.accounts[DEAD].error_count == 1


async def _details(pool: asyncpg.Pool) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch("SELECT status, details FROM invite_execution_logs")
    return {
        row["status"]: {k: v for k, v in row["details"].items() if k in ("detail", "seconds")} for row in rows
    }


async def _final_states(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT identifier_key, status FROM invite_targets")
    return {row["identifier_key"]: row["status"] for row in rows}
