"""Every setting of the service, typed, read once from the environment.

Each field is read from the environment variable of the same name in upper case
(``database_url`` ← ``DATABASE_URL``). A value that does not parse stops start-up with
one line naming the variable.

In the platform's compose slot the service gets the platform's environment: without
DATABASE_URL, the database is ``POSTGRES_SERVER``/``POSTGRES_PORT``/``POSTGRES_USER``/
``POSTGRES_PASSWORD``/``POSTGRES_DB`` (any of them set; the rest default to localhost, 5432,
postgres, no password, postgres); only with no database setting at all does an embedded
PostgreSQL start. ``PLATFORM=content-factory`` defaults the neighbours' URLs the way the
platform names its services, and the Telegram driver (docs/platform.md).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

import msgspec

ROOT = Path(__file__).resolve().parents[2]

Positive = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
DEFAULT_SCHEMA = "invite"
POSTGRES_VARIABLES = ("POSTGRES_SERVER", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")
# inside the platform's compose: the neighbours as it names them (each listens on 8000), and
# its accounts driven on Telegram for real
CONTENT_FACTORY_DEFAULTS = {
    "telegram_driver": "telegram",
    "api_gateway_url": "http://api-gateway:8000",
    "parsing_service_url": "http://parsing-service:8000",
    "integration_service_url": "http://integration-service:8000",
    "user_service_url": "http://user-service:8000",
    # the platform's allocations cap an account at 30 invites and 30 messages a day
    # (docs/platform-as-run.md); shown before an account's first lease too, not our 40
    "daily_quota": "30",
}


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # --- storage -------------------------------------------------------------------------
    database_url: str | None = (
        None  # unset (and no POSTGRES_*): an embedded PostgreSQL (pgserver) in data_dir
    )
    # our tables' own schema: the platform's invite_db holds the old service's tables in public
    db_schema: Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = DEFAULT_SCHEMA
    platform: Literal["content-factory"] | None = None  # running inside the platform's compose
    data_dir: str = str(ROOT / ".data")
    db_pool_min: Positive = 10
    db_pool_max: Positive = 10
    engine_db_pool_max: Positive = 8  # the engine's own pool: the API never queues behind it
    redis_url: str | None = None  # unset: an in-process cache
    sql_dir: str = str(ROOT / "sql")

    # --- HTTP ----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8000
    api_prefix: Annotated[str, msgspec.Meta(pattern=r"^/[A-Za-z0-9_/\-]*$")] = "/api/v1/invite"
    # the platform's Mailing page (invite.frontend_api), where its gateway delivers /api/invite/{path}
    frontend_api_prefix: Annotated[str, msgspec.Meta(pattern=r"^/[A-Za-z0-9_/\-]*$")] = "/api/v1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    # SIGTERM to exit, whatever the clients attached do (below compose's 60 s stop grace)
    shutdown_timeout_seconds: Annotated[float, msgspec.Meta(ge=2.0, le=3600.0)] = 30.0

    # --- identity ------------------------------------------------------------------------
    jwt_secret: str | None = None  # unset: from Vault (kv/jwt secret_key), or a dev secret
    api_gateway_url: str | None = None  # resolves an email `sub` to the platform's user id
    identity_cache_ttl_seconds: Positive = 300  # how long an email → user id answer is reused
    user_service_url: str | None = None  # asked instead of the gateway: it says 404 for an unknown email
    identity_negative_ttl_seconds: Positive = 30  # how long "no such user" is believed
    vault_addr: str | None = None
    vault_role_id: str | None = None
    vault_secret_id: str | None = None
    vault_token: str | None = None
    vault_mount: str = "kv"
    secrets_ttl_seconds: PositiveFloat = 300.0  # how long a secret read from Vault is kept

    # --- neighbours ----------------------------------------------------------------------
    integration_service_url: str | None = None  # unset: the built-in sandbox accounts provider
    parsing_service_url: str | None = None
    http_timeout_seconds: PositiveFloat = 10.0
    http_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 3
    accounts_cache_ttl_seconds: Positive = 30
    integration_lease_minutes: Positive = 30  # how long the platform leases us an account (renewed before)
    accounts_wait_seconds: PositiveFloat = 900.0  # a task whose accounts cannot be read is paused after this
    parsing_max_results: Positive = 100_000  # a parsing task larger than this is refused, not cut

    # --- Telegram ------------------------------------------------------------------------
    telegram_driver: Literal["sandbox", "telegram"] = "sandbox"
    telegram_api_id: int | None = None
    telegram_api_hash: str | None = None
    telegram_keep_imported_contacts: bool = False  # keep contacts imported to reach +phone targets
    telegram_connect_timeout_seconds: PositiveFloat = 30.0
    telegram_call_timeout_seconds: PositiveFloat = 30.0  # one action and all its requests
    telegram_phone_import_rest_seconds: PositiveFloat = 6 * 3600.0  # after Telegram says "import later"
    sandbox_accounts_per_tenant: Positive = 5
    sandbox_seed: int = 1
    sandbox_profile: str = "realistic"  # "zero", "realistic", or a JSON object of SandboxProfile fields
    sandbox_record_path: str | None = None  # a JSONL file of every sandbox action; unset: in memory

    # --- product limits ------------------------------------------------------------------
    max_targets_per_task: Positive = 1000
    max_active_tasks_per_tenant: Positive = 10
    max_upload_bytes: Positive = 10 * 1024 * 1024
    max_xlsx_unpacked_bytes: Positive = 256 * 1024 * 1024  # an XLSX inflating past this is a zip bomb
    import_rejected_kept: Positive = 10_000  # rejected rows of an import kept for paging
    log_retention_days: Positive = 30
    finished_task_retention_days: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0: keep finished tasks
    retention_interval_seconds: PositiveFloat = 3600.0
    retention_batch_size: Positive = 5000
    phone_default_region: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")] = "RU"

    # --- reports and live events ---------------------------------------------------------
    sse_heartbeat_seconds: PositiveFloat = 15.0
    fleet_gauges_interval_seconds: PositiveFloat = 30.0

    # --- engine: Telegram's limits (settings of a task may lower them, never raise) -------
    daily_quota: Positive = 40
    daily_quota_with_link: Positive = 10
    # +phone targets reached a day (each imports the number as a contact first); the accounts
    # provider's contacts limit lowers it (the platform's allocations: 15)
    daily_contacts_quota: Positive = 15
    min_pause_seconds: PositiveFloat = 15.0
    # invites one account may ever make into one channel, where the accounts provider has
    # per-channel limits (the platform's max_per_channel_total)
    channel_lifetime_invite_limit: Positive = 200
    peer_flood_cooldown_seconds: Positive = 24 * 3600
    # added to a FloodWait's cooldown: the platform rests the account a minute longer than
    # Telegram asks, counted from when our report reaches it (a group commit and a round trip
    # after the answer), and an account is not driven while the platform rests it
    flood_wait_margin_seconds: Annotated[float, msgspec.Meta(ge=0)] = 65.0
    max_attempts: Positive = 5
    # how long after an attempt a message left in doubt is sent again under its random_id
    # (Telegram answers RANDOM_ID_DUPLICATE for one it delivered); beyond: its dialog decides
    random_id_window_seconds: Annotated[float, msgspec.Meta(ge=0.0)] = 3600.0
    recontact_days: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0: no cross-task frequency cap
    # warm-up: a new account (or one back from a spam flag or a freeze) starts at this many
    # actions a day, rising to the full quota over WARMUP_DAYS days of clean history (0: none)
    warmup_start_per_day: Positive = 5
    warmup_days: Annotated[int, msgspec.Meta(ge=0, le=365)] = 14
    # a one-use invite link (a task's privacy_fallback) works this long; unused, it is revoked
    invite_link_hours: Annotated[int, msgspec.Meta(ge=1, le=720)] = 72
    # joins through the links, and links to revoke, are read this often per account
    invite_link_poll_seconds: Annotated[float, msgspec.Meta(ge=60.0)] = 600.0

    # --- engine: replicas and leases -----------------------------------------------------
    replica_id: str = f"{socket.gethostname()}-{os.getpid()}"
    engine_enabled: bool = True
    max_accounts_per_replica: Positive = 500
    account_lease_seconds: PositiveFloat = 60.0
    target_lease_seconds: PositiveFloat = 300.0
    poll_interval_seconds: PositiveFloat = 5.0
    # a test invite (the Mailing page's test-invite) may be taken by the account's engine this
    # long after it was asked, and the request waits as long for its outcome (then: 202)
    trial_wait_seconds: PositiveFloat = 30.0

    # --- engine: batching, retries, pacing, circuit breaker ------------------------------
    claim_batch_window_seconds: PositiveFloat = 0.002  # the claimer gathers ready accounts this long
    # ... or until this many are waiting (smaller batches pipeline on two lanes)
    claim_batch_max: Positive = 50
    record_batch_window_seconds: PositiveFloat = 0.005  # group commit: an outcome waits this long at most
    record_batch_max: Positive = 1000
    retry_backoff_seconds: PositiveFloat = 30.0  # transient errors retry after 30 s, 60 s, 120 s, ...
    retry_backoff_max_seconds: PositiveFloat = 3600.0
    pace_multiplier_max: Annotated[float, msgspec.Meta(ge=1.0)] = 16.0  # AIMD: FloodWait doubles the pause
    pace_multiplier_step: Annotated[float, msgspec.Meta(ge=0.0)] = 0.05  # ... each success takes this off
    breaker_peer_floods: Positive = 3  # spam flags in one task that pause it
    breaker_window: Positive = 50  # the last N outcomes of a task ...
    # ... this share of errors pauses it
    breaker_error_rate: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.5
    task_stats_interval_seconds: PositiveFloat = 30.0  # per-account counters of a task are written this often

    # --- engine: replies to messages and opt-outs ----------------------------------------
    # each held account's new incoming messages are read this often while it has message tasks
    # running or paused, and for REPLIES_WATCH_HOURS after they end (one messages.getDialogs,
    # and a getHistory per dialog with news: far inside Telegram's limits)
    replies_poll_seconds: Annotated[float, msgspec.Meta(ge=60.0)] = 300.0
    replies_watch_hours: PositiveFloat = 24.0
    # a reply holding one of these words or phrases (comma-separated; casefolded, whole words)
    # puts the person on the tenant's suppression list
    reply_stop_words: Annotated[str, msgspec.Meta(min_length=1)] = (
        "стоп, хватит, отписаться, отпишите, отпишитесь, не пишите, не пиши, не писать, "
        "не беспокойте, удалите меня, спам, stop, unsubscribe, opt out, remove me, "
        "do not contact, don't contact, do not message, don't message, do not write, "
        "don't write, leave me alone, spam"
    )
    # a running task pauses once this share of the people it reached opted out by reply, or
    # this share blocked the account (the circuit breaker's sibling) ...
    opt_out_pause_rate: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.1
    opt_out_pause_min_people: Positive = 20  # ... once it has reached this many

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def stop_phrases(self) -> tuple[str, ...]:
        """REPLY_STOP_WORDS, one phrase each (empty entries left out)."""
        return tuple(p.strip() for p in self.reply_stop_words.split(",") if p.strip())


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment; raise SettingsError naming the bad variable."""
    env = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    for name in msgspec.structs.fields(Settings):
        value = env.get(name.name.upper())
        if value is not None and value != "":
            raw[name.name] = value
    if "database_url" not in raw and any(env.get(name) for name in POSTGRES_VARIABLES):
        raw["database_url"] = _postgres_url(env)
    if raw.get("platform") == "content-factory":
        raw = {**CONTENT_FACTORY_DEFAULTS, **raw}
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_name_the_variable(str(exc))) from None


def _postgres_url(env: Mapping[str, str]) -> str:
    user = quote(env.get("POSTGRES_USER") or "postgres", safe="")
    password = env.get("POSTGRES_PASSWORD")
    login = f"{user}:{quote(password, safe='')}" if password else user
    host = env.get("POSTGRES_SERVER") or "localhost"
    port = env.get("POSTGRES_PORT") or "5432"
    if not port.isdigit():
        raise SettingsError(f"POSTGRES_PORT: expected a port number, got {port!r}")
    database = quote(env.get("POSTGRES_DB") or "postgres", safe="")
    return f"postgresql://{login}@{host}:{port}/{database}"


def _name_the_variable(message: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.port`"; the operator knows PORT.
    reason, _, where = message.rpartition(" - at `$.")
    if not where:
        return f"invalid settings: {message}"
    return f"{where.rstrip('`').upper()}: {reason}"
