"""What a connected Telegram account costs a replica: N real kurigram clients on the loopback server.

Run: ``.venv/bin/python bench/clients.py [--quick] [--idle 20]``. The last printed line is one
JSON object; progress goes to stderr.

For each N (1, 100, 1000; ``--quick``: 1 and 100) this process connects N accounts through the
adapter (``TelegramFactory`` → the installed, unchanged ``pyrogram.Client``, each with its own
Telethon session and auth key) to the loopback MTProto server of the tests, which runs in a
child process so its own cost is not counted. Then, with every client connected and idle (only
kurigram's pings, every 5 s), it measures over ``--idle`` seconds:

- ``rss_mb``: this process's resident memory, against the same process before any client
  (the baseline, measured in the same run): ``rss_mb_per_account`` is the difference over N;
- ``idle_cpu_pct``: CPU time this process used over the idle window, in % of one core;
  ``idle_cpu_pct_per_account`` is that over N;
- ``threads``: threads of this process (every kurigram transport starts its own
  ``ThreadPoolExecutor`` for AES: one thread per connected account).

Then it closes every client and checks with the server that no connection is left.
The per-account figures reported on the last line are those of the largest N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from invite.platforms.base import AccountData, OutcomeKind, RateLimits  # noqa: E402
from invite.platforms.telegram import TelegramFactory  # noqa: E402
from tests.unit.telegram.conftest import API_HASH, API_ID, telethon_session  # noqa: E402

AT_ONCE = 50  # clients connecting side by side
LIMITS = RateLimits(daily_quota=40, daily_quota_with_link=10, min_pause_seconds=15.0)

# The child: the loopback server with the bench's keys; prints its port, then "open <n>" per ask.
SERVER = """
import asyncio, sys
from pathlib import Path
from tests.mtproto.server import MTProtoServer

async def main() -> None:
    server = MTProtoServer()
    for key in Path(sys.argv[1]).read_bytes().split(b"--key--"):
        if key:
            server.add_key(key)
    print(await server.start(), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        print("open", sum(server.open_now.values()), flush=True)

asyncio.run(main())
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LoopbackServer:
    """The test server in a child process, answering for ``keys``."""

    def __init__(self, keys: list[bytes]) -> None:
        self._file = tempfile.NamedTemporaryFile(delete=False)  # noqa: SIM115  (removed in close)
        self._file.write(b"--key--".join(keys))
        self._file.close()
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, self._file.name],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def open_connections(self) -> int:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline().split()[1])

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        os.unlink(self._file.name)


async def measure(n: int, idle_seconds: float) -> dict[str, float | int]:
    keys = [os.urandom(256) for _ in range(n)]
    server = LoopbackServer(keys)
    try:
        factory = TelegramFactory(API_ID, API_HASH, limits=LIMITS)
        accounts = [
            AccountData(
                id=f"bench-{i}",
                user_id="bench",
                session=telethon_session(address="127.0.0.1", port=server.port, key=key),
            )
            for i, key in enumerate(keys)
        ]
        strategies = [factory.for_account(account) for account in accounts]
        before_rss, before_threads = rss_mb(), threading.active_count()
        at_once = asyncio.Semaphore(AT_ONCE)

        async def connect(i: int) -> bool:
            async with at_once:
                outcome = await strategies[i].initialize_client(accounts[i])
                return outcome.kind is OutcomeKind.SUCCESS

        started = time.monotonic()
        connected = sum(await asyncio.gather(*(connect(i) for i in range(n))))
        connect_s = time.monotonic() - started
        log(f"N={n}: {connected} connected in {connect_s:.1f} s; idle for {idle_seconds:g} s")
        cpu_before, wall_before = cpu_seconds(), time.monotonic()
        await asyncio.sleep(idle_seconds)
        idle_cpu_pct = 100 * (cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
        after_rss, threads = rss_mb(), threading.active_count()
        open_during = server.open_connections()
        await asyncio.gather(*(strategy.close() for strategy in strategies))
        await asyncio.sleep(0.5)
        open_after = server.open_connections()
        result: dict[str, float | int] = {
            "n": n,
            "connected": connected,
            "connect_s": round(connect_s, 2),
            "rss_mb_before": round(before_rss, 1),
            "rss_mb": round(after_rss, 1),
            "rss_mb_per_account": round((after_rss - before_rss) / n, 3),
            "idle_cpu_pct": round(idle_cpu_pct, 2),
            "idle_cpu_pct_per_account": round(idle_cpu_pct / n, 4),
            "threads_before": before_threads,
            "threads": threads,
            "open_on_server": open_during,
            "open_after_close": open_after,
        }
        log(json.dumps(result))
        return result
    finally:
        server.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="N = 1 and 100 only")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of the idle window")
    args = parser.parse_args()
    sizes = (1, 100) if args.quick else (1, 100, 1000)
    runs = [await measure(n, args.idle) for n in sizes]
    largest = runs[-1]
    print(
        json.dumps(
            {
                "bench": "clients",
                "runs": runs,
                "rss_mb_per_account": largest["rss_mb_per_account"],
                "idle_cpu_pct_per_account": largest["idle_cpu_pct_per_account"],
                "threads_per_account": round(
                    (int(largest["threads"]) - int(largest["threads_before"])) / int(largest["n"]), 2
                ),
                "connections_left_after_close": sum(int(r["open_after_close"]) for r in runs),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
