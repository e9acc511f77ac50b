"""Invariants read back from the execution log (the engine's own account of what it did)."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import asyncpg

DAY = timedelta(days=1)
ACTED = ("success", "already_member")  # the person was reached (or already there)


def quota_breaches(log: list[asyncpg.Record], quota: int, min_pause: float) -> list[str]:
    """Every action that comes sooner than the pause after the account's previous one, or is the
    (quota+1)-th in any sliding 24 h window."""
    times: defaultdict[str, list[datetime]] = defaultdict(list)
    for row in log:
        times[row["account_id"]].append(row["created_at"])
    breaches = []
    for account, stamps in times.items():
        stamps.sort()
        for before, after in itertools.pairwise(stamps):
            if after - before < timedelta(seconds=min_pause):
                breaches.append(f"{account}: {after - before} between {before} and {after}")
        for i in range(quota, len(stamps)):
            if stamps[i] - stamps[i - quota] < DAY:
                breaches.append(f"{account}: {quota + 1} actions from {stamps[i - quota]} to {stamps[i]}")
    return breaches


def reached_twice(log: list[asyncpg.Record]) -> list[str]:
    """People the log says were reached more than once in one task."""
    counts = Counter((row["task_id"], row["identifier_key"]) for row in log if row["status"] in ACTED)
    return [f"{key} reached {n} times" for key, n in counts.items() if n > 1]
