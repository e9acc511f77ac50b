"""Audience import benchmark: a 10 MB CSV and a 10 MB XLSX, parsed, validated and COPYed.

Both files are the Parsing Service's export of a realistic audience (PLATFORM-CONTRACTS.md
columns; most people with a username and a user id, some with an id only, a few with only a
phone, ~1% bots, ~1% duplicates, ~0.5% broken usernames). Each timed run is the service's own
path from the uploaded bytes to committed rows — ``read_file`` then ``run_import`` (column
detection, normalisation, duplicate/suppression/task checks, COPY, import record and audit
row, one transaction) — into a fresh task of a scratch database this script creates and
drops, with ``max_targets_per_task`` lifted. A narrower CSV (a Telegram member scraper's
export, more rows per MB) is timed too, for reference.

The baseline is pandas reading the same bytes (``read_csv``; ``read_excel`` with openpyxl),
reading only, right after each of our runs so both see the same load (the machine is shared).
Ratios are pandas time / ours, the median of the per-run ratios; times are medians of
``--runs`` runs. The last printed line is one JSON object.

    python bench/import.py [--dsn postgresql://postgres@127.0.0.1:5432/postgres] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import openpyxl
import pandas as pd
import polars as pl

from invite.audience.readers import ReadLimits, read_file
from invite.audience.schemas import Source
from invite.audience.service import ImportSource, run_import
from invite.kernel.db import create_pool
from invite.kernel.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.scratch import run_cleanly, scratch_database

TARGET_BYTES = 10_000_000  # "10 MB", under the 10 MiB upload limit
TENANT = "bench-tenant"
PARSING_TASK = "6f1c2b3a-0000-4000-8000-00000000beef"
FIRST = ["Алексей", "Мария", "Иван", "Ольга", "Дмитрий", "Анна", "Sergey", "Elena", "Павел", "Юлия"]
LAST = ["Иванов", "Смирнова", "Кузнецов", "Попова", "Васильев", "Petrova", "Соколов", "Морозова"]
XLSX_HEADERS = {
    "id": "ID",
    "task_id": "Task ID",
    "platform": "Platform",
    "platform_id": "Platform ID",
    "username": "Username",
    "display_name": "Display Name",
    "author_phone": "Phone",
    "created_at": "Created At",
    "specific_user_id": "Extra user_id",
    "specific_first_name": "Extra first_name",
    "specific_last_name": "Extra last_name",
    "specific_is_bot": "Extra is_bot",
    "specific_user_type": "Extra user_type",
    "specific_language_code": "Extra language_code",
}


def audience(rows: int, seed: int = 7) -> pl.DataFrame:
    """The Parsing Service's CSV export columns for ``rows`` people."""
    rnd = random.Random(seed)
    records: dict[str, list[Any]] = {name: [] for name in XLSX_HEADERS}
    for i in range(rows):
        roll = rnd.random()
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        phone_only = roll < 0.05
        bot = 0.05 <= roll < 0.06
        user_id = "" if phone_only else str(100_000_000 + i)
        if phone_only:
            username = ""
        elif roll < 0.07:
            username = f"user_{rnd.randrange(max(i, 1)):07d}"  # someone already in the file
        elif roll < 0.075:
            username = f"bad name {i}"
        elif roll < 0.75:
            username = f"user_{i:07d}" if not bot else f"helper_{i}_bot"
        else:
            username = ""  # hidden: only the id
        records["id"].append(i + 1)
        records["task_id"].append(PARSING_TASK)
        records["platform"].append("telegram")
        records["platform_id"].append(user_id)
        records["username"].append(username)
        records["display_name"].append(f"{first} {last}")
        records["author_phone"].append(f"+7 9{rnd.randrange(10**9):09d}" if phone_only else "")
        records["created_at"].append(f"2026-01-05T10:{i % 60:02d}:{i % 59:02d}.{i % 999999:06d}")
        records["specific_user_id"].append(user_id)
        records["specific_first_name"].append(first)
        records["specific_last_name"].append(last)
        records["specific_is_bot"].append("True" if bot else "False")
        records["specific_user_type"].append("bot" if bot else "member")
        records["specific_language_code"].append("ru")
    return pl.DataFrame(records)


def scraper(rows: int, seed: int = 11) -> pl.DataFrame:
    """A Telegram member scraper's export: username,user id,access hash,name,group,group id."""
    rnd = random.Random(seed)
    return pl.DataFrame(
        {
            "username": [f"member_{i:07d}" if rnd.random() < 0.8 else "" for i in range(rows)],
            "user id": [str(200_000_000 + i) for i in range(rows)],
            "access hash": [str(rnd.getrandbits(63) - 2**62) for _ in range(rows)],
            "name": [f"{rnd.choice(FIRST)} {rnd.choice(LAST)}" for _ in range(rows)],
            "group": ["Клуб любителей бенчмарков"] * rows,
            "group id": ["1001234567890"] * rows,
        }
    )


def csv_of(make: Callable[[int], pl.DataFrame]) -> tuple[bytes, int]:
    """A CSV of about TARGET_BYTES: rows sized from a sample, then trimmed to fit."""
    sample = make(2000).write_csv().encode()
    rows = int(2000 * TARGET_BYTES / len(sample))
    data = make(rows).write_csv().encode()
    while len(data) > TARGET_BYTES:
        rows = int(rows * 0.995)
        data = make(rows).write_csv().encode()
    return data, rows


