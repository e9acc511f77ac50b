"""PostgreSQL access: the pool, the named-query loader and the migration runner.

All SQL lives in ``sql/``: ``sql/migrations/NNNN_name.sql`` applied in order, and
``sql/queries/<feature>.sql`` holding statements introduced by a ``-- name: <name>`` line,
looked up as ``"<feature>.<name>"``, each with an ``-- args: $1 name, ...`` line naming its
parameters (a Statement: they are passed by those names, see invite.kernel.sql). Files are
read once per process.

Our tables live in a PostgreSQL schema of their own (DB_SCHEMA, default ``invite``): every
connection of ours searches only it (the pools' ``search_path``; the migration runner sets
it on its connection and creates the schema), so the platform's ``invite_db`` can keep the
old invite service's tables of the same names in ``public``, untouched. A migration that
fails is a MigrationFailed of one line naming it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from invite.kernel.settings import DEFAULT_SCHEMA, Settings, SettingsError

# A connection of its own or one borrowed from the pool: statements run the same on both.
DbConnection = asyncpg.Connection | PoolConnectionProxy

# One number for every replica: pg_advisory_lock serialises concurrent start-ups.
MIGRATION_LOCK_KEY = 0x1A7E_0001
_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_ARGS_LINE = re.compile(r"^--\s*args:(.*)$", re.MULTILINE)
_PARAM = re.compile(r"\$(\d+) ([a-z_][a-z0-9_]*)")
_PLACEHOLDER = re.compile(r"\$(\d+)")
_COMMENT = re.compile(r"--.*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Statement:
    """A named statement and the names of its parameters ($1, $2, ... in order)."""

    key: str
    sql: str
    params: tuple[str, ...]

    @classmethod
    def parse(cls, key: str, sql: str) -> Statement:
        line = _ARGS_LINE.search(sql)
        if line is None:
            raise ValueError(f"statement {key} has no '-- args:' line naming its parameters")
        pairs = _PARAM.findall(line[1])
        params = tuple(name for _, name in pairs)
        written = ", ".join(f"${n} {name}" for n, name in pairs)
        numbers = [int(n) for n, _ in pairs]
        used = {int(n) for n in _PLACEHOLDER.findall(_COMMENT.sub("", sql))}
        if (
            written != line[1].strip()
            or numbers != list(range(1, len(pairs) + 1))
            or used != set(numbers)
            or len(set(params)) != len(params)
        ):
            raise ValueError(
                f"statement {key}: its '-- args:' line must name each of $1..${max(used, default=0)} once, in order"
            )
        return cls(key, sql, params)

    def bind(self, args: Mapping[str, Any]) -> tuple[Any, ...]:
        if args.keys() != set(self.params):
            raise TypeError(
                f"statement {self.key} takes {', '.join(self.params) or 'nothing'}; given {sorted(args)}"
            )
        return tuple(args[name] for name in self.params)


def check_columns(key: str, record: asyncpg.Record, *rows: type[msgspec.Struct]) -> None:
    """The record's columns are the fields of ``rows``, in order (a row is built by position)."""
    fields = tuple(name for row in rows for name in row.__struct_fields__)
    if tuple(record.keys()) != fields:
        raise TypeError(f"statement {key} returns {tuple(record.keys())}, read as {fields}")


class Queries(Mapping[str, str]):
    """Named SQL statements read from ``<dir>/*.sql``, each checked against its ``-- args:`` line
    as it loads (a statement without one, or with one that does not match, fails the load).
    ``statement(key)`` is the Statement to run; ``queries[key]`` its text (for plans and tests)."""

    def __init__(self, directory: Path) -> None:
        self._statements: dict[str, Statement] = {}
        for path in sorted(directory.glob("*.sql")):
            parts = _NAME_LINE.split(path.read_text(encoding="utf-8"))
            # parts = [preamble, name1, body1, name2, body2, ...]
            for name, body in zip(parts[1::2], parts[2::2], strict=True):
                key = f"{path.stem}.{name}"
                if key in self._statements:
                    raise ValueError(f"query {key} is defined twice in {path}")
                self._statements[key] = Statement.parse(key, body.strip())

    def statement(self, key: str) -> Statement:
        return self._statements[key]

    def __getitem__(self, key: str) -> str:
        return self._statements[key].sql

    def __iter__(self) -> Iterator[str]:
        return iter(self._statements)

    def __len__(self) -> int:
        return len(self._statements)


