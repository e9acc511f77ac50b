"""Prometheus metrics: the brief's names and labels, plus the engine's internals."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

tasks_total = Counter("invite_tasks_total", "Tasks by platform and status reached", ["platform", "status"])
targets_processed = Counter(
    "invite_targets_processed", "Targets processed by platform and result", ["platform", "result"]
)
accounts_blocked = Counter("invite_accounts_blocked", "Accounts marked blocked", ["platform"])
floodwait_events = Counter("invite_floodwait_events", "FloodWait answers received", ["platform"])
peerflood_events = Counter(
    "invite_peerflood_events", "PeerFlood answers received: accounts spam-flagged", ["platform"]
)
task_duration = Histogram(
    "invite_task_duration_seconds",
    "From start to completion of a task",
    ["platform"],
    buckets=(60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400),
)
active_tasks = Gauge("invite_active_tasks", "Tasks running now", ["platform"])

# --- engine internals ---------------------------------------------------------------------
claim_seconds = Histogram(
    "invite_engine_claim_seconds",
    "Latency of one claim statement",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
record_batch_size = Histogram(
    "invite_engine_record_batch_size",
    "Outcomes committed per group commit",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250),
)
accounts_by_state = Gauge("invite_engine_accounts", "Accounts leased by this replica, by state", ["state"])
cooldowns = Counter("invite_engine_cooldowns", "Account cooldowns started, by reason", ["reason"])
breaker_trips = Counter("invite_engine_breaker_trips", "Tasks paused by the circuit breaker", ["reason"])
lease_takeovers = Counter("invite_engine_lease_takeovers", "Account leases taken over after expiry")
lost_claim_targets = Counter(
    "invite_engine_lost_claim_targets", "Targets put back after their claim's answer was lost"
)
integration_errors = Counter(
    "invite_integration_errors", "Failed calls to neighbouring services", ["service"]
)

# --- audience import ----------------------------------------------------------------------
imports_total = Counter("invite_imports_total", "Audience imports committed, by source", ["source"])
import_rows = Counter("invite_import_rows", "Rows of committed imports, by outcome", ["outcome"])

# --- HTTP API -----------------------------------------------------------------------------
http_requests = Counter(
    "invite_http_requests",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
http_request_seconds = Histogram(
    "invite_http_request_duration_seconds",
    "HTTP request latency by method, route template and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# --- fleet state read from the shared database (invite/reports/gauges.py refreshes them on
# every replica, so replicas report the same values: alert rules take max(), not sum()) -------
accounts_by_status = Gauge(
    "invite_accounts_by_status",
    "Accounts known to the service, by platform and status",
    ["platform", "status"],
)
accounts_by_health = Gauge(
    "invite_accounts_by_health",
    "Accounts known to the service, by platform and health (invite/engine/health.py)",
    ["platform", "health"],
)
targets_pending = Gauge("invite_targets_pending", "Pending targets of running tasks", ["platform"])
running_task_idle = Gauge(
    "invite_running_task_idle_seconds_max",
    "Longest time any running task with pending targets has gone without an execution log entry",
)