def _xlsx(frame: pl.DataFrame) -> bytes:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Results")
    sheet.append([XLSX_HEADERS[name] for name in frame.columns])
    for row in frame.iter_rows():
        sheet.append([int(v) if n in ("id",) else v for n, v in zip(frame.columns, row, strict=True)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def xlsx_of() -> tuple[bytes, int]:
    sample = _xlsx(audience(10_000))
    rows = int(10_000 * TARGET_BYTES / len(sample) * 0.99)
    data = _xlsx(audience(rows))
    while len(data) > TARGET_BYTES:
        rows = int(rows * 0.98)
        data = _xlsx(audience(rows))
    return data, rows


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


class Ours(msgspec.Struct):
    seconds: float
    read_seconds: float
    imported: int
    rows: int


async def ours(pool: asyncpg.Pool, settings: Settings, data: bytes, name: str) -> Ours:
    """The service's path for one upload into a fresh task."""
    task_id = await pool.fetchval(
        "INSERT INTO invite_tasks (user_id, platform, task_type, title, target_group_id) "
        "VALUES ($1, 'telegram', 'invite_to_group', 'bench', '@bench') RETURNING id",
        TENANT,
    )
    limits = ReadLimits(settings.max_upload_bytes, settings.max_xlsx_unpacked_bytes)
    started = time.perf_counter()
    sheet = await asyncio.to_thread(read_file, data, name, None, limits)
    read_seconds = time.perf_counter() - started
    source = ImportSource(sheet, Source(kind="file", name=name, format=sheet.format.value))
    result = await run_import(pool, settings, user_id=TENANT, task_id=task_id, what=source, dry_run=False)
    seconds = time.perf_counter() - started
    written = await pool.fetchval("SELECT count(*) FROM invite_targets WHERE task_id = $1", task_id)
    if written != result.counts.imported:
        raise RuntimeError(f"{name}: reported {result.counts.imported} imported, found {written}")
    return Ours(seconds, read_seconds, result.counts.imported, result.counts.rows)


PANDAS: dict[str, Callable[[io.BytesIO], Any]] = {
    "csv": lambda f: pd.read_csv(f, dtype=str),
    "narrow": lambda f: pd.read_csv(f, dtype=str),
    "xlsx": lambda f: pd.read_excel(f, engine="openpyxl", dtype=str),
}


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


async def main(dsn: str, runs: int) -> dict[str, Any]:
    print("generating files ...", flush=True)
    csv_data, csv_rows = csv_of(audience)
    narrow_data, narrow_rows = csv_of(scraper)
    xlsx_data, xlsx_rows = xlsx_of()
    print(
        f"csv {len(csv_data)} B / {csv_rows} rows; narrow csv {len(narrow_data)} B / {narrow_rows} rows; "
        f"xlsx {len(xlsx_data)} B / {xlsx_rows} rows",
        flush=True,
    )
    # the scratch database is dropped on the way out, also on Ctrl-C or SIGTERM (bench/scratch.py)
    async with scratch_database(dsn, "invite_bench_import") as url:
        settings = Settings(database_url=url, max_targets_per_task=10_000_000, db_pool_min=1, db_pool_max=2)
        pool = await create_pool(url, settings)
        try:
            results: dict[str, list[Ours]] = {"csv": [], "narrow": [], "xlsx": []}
            baseline: dict[str, list[float]] = {"csv": [], "narrow": [], "xlsx": []}
            cases = [
                ("csv", csv_data, "parsing_export.csv"),
                ("narrow", narrow_data, "members.csv"),
                ("xlsx", xlsx_data, "parsing_export.xlsx"),
            ]
            for run_number in range(runs):
                for kind, data, filename in cases:
                    results[kind].append(await ours(pool, settings, data, filename))
                    baseline[kind].append(timed(lambda: PANDAS[kind](io.BytesIO(data))))  # noqa: B023
                print(
                    f"run {run_number + 1}: "
                    + ", ".join(
                        f"{k} {results[k][-1].seconds:.2f}s (pandas {baseline[k][-1]:.2f}s)" for k in results
                    ),
                    flush=True,
                )
        finally:
            await pool.close()

    def ratio(kind: str) -> float:
        """Median of per-run ratios: each run's pandas read ran right after ours, under the same load."""
        return round(
            statistics.median(p / r.seconds for p, r in zip(baseline[kind], results[kind], strict=True)), 3
        )

    return {
        "csv_10mb_s": median([r.seconds for r in results["csv"]]),
        "xlsx_10mb_s": median([r.seconds for r in results["xlsx"]]),
        "csv_ratio_vs_pandas": ratio("csv"),
        "xlsx_ratio_vs_pandas": ratio("xlsx"),
        "pandas_csv_read_s": median(baseline["csv"]),
        "pandas_openpyxl_xlsx_read_s": median(baseline["xlsx"]),
        "csv_read_s": median([r.read_seconds for r in results["csv"]]),
        "xlsx_read_s": median([r.read_seconds for r in results["xlsx"]]),
        "csv_bytes": len(csv_data),
        "csv_rows": results["csv"][0].rows,
        "csv_imported": results["csv"][0].imported,
        "xlsx_bytes": len(xlsx_data),
        "xlsx_rows": results["xlsx"][0].rows,
        "xlsx_imported": results["xlsx"][0].imported,
        "narrow_csv_10mb_s": median([r.seconds for r in results["narrow"]]),
        "narrow_csv_rows": results["narrow"][0].rows,
        "narrow_csv_ratio_vs_pandas": ratio("narrow"),
        "runs": runs,
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dsn", default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(msgspec.json.encode(run_cleanly(main(args.dsn, args.runs))).decode())