@cache
def queries(sql_dir: str) -> Queries:
    return Queries(Path(sql_dir) / "queries")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(sql_dir: str) -> list[Migration]:
    found = []
    for path in sorted((Path(sql_dir) / "migrations").glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), path.stem, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migration files share a number")
    return found


class MigrationChanged(Exception):
    """An applied migration's file was edited afterwards: add a new migration instead."""


class MigrationFailed(SettingsError):
    """A migration could not be applied (one line: which, and PostgreSQL's reason); nothing of it
    was kept. A SettingsError: the command line prints it as one line and exits."""


def schema_url(url: str, schema: str = DEFAULT_SCHEMA) -> str:
    """``url`` whose connections search ``schema`` (asyncpg takes unknown query parameters as
    server settings): for connections made outside our pools, e.g. by tests and benches."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"] + [("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def migrate(conn: DbConnection, sql_dir: str, schema: str = DEFAULT_SCHEMA) -> list[str]:
    """Apply pending migrations into ``schema``, each once and in its own transaction; return
    their names. The connection searches ``schema`` afterwards.

    Safe when several replicas start at once: the advisory lock makes the others wait and
    then find nothing left to do.
    """
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        # the schema is a validated identifier (Settings.db_schema), quoted all the same
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for migration in load_migrations(sql_dir):
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationChanged(f"migration {migration.name} changed after it was applied")
                continue
            try:
                await _apply(conn, migration)
            except asyncpg.PostgresError as exc:
                raise MigrationFailed(
                    f"migration {migration.name} failed in schema {schema}: {exc.__class__.__name__}: "
                    + " ".join(str(exc).split())
                ) from None
            applied_now.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now


async def _apply(conn: DbConnection, migration: Migration) -> None:
    async with conn.transaction():
        await conn.execute(migration.sql)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            migration.version,
            migration.name,
            migration.checksum,
        )


# The array types our statements take or return. asyncpg knows text[] and oid[] by itself and
# looks any other array type up in the catalog the first time a connection meets it: a recursive
# query of tens of milliseconds under load, paid by whichever request comes first on a new
# connection. Each connection learns these at once when it opens (a test keeps the list whole).
ARRAY_TYPES = ("int4[]", "int8[]", "float8[]", "varchar[]", "timestamptz[]", "uuid[]")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog"
        )
    await conn.prepare("SELECT " + ", ".join(f"NULL::{name}" for name in ARRAY_TYPES))


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Our pools' reset on release: nothing beyond what asyncpg always does (roll back an open
    transaction, drop the listeners). Its default reset adds a round trip to every release, a
    second one per request, to undo session state (SET, LISTEN, session advisory locks) that our
    code never leaves behind: the session-level locks (migrations, retention) are released
    before their connection goes back, or it is closed."""


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def create_pool(dsn: str, settings: Settings, *, engine: bool = False, **kwargs: Any) -> asyncpg.Pool:
    """The API's pool (DB_POOL_MAX), or with ``engine`` the engine's own (ENGINE_DB_POOL_MAX): two
    pools, so that a request never waits for a connection behind the engine's statements. Each
    opens DB_POOL_MIN connections at once (all of them by default): a burst of requests then
    never waits for new connections to be made, each costing tens of milliseconds under load."""
    max_size = settings.engine_db_pool_max if engine else settings.db_pool_max
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min(settings.db_pool_min, max_size),
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"search_path": settings.db_schema},
        **kwargs,
    )
    assert pool is not None
    return pool
