"""The chaos run in short: 300 targets over two replicas, 3 SIGKILLs, a PostgreSQL restart,
10 suppressions landing mid-campaign and a SIGTERM with slow clients attached.

``bench/chaos.py`` runs as it would by hand (its own PostgreSQL, two ``python -m invite serve``
processes sharing the sandbox's JSONL record); its verdict, the last line it prints, is
checked here: nothing lost, nobody messaged twice, every uncertain message explained by a
kill or the restart (and no more of them than kills: the rest were settled by asking the
sandbox), no account acting faster than its limits, nobody messaged after their suppression,
and the SIGTERMed replica gone within its bound with no lease left.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
INITDB = Path("/usr/lib/postgresql/15/bin/initdb")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not INITDB.exists(), reason="the chaos run starts its own PostgreSQL 15"),
]


@pytest.fixture(scope="module")
def verdict() -> dict[str, Any]:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "chaos.py"),
            "--targets",
            "300",
            "--kills",
            "3",
            "--timeout",
            "120",
            "--suppressions",
            "10",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def test_nothing_is_lost_nor_sent_twice(verdict: dict[str, Any]) -> None:
    assert verdict["kills"] == 3
    assert verdict["pg_restarts"] == 1
    assert verdict["tasks"] == ["completed", "completed"]
    assert verdict["lost"] == 0
    assert verdict["duplicate_messages"] == 0
    assert verdict["succeeded_without_delivery"] == 0
    assert sum(verdict["by_status"].values()) == 300


def test_every_uncertain_message_is_explained(verdict: dict[str, Any]) -> None:
    # Each one was in flight on a replica killed while its lease was live, and its account's
    # next holder could not tell from the platform whether it went out.
    assert verdict["uncertain_unexplained"] == []
    assert verdict["uncertain"] <= verdict["kills"]


def test_no_account_acts_faster_than_its_limits(verdict: dict[str, Any]) -> None:
    assert verdict["quota_violations"] == 0, verdict["quota"]


def test_nobody_is_messaged_after_their_suppression(verdict: dict[str, Any]) -> None:
    assert verdict["suppressions"] >= 1
    assert verdict["actions_after_suppression"] == 0


def test_sigterm_with_slow_clients_attached_ends_within_the_bound(verdict: dict[str, Any]) -> None:
    sigterm = verdict["sigterm"]
    assert sigterm is not None
    assert sigterm["exit_s"] <= sigterm["bound_s"]
    assert not sigterm["forced"]
    assert sigterm["leases_left"] == 0
