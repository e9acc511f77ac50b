"""Helpers for API tests: tokens, tenants, and rows the API has no endpoint for yet.

The fixtures built on these live in ``tests/integration/conftest.py``:

    async def test_something(client: Client, headers: dict[str, str], pool: asyncpg.Pool) -> None:
        created = await client.post(f"{PREFIX}/tasks", json=invite_task(), headers=headers)
        await insert_targets(pool, created.json()["id"], 3)
        other = auth_headers(client, new_tenant())   # a second customer

Litestar's test client runs the app (and its pool) in a thread and event loop of its own and
answers each request before returning: reach the database through the ``pool`` fixture, never
``client.app.state.pool``, and test races at the service level (``asyncio.gather`` over the
client does not overlap requests).

Every test gets a new tenant id, so tests share the session database without seeing each
other's tasks (or counting against each other's limits).
"""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from invite.kernel.auth import issue_token

PREFIX = "/api/v1/invite"
Client = AsyncTestClient[Litestar]
_tenants = itertools.count(1)


def new_tenant() -> str:
    """A tenant id no other test uses (numeric, as the platform's are)."""
    return f"{uuid.uuid4().int % 10**9}{next(_tenants):04d}"


def token_for(client: Client, user_id: str, minutes: int = 30) -> str:
    secret = client.app.state.settings.jwt_secret  # tests always set JWT_SECRET
    return issue_token(secret, user_id, timedelta(minutes=minutes))


def auth_headers(client: Client, user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(client, user_id)}"}


def invite_task(**overrides: Any) -> dict[str, Any]:
    """A valid InviteTaskCreate body for an invite task."""
    return {
        "platform": "telegram",
        "task_type": "invite_to_group",
        "title": "Invite the parsed audience",
        "target_group_id": "@my_group",
        **overrides,
    }


def message_task(**overrides: Any) -> dict[str, Any]:
    """A valid InviteTaskCreate body for a message task."""
    return {
        "platform": "telegram",
        "task_type": "send_messages",
        "title": "Say hello",
        "message_template": "Hello {first_name}!",
        **overrides,
    }


async def insert_targets(pool: asyncpg.Pool, task_id: str, count: int) -> None:
    """Plain rows in invite_targets (the import feature's job in real use)."""
    await pool.execute(
        """INSERT INTO invite_targets (task_id, user_identifier, identifier_key)
           SELECT $1, 'user' || n, 'u:user' || n FROM generate_series(1, $2) AS n""",
        uuid.UUID(task_id),
        count,
    )
