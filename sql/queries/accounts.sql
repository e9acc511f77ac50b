-- Queries of GET /accounts: the engine's live state of a tenant's accounts.

-- name: live_state
-- args: $1 user_id, $2 now
-- One row per account the engine has touched for this tenant ($1), found through the
-- invite_accounts_user index. Today's usage is the daily count only while its 24 h window is
-- open at $2 (the service's clock), so a window that closed reads as 0 without anyone having
-- to write the reset. Bounded: a tenant has a handful of accounts, never thousands.
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
            THEN daily_window_start + interval '24 hours' END AS window_resets_at
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
