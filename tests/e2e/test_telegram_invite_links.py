"""One-use invite links without the sandbox: the engine makes, sends, reads back and revokes them
through the real Telegram adapter on the installed kurigram ``Client``, against the loopback
MTProto server, with the account leased from the Integration Service over HTTP
(``tests.e2e.telegram_wire``), on a virtual clock.

One invite task offers a link to whoever privacy keeps out (``settings.privacy_fallback =
"invite_link"``, links of ``LINK_HOURS``): of five people, three are added as usual; two let
only their contacts add them to groups but accept messages (``World.forbid_invites``): Telegram
leaves them out of the add (a ``MissingInvitee``). Each gets one message with a link of their
own (``messages.exportChatInvite``, ``usage_limit`` 1, the expiry). One opens it a minute after
the message went out (the test reads the link from the text the server received and calls
``World.join_by_link``): the watcher reads the join back (``messages.getChatInviteImporters``)
and the person becomes ``joined_via_link``, keeping the message's time. The other never does: once the link has run out it
is revoked on the wire (``messages.editExportedChatInvite``) and the person is ``link_expired``.
A long task of lower priority keeps the account leased (the watcher reads only the links of the
accounts held), and the watcher reads every ``WATCH`` seconds.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
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
    wait_until,
)
from tests.integration.test_integration_client import TENANT, Account, secret
from tests.mtproto.server import MTProtoServer
from tests.mtproto.world import World
from tests.unit.telegram.conftest import API_HASH, API_ID

ALPHA = "0a1b2c3d-0000-4000-8000-00000000000a"
GROUP, CHANNEL_ID = "links_group", 900
TEMPLATE = "Hi {first_name}, join us here: {invite_link}"
LINK_HOURS = 2  # more than the hour links.py keeps a saved link for: each link is made once
WATCH = 60.0  # INVITE_LINK_POLL_SECONDS, its least
PEOPLE, LATER = 5, 40  # the task with the links; the long one keeping the account held
JOINER, UNUSED = "inv2", "inv4"  # privacy keeps them out of the add; one opens their link
PRIVATE = {JOINER, UNUSED}
URL = re.compile(r"https://t\.me/\+\S+")


def person_id(username: str) -> int:
    """inv<n> (the task's people) and later<n> (the long task's), as the harness names them."""
    return (5000 if username.startswith("inv") else 7000) + int(
        username.removeprefix("inv").removeprefix("later")
    )


def unix(at: datetime) -> int:
    return int(at.timestamp())


@pytest.mark.slow
async def test_links_for_people_privacy_keeps_out_through_kurigram(
    fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loopback = MTProtoServer()
    await loopback.start()
    session = platform_session(os.urandom(256), loopback.port)
    world = World()
    for name in [f"inv{n}" for n in range(1, PEOPLE + 1)] + [f"later{n}" for n in range(1, LATER + 1)]:
        world.add_person(person_id(name), username=name)
    world.add_group(CHANNEL_ID, username=GROUP)
    world.forbid_invites(person_id(JOINER), premium_would_allow_invite=True)
    world.forbid_invites(person_id(UNUSED))
    loopback.add_key(parse_session(session).auth_key, world)
    clock = VirtualClock()
    seen: list[datetime] = []  # when the test saw the message to the joiner out
    joined_at: list[datetime] = []  # when the joiner opened the link in it

    def sent_to(name: str) -> list[str]:
        """The texts of the messages Telegram delivered to ``name``."""
        sent = loopback.calls(raw.functions.messages.SendMessage)
        return [m.message for m in sent if m.peer.user_id == person_id(name)]

    with FakeServer() as server:
        platform = Platform(
            server, {ALPHA: session}, clock, [Account(ALPHA, "+79123450001", "alpha_account")]
        )
        settings = engine_settings(
            fresh_database_url,
            integration_service_url=server.url,
            telegram_driver="telegram",
            telegram_call_timeout_seconds=1.0,
            invite_link_poll_seconds=WATCH,
        )
        strategies = TelegramFactory.from_settings(
            settings,
            api_id=API_ID,
            api_hash=API_HASH,
            client_factory=functools.partial(loopback_client, loopback),
            clock=clock,
        )
        async with engine_pool(settings) as pool, open_accounts(settings, secret) as accounts:
            task = await make_task(
                pool,
                targets=PEOPLE,
                user_id=TENANT,
                group=GROUP,
                prefix="inv",
                priority=1,
                template=TEMPLATE,
                settings={"privacy_fallback": "invite_link", "invite_link_hours": LINK_HOURS},
            )
            await make_task(pool, targets=LATER, user_id=TENANT, group=GROUP, prefix="later", priority=3)
            # the harness makes sandbox tasks
            await pool.execute("UPDATE invite_tasks SET driver = 'telegram'")

            async def settled() -> bool:
                with clock.busy():
                    rows = {r["identifier_key"]: r for r in await _targets(pool, task)}
                    status = await pool.fetchval("SELECT status FROM invite_tasks WHERE id = $1", task)
                if rows[f"u:{JOINER}"]["link_state"] == "sent" and not joined_at:
                    # the message is out, and recorded: a while later the person opens the link in
                    # it (as Telegram delivered it), at a whole second
                    if not seen:
                        seen.append(clock.now())
                    elif clock.now() > seen[0]:
                        [text] = sent_to(JOINER)
                        [url] = URL.findall(text)
                        joined_at.append(datetime.fromtimestamp(math.ceil(clock.now().timestamp()), UTC))
                        assert world.join_by_link(url, person_id(JOINER), unix(joined_at[0]))
                return (
                    status == "completed"
                    and rows[f"u:{JOINER}"]["joined_at"] is not None
                    and rows[f"u:{UNUSED}"]["revoked_at"] is not None
                )

            engine = build_engine(pool, settings, clock, strategies=strategies, accounts=accounts)
            await engine.start()
            try:
                await wait_until(clock, settled, step=WATCH, limit=2 * 86400.0, real_timeout=30.0)
            finally:
                await engine.stop()
            rows = {r["identifier_key"]: r for r in await _targets(pool, task)}
            log = [r for r in await execution_log(pool) if r["task_id"] == task]
            offered = await pool.fetch(
                "SELECT details->>'detail' AS detail FROM invite_execution_logs"
                " WHERE task_id = $1 AND status = 'link_offered'",
                task,
            )
    await asyncio.sleep(0.1)  # the server sees the last socket close
    left_open = sum(loopback.open_now.values())
    await loopback.close()
    assert world.unexpected == []
    assert left_open == 0  # the account's client closed, its lease given back
    assert platform.accounts[ALPHA].locked_by is None

    # the people the add reached are in, as usual; the two privacy kept out got a link each
    added = {f"inv{n}" for n in range(1, PEOPLE + 1)} - PRIVATE
    for name in added:
        assert (rows[f"u:{name}"]["status"], rows[f"u:{name}"]["outcome"]) == ("succeeded", "success")
        assert rows[f"u:{name}"]["url"] is None
    joiner, unused = rows[f"u:{JOINER}"], rows[f"u:{UNUSED}"]
    assert (joiner["status"], joiner["outcome"], joiner["link_state"]) == (
        "succeeded",
        "joined_via_link",
        "joined",
    )
    assert joiner["joined_at"] == joined_at[0]  # the importer's date, as Telegram gave it
    [message_logged] = [
        r["created_at"] for r in log if r["status"] == "link_sent" and r["identifier_key"] == f"u:{JOINER}"
    ]
    assert joiner["processed_at"] == message_logged < joined_at[0]  # the target keeps its message's time
    assert joiner["revoked_at"] is None
    assert (unused["status"], unused["outcome"], unused["link_state"], unused["error_message"]) == (
        "skipped",
        "link_expired",
        "expired",
        "the one-use invite link ran out unused: revoked",
    )
    assert unused["joined_at"] is None
    # revoked at a watch soon after it ran out, not before (the virtual clock moves on while a
    # call is on the wire: the watches are WATCH apart and a little more)
    assert unused["expires_at"] <= unused["revoked_at"] < unused["expires_at"] + timedelta(seconds=10 * WATCH)
    assert {joiner["maker"], unused["maker"]} == {ALPHA}

    # each link made for one person, until the task's expiry, as Telegram was asked
    exports = loopback.calls(raw.functions.messages.ExportChatInvite)
    assert len(exports) == 2
    for export in exports:
        assert export.usage_limit == 1
        assert isinstance(export.peer, raw.types.InputPeerChannel)
        assert export.peer.channel_id == CHANNEL_ID
    for row in (joiner, unused):
        assert row["expires_at"] == row["created_at"] + timedelta(hours=LINK_HOURS)
    assert sorted(e.expire_date for e in exports) == sorted(unix(r["expires_at"]) for r in (joiner, unused))
    assert set(world.invite_links) == {joiner["url"], unused["url"]}  # the invite_links rows hold them
    assert [name for name, r in rows.items() if r["url"] is not None] == [f"u:{JOINER}", f"u:{UNUSED}"]

    # each of the two received exactly one message, with their own link; nobody else got one
    sent = loopback.calls(raw.functions.messages.SendMessage)
    assert Counter(m.peer.user_id for m in sent) == {person_id(JOINER): 1, person_id(UNUSED): 1}
    for name, row in ((JOINER, joiner), (UNUSED, unused)):
        assert sent_to(name) == [f"Hi Name{name[3:]}, join us here: {row['url']}"]

    # the join was read back from Telegram; only the unused link was revoked, and it was
    asked = {q.link for q in loopback.calls(raw.functions.messages.GetChatInviteImporters)}
    assert asked == {joiner["url"], unused["url"]}
    edits = loopback.calls(raw.functions.messages.EditExportedChatInvite)
    assert [(e.link, e.revoked) for e in edits] == [(unused["url"], True)]
    assert world.invite_links[unused["url"]].revoked
    assert not world.invite_links[joiner["url"]].revoked
    assert world.invite_links[joiner["url"]].importers == [(person_id(JOINER), unix(joined_at[0]))]
    assert not world.join_by_link(unused["url"], person_id(UNUSED), unix(clock.now()))
    assert world.members[CHANNEL_ID] >= {person_id(name) for name in added | {JOINER}}
    assert person_id(UNUSED) not in world.members[CHANNEL_ID]

    # the execution log tells each one's story, in order; the join at its own time
    story: dict[str, list[tuple[str, str]]] = {}
    for entry in log:
        story.setdefault(entry["identifier_key"], []).append((entry["action"], entry["status"]))
    assert [r["created_at"] for r in log if r["status"] == "joined_via_link"] == joined_at
    assert story == {f"u:{name}": [("invite_to_group", "success")] for name in added} | {
        f"u:{JOINER}": [
            ("invite_to_group", "link_offered"),
            ("send_invite_link", "link_sent"),
            ("invite_link", "joined_via_link"),
        ],
        f"u:{UNUSED}": [
            ("invite_to_group", "link_offered"),
            ("send_invite_link", "link_sent"),
            ("invite_link", "link_expired"),
        ],
    }
    # Telegram left them out of the add without an error (layer 166's MissingInvitee)
    assert sorted(r["detail"] for r in offered) == [
        "MISSING_INVITEE: not added, their privacy settings keep them out",
        "MISSING_INVITEE: not added, their privacy settings let only contacts and Premium users add them",
    ]


async def _targets(pool: asyncpg.Pool, task_id: Any) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT g.identifier_key, g.status, g.outcome, g.link_state, g.processed_at, g.error_message,
                  l.url, l.expires_at, l.created_at, l.joined_at, l.revoked_at, l.account_id AS maker
           FROM invite_targets g LEFT JOIN invite_links l ON l.target_id = g.id
           WHERE g.task_id = $1 ORDER BY g.seq""",
        task_id,
    )
