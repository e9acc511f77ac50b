-- The lease keeper's statements (invite/engine/leases.py). Every time is a parameter from the
-- service's clock (never now()). Statements that lock several rows of invite_accounts lock
-- them in id order (a MATERIALIZED ... ORDER BY id FOR UPDATE CTE), so the claim, the group
-- commit and the lease heartbeat of one replica never deadlock. The `-- args:` line of each
-- statement names its parameters, in order: the engine's repository
-- (invite/engine/repository.py) passes them by these names. A task's status spelt out here
-- ('running') is a filter, never a transition: no statement here moves a task (those that do
-- take their statuses from invite/tasks/states.py).

-- name: acquire_accounts
-- args: $1 replica, $2 now, $3 room, $4 avoid, $5 lease_seconds, $6 driver
-- Lease up to `room` more accounts for `replica` at `now` (leases last `lease_seconds`):
-- accounts attached to a running task of their own tenant run by this replica's `driver`, not
-- blocked, whose lease is free, expired, or already ours from before a restart -- but not
-- those this process drives or must leave alone (`avoid`). SKIP LOCKED: two replicas
-- acquiring at once take different accounts. The previous owner is returned so a takeover of
-- an expired lease can be counted, and `channel_invites`: per running invite task the account
-- serves, the invites it made into the task's channel so far (the platform's lifetime cap per
-- channel; invite_account_channels, one probe per task); `warmup_since`, the start of its clean
-- history, holds it to its day of warm-up (invite/engine/warmup.py).
WITH free AS (
    SELECT a.id, a.lease_owner AS previous_owner
    FROM invite_accounts a
    WHERE a.status <> 'blocked'
      AND (a.lease_owner IS NULL OR a.lease_expires_at <= $2 OR a.lease_owner = $1)
      AND NOT (a.id = ANY($4::text[]))
      AND a.id IN (SELECT ta.account_id
                   FROM invite_tasks t JOIN invite_task_accounts ta ON ta.task_id = t.id
                   WHERE t.status = 'running' AND t.user_id = a.user_id AND t.driver = $6
                     AND ta.status IN ('active', 'cooldown'))
    ORDER BY a.id
    LIMIT $3
    FOR UPDATE OF a SKIP LOCKED
)
UPDATE invite_accounts a SET lease_owner = $1, lease_expires_at = $2::timestamptz + $5::float8 * interval '1 second',
    updated_at = $2
FROM free f
WHERE a.id = f.id
RETURNING a.id, a.platform, a.status, a.daily_window_start, a.daily_count, a.daily_limit, a.last_action_at,
          a.cooldown_until, a.pace_multiplier, a.user_id, f.previous_owner,
          (SELECT COALESCE(jsonb_object_agg(t.id, c.invites), '{}')
            FROM invite_task_accounts ta
            JOIN invite_tasks t ON t.id = ta.task_id
            JOIN invite_account_channels c ON c.account_id = ta.account_id
                                          AND c.channel = invite_channel_key(t.target_group_id)
            WHERE ta.account_id = a.id AND t.status = 'running' AND t.task_type = 'invite_to_group') AS channel_invites,
          a.warmup_since

-- name: renew_leases
-- args: $1 replica, $2 account_ids, $3 now, $4 lease_seconds, $5 daily_limits, $6 contacts_limits
-- The heartbeat: extend this replica's leases on the accounts it drives (`account_ids`). An
-- account not returned was taken over by another replica (our lease had expired): stop
-- driving it. `daily_limits` (per account, in the same order; NULL: unchanged) is the daily
-- limit the accounts provider gave with its lease: kept in the row, the claim statement holds
-- it on every replica; `contacts_limits` likewise its contacts limit (phone numbers imported a
-- day, which the claim holds for +phone targets). `channel_invites` as in acquire_accounts,
-- fresh on every beat.
WITH mine AS MATERIALIZED (
    SELECT id FROM invite_accounts WHERE id = ANY($2::text[]) AND lease_owner = $1 ORDER BY id FOR UPDATE
)
UPDATE invite_accounts a SET lease_expires_at = $3::timestamptz + $4::float8 * interval '1 second',
                             daily_limit = COALESCE(u.daily_limit, a.daily_limit),
                             contacts_limit = COALESCE(u.contacts_limit, a.contacts_limit)
FROM mine m, unnest($2::text[], $5::int[], $6::int[]) AS u(id, daily_limit, contacts_limit)
WHERE a.id = m.id AND u.id = m.id
RETURNING a.id,
          (SELECT COALESCE(jsonb_object_agg(t.id, c.invites), '{}')
            FROM invite_task_accounts ta
            JOIN invite_tasks t ON t.id = ta.task_id
            JOIN invite_account_channels c ON c.account_id = ta.account_id
                                          AND c.channel = invite_channel_key(t.target_group_id)
            WHERE ta.account_id = a.id AND t.status = 'running' AND t.task_type = 'invite_to_group') AS channel_invites

-- name: release_accounts
-- args: $1 replica, $2 account_ids, $3 now, $4 answered_at
-- Graceful release: the accounts are free for any replica at once. The pause runs from the
-- platform's answer to the last action (`answered_at`, per account in the same order; NULL:
-- none), later than the reservation the claim wrote, so the next owner counts it from there.
WITH mine AS MATERIALIZED (
    SELECT id FROM invite_accounts WHERE id = ANY($2::text[]) AND lease_owner = $1 ORDER BY id FOR UPDATE
)
UPDATE invite_accounts a SET lease_owner = NULL, lease_expires_at = NULL, updated_at = $3,
                             last_action_at = GREATEST(a.last_action_at, u.answered_at)
FROM mine m, unnest($2::text[], $4::timestamptz[]) AS u(id, answered_at)
WHERE a.id = m.id AND u.id = m.id

-- name: retire_account
-- args: $1 replica, $2 account_id, $3 status, $4 reason, $5 now
-- An account found dead when its client starts: given `status` (blocked for good, as the
-- decision table's dead_at_start row says: outcomes.retire) with the reason, if `replica`
-- still leases it; its task rows follow (recorder.block_task_accounts). Its clean history ends
-- here: were it ever brought back, it warms up anew (invite/engine/warmup.py).
UPDATE invite_accounts SET status = $3::text, status_reason = $4, updated_at = $5, warmup_since = $5
WHERE id = $2 AND lease_owner = $1

-- name: running_tasks
-- args: $1 driver
-- The scheduler's picture of the work: running tasks are a small set (invite_tasks_running).
-- Only tasks of this replica's `driver`: the sandbox never stands in for Telegram.
SELECT id, user_id, platform, task_type, target_group_id, message_template, priority, settings
FROM invite_tasks WHERE status = 'running' AND driver = $1

-- name: servable
-- args: $1 account_ids, $2 driver
-- Which running tasks of `driver` each of these accounts may serve: attached and active or
-- cooling down, of the same tenant, and not blocked.
SELECT ta.account_id, ta.task_id
FROM invite_task_accounts ta
JOIN invite_tasks t ON t.id = ta.task_id
JOIN invite_accounts a ON a.id = ta.account_id
WHERE ta.account_id = ANY($1::text[])
  AND ta.status IN ('active', 'cooldown')
  AND t.status = 'running' AND t.driver = $2 AND a.user_id = t.user_id AND a.status <> 'blocked'
