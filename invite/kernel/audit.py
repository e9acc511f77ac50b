"""The audit log: who did what to which resource, through which request.

Call ``record`` on the connection that makes the change, inside its transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from invite.kernel.db import DbConnection
from invite.kernel.sql import Sql
from invite.observability.request_context import current_request_id


async def record(
    conn: DbConnection,
    sql_dir: str,
    *,
    user_id: str,
    action: str,
    resource: str,
    resource_id: str | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    await Sql(sql_dir).execute(
        conn,
        "audit.record",
        user_id=user_id,
        action=action,
        resource=resource,
        resource_id=resource_id,
        request_id=current_request_id(),
        details=dict(details or {}),
    )
