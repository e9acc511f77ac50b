-- Queries of GET /accounts: the engine's live state of a tenant's accounts.

-- name: live_state
-- args: $1 user_id, $2 now
-- One row per account the engine has touched for this tenant ($1), found through the
-- invite_accounts_user index. Today's usage is the daily count only while its 24 h window is
-- open at $2 (the service's clock), so a window that closed reads as 0 without anyone having
-- to write the reset. Bounded: a tenant has a handful of accounts, never thousands. The start
-- of its clean history (warmup_since) gives its day of warm-up (invite/engine/warmup.py).
SELECT id,
       label,
       status,
       status_reason,
       cooldown_until,
       daily_limit,
       pace_multiplier,
       last_action_at,
       CASE WHEN daily_window_start > $2::timestamptz - interval '24 hours'
            THEN daily_count ELSE 0 END AS used_today,
       CASE WHEN daily_window_start > $2::timestamptz - interval '24 hours'
            THEN daily_window_start + interval '24 hours' END AS window_resets_at,
       warmup_since
FROM invite_accounts
WHERE user_id = $1
ORDER BY id
LIMIT 1000

-- name: held
-- args: $1 user_id, $2 now
-- The tenant's ($1) accounts an engine replica holds at $2 (the service's clock). The Mailing
-- page's admin check leases only the others from the platform: leasing a held one again and
-- releasing it would drop the engine's own lock on it there. invite_accounts_user finds them.
SELECT id FROM invite_accounts
WHERE user_id = $1 AND lease_owner IS NOT NULL AND lease_expires_at > $2::timestamptz

-- name: fleet_health
-- args: $1 now
-- Fleet gauge invite_accounts_by_health (invite/reports/gauges.py): what the health of every
-- account is read from (invite/engine/health.py, the same reading as GET /accounts), today's
-- usage as in live_state at $1 (the service's clock). invite_accounts holds one row per
-- account, thousands at most: one sequential read every FLEET_GAUGES_INTERVAL_SECONDS.
SELECT platform,
       status,
       status_reason,
       cooldown_until,
       daily_limit,
       pace_multiplier,
       CASE WHEN daily_window_start > $1::timestamptz - interval '24 hours'
            THEN daily_count ELSE 0 END AS used_today,
       warmup_since
FROM invite_accounts
