"""Command line: ``python -m invite serve | migrate | schema | import-legacy [--schema S] [--dry-run]
| token --user-id X [--minutes N]``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta

import asyncpg

from invite.kernel.auth import JwtSecret, dev_mode, dev_secret, issue_token
from invite.kernel.db import migrate
from invite.kernel.embedded import database
from invite.kernel.schema_dump import schema_file, snapshot
from invite.kernel.settings import Settings, SettingsError, load_settings

DEMO_TENANT = "1"
DEV_TOKEN_LIFETIME = timedelta(hours=24)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="invite", description="Invite Service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP API (and the engine)")
    commands.add_parser("migrate", help="apply pending database migrations and exit")
    commands.add_parser(
        "schema",
        help="write sql/schema.sql, the schema the migrations produce: needs DATABASE_URL's server "
        "(not an embedded one) and a pg_dump of its version",
    )
    legacy = commands.add_parser(
        "import-legacy",
        help="copy the old invite service's tasks and people (its tables beside ours) into ours, once",
    )
    legacy.add_argument("--schema", default="public", help="where the old tables are (default public)")
    legacy.add_argument("--dry-run", action="store_true", help="say what would be copied, write nothing")
    token = commands.add_parser("token", help="print a bearer token for a tenant")
    token.add_argument("--user-id", required=True, help="the tenant's id (the platform's user id)")
    token.add_argument("--minutes", type=int, default=60, help="lifetime (default 60)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "serve":
            serve(settings)
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "schema":
            asyncio.run(_write_schema(settings))
        elif args.command == "import-legacy":
            asyncio.run(_import_legacy(settings, args.schema, dry_run=args.dry_run))
        else:
            secret = asyncio.run(_jwt_secret(settings))
            print(issue_token(secret, args.user_id, timedelta(minutes=args.minutes)))
    except SettingsError as exc:
        print(f"invite: {exc}", file=sys.stderr)
        return 2
    return 0


def serve(settings: Settings) -> None:
    import uvicorn

    from invite.app import create_app
    from invite.kernel.shutdown import BoundedServer
    from invite.wiring import check_credentials

    # a missing secret or a failing migration stops start-up with one line here, not with a
    # traceback from the lifespan
    asyncio.run(check_credentials(settings, engine=settings.engine_enabled))
    if not settings.embedded_database:  # (an embedded one holds nothing but ours)
        asyncio.run(_migrate(settings))
    app = create_app(settings)
    if dev_mode(settings):
        _print_dev_banner(settings)
    bound = settings.shutdown_timeout_seconds
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(bound / 2)),  # requests still running then are cut off
    )
    BoundedServer(config, lambda: getattr(app.state, "drain", None), bound).run()


def _print_dev_banner(settings: Settings) -> None:
    token = issue_token(dev_secret(settings), DEMO_TENANT, DEV_TOKEN_LIFETIME)
    base = f"http://{settings.host}:{settings.port}{settings.api_prefix}"
    print(
        "\nDevelopment mode (no JWT_SECRET, no VAULT_ADDR): tokens are signed with a secret kept in "
        f"{settings.data_dir}.\n"
        f"Token for demo tenant {DEMO_TENANT} (valid 24 h):\n\n  {token}\n\n"
        "Try:\n\n"
        f'  curl -s -H "Authorization: Bearer {token}" {base}/tasks\n\n'
        f"API docs: http://{settings.host}:{settings.port}/docs\n",
        flush=True,
    )


async def _jwt_secret(settings: Settings) -> str:
    source = JwtSecret(settings)
    try:
        return await source()
    finally:
        await source.aclose()


async def _migrate(settings: Settings) -> None:
    async with database(settings) as url:
        conn = await asyncpg.connect(url)
        try:
            applied = await migrate(conn, settings.sql_dir, settings.db_schema)
        finally:
            await conn.close()
    print("applied: " + ", ".join(applied) if applied else "the database is up to date")


async def _import_legacy(settings: Settings, schema: str, *, dry_run: bool) -> None:
    import msgspec

    from invite.kernel.clock import RealClock
    from invite.kernel.db import create_pool
    from invite.legacy import import_legacy, old_tables

    await _migrate(settings)
    async with database(settings) as url, old_tables(url, schema) as old:
        pool = await create_pool(url, settings)
        try:
            copied = await import_legacy(pool, old, settings, RealClock(), dry_run=dry_run)
        finally:
            await pool.close()
    for task in copied:
        print(msgspec.json.encode(task.line()).decode())
    done = sum(task.task_id is not None for task in copied)
    print(
        msgspec.json.encode({"copied": done, "not_copied": len(copied) - done, "dry_run": dry_run}).decode()
    )


async def _write_schema(settings: Settings) -> None:
    if settings.database_url is None:
        raise SettingsError("schema needs DATABASE_URL: a PostgreSQL server with its pg_dump")
    path = schema_file(settings.sql_dir)
    path.write_text(await snapshot(settings.database_url, settings.sql_dir), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
