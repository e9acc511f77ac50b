-- The engine's statements. Every time is a parameter from the service's clock (never now()),
-- so a simulated day in tests behaves as a real one. Statements that lock several rows of
-- invite_accounts lock them in id order (a MATERIALIZED ... ORDER BY id FOR UPDATE CTE), so
-- the claim, the group commit and the lease heartbeat of one replica never deadlock.

-- name: claim
-- Claims up to $3 targets of ONE task ($1) for the ready accounts $5 of replica $4 (each with
-- its daily cap $6 and minimum pause $7), at $2; targets are leased for $8 seconds; $9 is the
-- task's cross-task recontact cap in days (0: none). One statement, one commit, BEFORE any
-- platform call: the in-flight mark and the quota reservation are written together or not at
-- all.
--  * next: exactly the partial index invite_targets_pending (task_id, next_attempt_at, seq)
--    WHERE status = 'pending' -- equality on task_id, range on next_attempt_at, the index order
--    as ORDER BY -- so the plan reads the head of one task's queue and nothing else, however
--    many targets are finished. SKIP LOCKED: a concurrent claim passes by instead of queueing.
--  * judged: who must not be contacted is decided HERE, at the moment of claiming, not once
--    at activation: a person on the tenant's suppression list under any of their keys
--    (invite_person_keys, probing the list's primary key), or -- with a recontact cap -- one
--    another task of the tenant reached within $9 days (probing each other task's
--    (task_id, identifier_key) index). Whatever path put a target back in the queue (a
--    transient answer, a recovery, retry-failed), it passes through this check before any
--    platform call. A suppression committed before this statement began is seen; one
--    committing meanwhile waits for our row locks and then finds these rows in flight.
--  * skipped: the barred rows are closed in the same statement, so they never come back.
--  * numbered: window functions may not sit beside FOR UPDATE, so rows are numbered apart,
--    in queue order, the barred ones left out.
--  * wanted: an account is paired with the n-th target; accounts beyond the targets found
--    reserve nothing. locked: their rows are locked in id order before any is updated (as
--    every statement of the engine does), so claims, group commits and heartbeats of one
--    replica cannot deadlock.
--  * reserved: the quota is reserved only where this replica still holds the account's lease,
--    the account is the task's tenant's, not blocked nor cooling down, its minimum pause has
--    passed and its 24 h window has room, and the task is running and the account may serve it
--    (invite_task_accounts active) -- the safety net across replicas and restarts behind the
--    in-memory bucket, and why pause/cancel take effect before the next action.
--  * claimed: only targets paired with a successful reservation go in flight.
-- The final SELECT always returns one row at least: `available` (targets found that may be
-- contacted) tells an empty queue from a refused account, `running` whether the task still
-- runs, and -- only when the claim came back short -- `next_due` when the earliest other
-- pending target is due, never before now (NULL: nothing pending at all): the first entry of
-- the same index.
WITH task AS (
    SELECT id, user_id FROM invite_tasks WHERE id = $1 AND status = 'running'
), next AS (
    SELECT id, identifier_key, user_data, next_attempt_at, seq FROM invite_targets
    WHERE task_id = $1 AND status = 'pending' AND next_attempt_at <= $2
    ORDER BY next_attempt_at, seq
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), judged AS (
    SELECT x.id, x.next_attempt_at, x.seq,
           CASE
               WHEN EXISTS (SELECT 1 FROM invite_suppressions s, task t
                            WHERE s.user_id = t.user_id
                              AND s.identifier_key = ANY (invite_person_keys(x.identifier_key, x.user_data)))
                   THEN 'suppressed'
               WHEN $9::int > 0
                    AND EXISTS (SELECT 1 FROM task t JOIN invite_tasks o ON o.user_id = t.user_id AND o.id <> t.id
                                JOIN invite_targets p ON p.task_id = o.id
                                WHERE p.identifier_key = x.identifier_key
                                  AND p.status IN ('succeeded', 'uncertain')
                                  AND p.processed_at >= $2::timestamptz - $9::int * interval '1 day')
                   THEN 'recently_contacted'
           END AS barred
    FROM next x
), skipped AS (
    UPDATE invite_targets g SET
        status = 'skipped', outcome = j.barred, processed_at = $2,
        error_message = CASE j.barred
            WHEN 'suppressed' THEN 'on the suppression list'
            ELSE 'contacted by another of your tasks within the last ' || $9::int || ' days'
        END
    FROM judged j
    WHERE g.id = j.id AND j.barred IS NOT NULL
), numbered AS (
    SELECT id, row_number() OVER (ORDER BY next_attempt_at, seq) AS n FROM judged WHERE barred IS NULL
), wanted AS (
    SELECT w.account_id, w.cap, w.pause, w.n
    FROM unnest($5::text[], $6::int[], $7::float8[]) WITH ORDINALITY AS w(account_id, cap, pause, n)
    WHERE w.n <= (SELECT count(*) FROM numbered)
), locked AS MATERIALIZED (
    SELECT a.id FROM invite_accounts a
    WHERE a.id IN (SELECT account_id FROM wanted)
    ORDER BY a.id
    FOR UPDATE
), reserved AS (
    UPDATE invite_accounts a SET
        daily_count = CASE WHEN a.daily_window_start > $2::timestamptz - interval '24 hours'
                           THEN a.daily_count + 1 ELSE 1 END,
        daily_window_start = CASE WHEN a.daily_window_start > $2::timestamptz - interval '24 hours'
                                  THEN a.daily_window_start ELSE $2 END,
        last_action_at = $2,
        updated_at = $2
    FROM wanted w, task t
    WHERE a.id = w.account_id AND a.id IN (SELECT id FROM locked)
      AND a.lease_owner = $4 AND a.lease_expires_at > $2
      AND a.user_id = t.user_id
      AND a.status <> 'blocked'
      AND (a.cooldown_until IS NULL OR a.cooldown_until <= $2)
      AND (a.last_action_at IS NULL OR a.last_action_at <= $2::timestamptz - w.pause * interval '1 second')
      AND CASE WHEN a.daily_window_start > $2::timestamptz - interval '24 hours' THEN a.daily_count ELSE 0 END
          < LEAST(w.cap, COALESCE(a.daily_limit, w.cap))
      AND EXISTS (SELECT 1 FROM invite_task_accounts ta
                  WHERE ta.task_id = t.id AND ta.account_id = a.id AND ta.status IN ('active', 'cooldown'))
    RETURNING a.id, w.n
), claimed AS (
    UPDATE invite_targets g SET
        status = 'in_flight',
        lease_owner = $4,
        lease_expires_at = $2::timestamptz + $8::float8 * interval '1 second',
        account_id = r.id,
        attempts = g.attempts + 1
    FROM numbered nb JOIN reserved r ON r.n = nb.n
    WHERE g.id = nb.id
    RETURNING g.id, g.account_id, g.identifier_key, g.user_data, g.attempts
)
SELECT c.id, c.account_id, c.identifier_key, c.user_data, c.attempts,
       (SELECT count(*) FROM numbered) AS available,
       EXISTS (SELECT 1 FROM task) AS running,
       CASE WHEN (SELECT count(*) FROM numbered) < $3 THEN
           (SELECT GREATEST(p.next_attempt_at, $2::timestamptz) FROM invite_targets p
            WHERE p.task_id = $1 AND p.status = 'pending' AND p.id NOT IN (SELECT id FROM next)
            ORDER BY p.next_attempt_at, p.seq
            LIMIT 1)
       END AS next_due
FROM (SELECT 1) one LEFT JOIN claimed c ON true

-- name: record
-- Group commit: the outcomes of many actions in ONE statement (one round trip, atomic):
--  * targets: only rows this replica still holds for this very claim ($1 owner, the attempt
--    number it claimed) change -- a row taken over after its lease expired is someone else's
--    now; an `uncertain` left by a recovery sweep is overwritten (the real outcome is better
--    than "unknown"); a target going back to the queue loses its lease;
--  * logs: one execution-log row per platform call (and per failed check of an account's
--    right, without a target), under the id the recorder gave it ($34): a batch written
--    again because the answer to its commit was lost adds none twice; a target deleted with
--    its task meanwhile is left out;
--  * accounts: the state the outcomes changed (cooldown, AIMD multiplier, blocked), only on
--    accounts this replica still leases, locked in id order;
--  * task_accounts: per task and account its state and its counters by outcome ($29 holds
--    JSON objects of increments merged into stats); an account that left the task or was
--    blocked stays so;
--  * one invite_task_events notification per task ($32), sent when the statement commits;
--    $33 is the time of the commit.
-- Each row is touched by one part only, so the parts cannot trip over each other.
WITH targets AS (
    UPDATE invite_targets g SET
        status = u.status,
        outcome = u.outcome,
        processed_at = u.processed_at,
        error_message = u.error_message,
        result = u.result::jsonb,
        attempts = u.attempts,
        next_attempt_at = u.next_attempt_at,
        lease_owner = CASE WHEN u.status = 'pending' THEN NULL ELSE g.lease_owner END,
        lease_expires_at = CASE WHEN u.status = 'pending' THEN NULL ELSE g.lease_expires_at END
    FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[],
                $9::int[], $10::timestamptz[])
         AS u(id, claimed, status, outcome, processed_at, error_message, result, attempts, next_attempt_at)
    WHERE g.id = u.id AND g.lease_owner = $1 AND g.attempts = u.claimed
      AND g.status IN ('in_flight', 'uncertain')
    RETURNING g.id
), logs AS (
    INSERT INTO invite_execution_logs (id, task_id, target_id, account_id, action, status, details, created_at)
    SELECT u.id, u.task_id, u.target_id, u.account_id, u.action, u.status, u.details::jsonb, u.created_at
    FROM unnest($34::uuid[], $11::uuid[], $12::uuid[], $13::text[], $14::text[], $15::text[], $16::text[],
                $17::timestamptz[])
         AS u(id, task_id, target_id, account_id, action, status, details, created_at)
    WHERE u.target_id IS NULL OR EXISTS (SELECT 1 FROM invite_targets g WHERE g.id = u.target_id)
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
), mine AS MATERIALIZED (
    SELECT id FROM invite_accounts WHERE id = ANY($18::text[]) AND lease_owner = $1 ORDER BY id FOR UPDATE
), accounts AS (
    UPDATE invite_accounts a SET
        status = u.status,
        status_reason = u.status_reason,
        cooldown_until = u.cooldown_until,
        pace_multiplier = u.multiplier,
        flood_waits = a.flood_waits + u.flood_waits,
        peer_floods = a.peer_floods + u.peer_floods,
        updated_at = $33
    FROM unnest($18::text[], $19::text[], $20::text[], $21::timestamptz[], $22::float8[], $23::int[], $24::int[])
         AS u(id, status, status_reason, cooldown_until, multiplier, flood_waits, peer_floods),
         mine m
    WHERE a.id = u.id AND m.id = u.id
    RETURNING 1
), task_accounts AS (
    UPDATE invite_task_accounts ta SET
        status = CASE WHEN ta.status IN ('excluded', 'blocked') THEN ta.status ELSE u.status END,
        status_reason = CASE WHEN ta.status IN ('excluded', 'blocked') THEN ta.status_reason
                             ELSE u.status_reason END,
        cooldown_until = u.cooldown_until,
        stats = (SELECT COALESCE(jsonb_object_agg(k, COALESCE((ta.stats ->> k)::bigint, 0)
                                                     + COALESCE((u.stats::jsonb ->> k)::bigint, 0)), '{}')
                 FROM jsonb_object_keys(ta.stats || u.stats::jsonb) k),
        last_used_at = COALESCE(u.last_used_at, ta.last_used_at)
    FROM unnest($25::uuid[], $26::text[], $27::text[], $28::text[], $29::text[], $30::timestamptz[],
                $31::timestamptz[])
         AS u(task_id, account_id, status, status_reason, stats, cooldown_until, last_used_at)
    WHERE ta.task_id = u.task_id AND ta.account_id = u.account_id
    RETURNING 1
)
SELECT (SELECT COALESCE(array_agg(id), '{}') FROM targets) AS applied,
       (SELECT count(*) FROM logs) AS logged,
       (SELECT count(*) FROM accounts) AS accounts,
       (SELECT count(*) FROM task_accounts) AS task_accounts,
       (SELECT count(pg_notify('invite_task_events', p)) FROM unnest($32::text[]) p) AS notified

-- name: retire_account
-- An account found dead when its client starts: blocked for good with the reason, if this
-- replica ($1) still leases it; its task rows follow (block_task_accounts).
UPDATE invite_accounts SET status = 'blocked', status_reason = $3, updated_at = $4
WHERE id = $2 AND lease_owner = $1

-- name: block_task_accounts
-- A dead account is blocked in every task it was attached to, not only the one it died in.
UPDATE invite_task_accounts ta SET status = 'blocked', status_reason = u.reason
FROM unnest($1::text[], $2::text[]) AS u(account_id, reason)
WHERE ta.account_id = u.account_id AND ta.status <> 'blocked'

-- name: notify
-- Status changes made by the engine: live status pages and the other replicas LISTEN on
-- invite_task_events.
SELECT pg_notify('invite_task_events', p) FROM unnest($1::text[]) p

-- name: breaker_window
-- The circuit breaker's view of a task: spam flags so far (from the per-account counters) and
-- how many of its last $2 outcomes were errors ($3), newest first on
-- idx_invite_logs_task_created.
SELECT (SELECT COALESCE(sum((stats ->> 'peer_flood')::bigint), 0)
        FROM invite_task_accounts WHERE task_id = $1) AS peer_floods,
       count(*) AS outcomes,
       count(*) FILTER (WHERE w.status = ANY($3::text[])) AS errors
FROM (SELECT status FROM invite_execution_logs WHERE task_id = $1
      ORDER BY created_at DESC LIMIT $2) w

-- name: pause_task
-- The breaker or the driver (chat unavailable) pauses a task: only a running one, so a pause
-- by the customer or a cancel in between wins.
UPDATE invite_tasks SET status = 'paused', status_reason = $2, updated_at = $3
WHERE id = $1 AND status = 'running'
RETURNING platform

-- name: acquire_accounts
-- Lease up to $3 more accounts for replica $1 at $2 (leases last $5 s): accounts attached to a
-- running task of their own tenant run by this replica's driver ($6), not blocked, whose lease is free, expired, or already ours
-- from before a restart -- but not those this process drives or must leave alone ($4).
-- SKIP LOCKED: two replicas acquiring at once take different accounts. The previous owner is
-- returned so a takeover of an expired lease can be counted, and `channel_invites`: per running
-- invite task the account serves, the invites it made into the task's channel so far (the
-- platform's lifetime cap per channel; invite_account_channels, one probe per task).
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
RETURNING a.id, a.user_id, a.platform, a.status, a.daily_window_start, a.daily_count, a.daily_limit, a.last_action_at,
          a.cooldown_until, a.pace_multiplier, f.previous_owner,
          (SELECT COALESCE(jsonb_object_agg(t.id, c.invites), '{}')
            FROM invite_task_accounts ta
            JOIN invite_tasks t ON t.id = ta.task_id
            JOIN invite_account_channels c ON c.account_id = ta.account_id
                                          AND c.channel = invite_channel_key(t.target_group_id)
            WHERE ta.account_id = a.id AND t.status = 'running' AND t.task_type = 'invite_to_group') AS channel_invites

-- name: renew_leases
-- The heartbeat: extend this replica's leases on the accounts it drives ($2). An account not
-- returned was taken over by another replica (our lease had expired): stop driving it.
-- $5 (per account; NULL: unchanged) is the daily limit the accounts provider gave with its
-- lease: kept in the row, the claim statement holds it on every replica. `channel_invites`
-- as in acquire_accounts, fresh on every beat.
WITH mine AS MATERIALIZED (
    SELECT id FROM invite_accounts WHERE id = ANY($2::text[]) AND lease_owner = $1 ORDER BY id FOR UPDATE
)
UPDATE invite_accounts a SET lease_expires_at = $3::timestamptz + $4::float8 * interval '1 second',
                             daily_limit = COALESCE(u.daily_limit, a.daily_limit)
FROM mine m, unnest($2::text[], $5::int[]) AS u(id, daily_limit)
WHERE a.id = m.id AND u.id = m.id
RETURNING a.id,
          (SELECT COALESCE(jsonb_object_agg(t.id, c.invites), '{}')
            FROM invite_task_accounts ta
            JOIN invite_tasks t ON t.id = ta.task_id
            JOIN invite_account_channels c ON c.account_id = ta.account_id
                                          AND c.channel = invite_channel_key(t.target_group_id)
            WHERE ta.account_id = a.id AND t.status = 'running' AND t.task_type = 'invite_to_group') AS channel_invites

-- name: release_accounts
-- Graceful release: the accounts are free for any replica at once. The pause runs from the
-- platform's answer to the last action ($4, per account; NULL: none), later than the
-- reservation the claim wrote, so the next owner counts it from there.
WITH mine AS MATERIALIZED (
    SELECT id FROM invite_accounts WHERE id = ANY($2::text[]) AND lease_owner = $1 ORDER BY id FOR UPDATE
)
UPDATE invite_accounts a SET lease_owner = NULL, lease_expires_at = NULL, updated_at = $3,
                             last_action_at = GREATEST(a.last_action_at, u.answered_at)
FROM mine m, unnest($2::text[], $4::timestamptz[]) AS u(id, answered_at)
WHERE a.id = m.id AND u.id = m.id

-- name: account_state
-- Re-read the quota state of accounts whose reservation the database refused, and whether this
-- replica ($1) still holds them.
SELECT id, platform, daily_window_start, daily_count, daily_limit, last_action_at, cooldown_until,
       pace_multiplier, status, (lease_owner IS NOT DISTINCT FROM $1) AS held
FROM invite_accounts WHERE id = ANY($2::text[])

-- name: running_tasks
-- The scheduler's picture of the work: running tasks are a small set (invite_tasks_running).
-- Only tasks of this replica's driver ($1): the sandbox never stands in for Telegram.
SELECT id, user_id, platform, task_type, target_group_id, message_template, priority, settings
FROM invite_tasks WHERE status = 'running' AND driver = $1

-- name: servable
-- Which running tasks of driver $2 each of these accounts ($1) may serve: attached and active
-- or cooling down, of the same tenant, and not blocked.
SELECT ta.account_id, ta.task_id
FROM invite_task_accounts ta
JOIN invite_tasks t ON t.id = ta.task_id
JOIN invite_accounts a ON a.id = ta.account_id
WHERE ta.account_id = ANY($1::text[])
  AND ta.status IN ('active', 'cooldown')
  AND t.status = 'running' AND t.driver = $2 AND a.user_id = t.user_id AND a.status <> 'blocked'

-- name: start_due
-- Scheduled tasks whose time has come start exactly once across replicas: the status guard
-- lets one UPDATE win per row.
UPDATE invite_tasks SET status = 'running', status_reason = NULL,
                        started_at = COALESCE(started_at, $1), updated_at = $1
WHERE status = 'scheduled' AND scheduled_at <= $1
RETURNING id, platform

-- name: next_scheduled
-- When the lifecycle loop must wake next for a scheduled start (invite_tasks_due).
SELECT min(scheduled_at) FROM invite_tasks WHERE status = 'scheduled'

-- name: tasks_without_accounts
-- Running tasks of driver $1 that no replica has prepared yet (no account attached).
SELECT t.id, t.user_id, t.platform, t.settings FROM invite_tasks t
WHERE t.status = 'running' AND t.driver = $1 AND NOT EXISTS (SELECT 1 FROM invite_task_accounts ta WHERE ta.task_id = t.id)

-- name: lock_task_for_activation
-- Activation happens once: the row lock makes a second replica wait here...
SELECT 1 FROM invite_tasks WHERE id = $1 AND status = 'running' FOR UPDATE

-- name: task_prepared
-- ... and then find the accounts attached. A statement of its own: under READ COMMITTED a new
-- statement sees what the first replica committed, while a subquery beside the FOR UPDATE
-- above would still read the snapshot taken before the wait.
SELECT EXISTS (SELECT 1 FROM invite_task_accounts WHERE task_id = $1)

-- name: upsert_accounts
-- The tenant's accounts as the provider lists them. An id already owned by another tenant is
-- left untouched (and then not attached below): an account serves its owner's tasks only. A
-- list without a limit keeps the one the provider's last lease gave (renew_leases).
INSERT INTO invite_accounts AS a (id, user_id, platform, label, daily_limit, created_at, updated_at)
SELECT u.id, $1, $2, u.label, u.daily_limit, $3, $3
FROM unnest($4::text[], $5::text[], $6::int[]) AS u(id, label, daily_limit)
ON CONFLICT (id) DO UPDATE SET label = EXCLUDED.label,
                               daily_limit = COALESCE(EXCLUDED.daily_limit, a.daily_limit),
                               updated_at = EXCLUDED.updated_at
WHERE a.user_id = EXCLUDED.user_id

-- name: attach_accounts
-- Attach the tenant's ($2) accounts $3 to task $1, at most $4 of them (usable ones first);
-- an account already blocked comes in blocked, so the status shows why it does nothing.
-- The task waits for its accounts no longer: what wait_for_accounts wrote is cleared.
WITH attached AS (
    INSERT INTO invite_task_accounts (task_id, account_id, platform, status, status_reason)
    SELECT $1, a.id, a.platform, CASE WHEN a.status = 'blocked' THEN 'blocked' ELSE 'active' END, a.status_reason
    FROM invite_accounts a
    WHERE a.id = ANY($3::text[]) AND a.user_id = $2
    ORDER BY a.status = 'blocked', a.id
    LIMIT $4
    ON CONFLICT (task_id, account_id) DO NOTHING
    RETURNING status
), waited AS (
    UPDATE invite_tasks SET accounts_wait_since = NULL, status_reason = NULL
    WHERE id = $1 AND accounts_wait_since IS NOT NULL AND EXISTS (SELECT 1 FROM attached)
)
SELECT status FROM attached

-- name: fail_task
-- The task cannot go on (no usable account): failed, with the reason the customer sees.
UPDATE invite_tasks SET status = 'failed', status_reason = $2, completed_at = $3, updated_at = $3
WHERE id = $1 AND status IN ('running', 'scheduled')
RETURNING platform

-- name: fail_unserved
-- Running tasks whose every attached account was blocked or excluded (e.g. none may invite
-- into the group) fail with the accounts' reasons, instead of waiting forever.
UPDATE invite_tasks t SET
    status = 'failed', completed_at = $1, updated_at = $1,
    status_reason = 'no account can serve this task: ' ||
        (SELECT string_agg(ta.account_id || ' ' || ta.status || COALESCE(' (' || ta.status_reason || ')', ''),
                           '; ' ORDER BY ta.account_id)
         FROM invite_task_accounts ta WHERE ta.task_id = t.id)
WHERE t.status = 'running'
  AND EXISTS (SELECT 1 FROM invite_task_accounts ta WHERE ta.task_id = t.id)
  AND NOT EXISTS (SELECT 1 FROM invite_task_accounts ta JOIN invite_accounts a ON a.id = ta.account_id
                  WHERE ta.task_id = t.id AND ta.status IN ('active', 'cooldown') AND a.status <> 'blocked')
RETURNING t.id, t.platform

-- name: close_queues
-- Targets still pending in a cancelled or failed task will never be acted on: close them,
-- at most $2 per task per call (the caller repeats while $2 or more come back), so a big
-- failed task is closed in short statements. The API closes a cancelled task's queue
-- itself; this catches failures and stragglers, and finds nothing on almost every pass.
-- Each lifecycle pass runs it, so it must cost nothing then: as a plain join of targets,
-- tasks and counters the planner hashed the counters and seq-scanned every pending target
-- of the running tasks on every pass (a second of PostgreSQL's time at a million targets).
--  * closing: the few cancelled or failed tasks whose trigger-kept counters still show
--    something pending -- found without reading a target.
--  * queued: each one's pending targets, from the partial index invite_targets_pending (the
--    ORDER BY is its order, so reading the index beats a scan and a sort). The LATERAL,
--    which its LIMIT keeps from being flattened into a join, makes the index the inner side
--    of a nested loop driven by `closing`: when nothing needs closing, no target is read.
--  * closed: the rows by primary key (= ANY of the ids found), never a scan of the table.
WITH closing AS MATERIALIZED (
    SELECT t.id, t.status, t.status_reason
    FROM invite_task_counts c JOIN invite_tasks t ON t.id = c.task_id
    WHERE c.status = 'pending' AND c.n > 0 AND t.status IN ('cancelled', 'failed')
), queued AS (
    SELECT p.id
    FROM closing k CROSS JOIN LATERAL (
        SELECT id FROM invite_targets
        WHERE task_id = k.id AND status = 'pending'
        ORDER BY next_attempt_at, seq
        LIMIT $2
    ) p
), closed AS (
    UPDATE invite_targets g SET
        status = 'cancelled',
        outcome = CASE k.status WHEN 'failed' THEN 'task_failed' ELSE 'task_cancelled' END,
        processed_at = $1,
        error_message = k.status_reason
    FROM closing k
    WHERE g.id = ANY (ARRAY(SELECT id FROM queued)) AND g.task_id = k.id AND g.status = 'pending'
    RETURNING g.task_id
)
SELECT count(*) FROM closed

-- name: complete_tasks
-- Completion is detected once: running → completed only when the trigger-kept counters show
-- nothing pending or in flight; the status guard lets one replica win.
UPDATE invite_tasks t SET status = 'completed', status_reason = NULL, completed_at = $1, updated_at = $1
WHERE t.status = 'running'
  AND NOT EXISTS (SELECT 1 FROM invite_task_counts c
                  WHERE c.task_id = t.id AND c.status IN ('pending', 'in_flight') AND c.n > 0)
RETURNING t.id, t.platform, t.started_at

-- name: recover
-- The recovery of in-flight targets whose worker is gone, $2 at a time at $1: those whose
-- lease ran out (the sweep, any replica: their worker died or hung) and, at start-up, every
-- one under this replica's own id $3 (a previous process with the same id died; nothing is
-- waiting for their outcome). Through the small invite_targets_in_flight index ($3 NULL: the
-- sweep). A message may have gone out: it becomes `uncertain` (outcome `lease_expired`) and
-- is never re-sent blindly -- whoever drives its account next asks the platform whether it
-- went out (reconcile_take). It keeps the time its lease ran out (when its attempt began
-- follows) and, unless its worker is known dead, its owner, so a late outcome from that
-- worker still replaces "unknown". An invite is idempotent on Telegram: back to the queue.
WITH expired AS (
    SELECT id FROM invite_targets
    WHERE status = 'in_flight' AND (lease_expires_at <= $1 OR lease_owner = $3)
    ORDER BY lease_expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), fate AS (
    SELECT g.id, k.task_type = 'send_messages' AS message, g.lease_owner IS NOT DISTINCT FROM $3 AS dead
    FROM expired e JOIN invite_targets g ON g.id = e.id JOIN invite_tasks k ON k.id = g.task_id
)
UPDATE invite_targets g SET
    status = CASE WHEN f.message THEN 'uncertain' ELSE 'pending' END,
    outcome = CASE WHEN f.message THEN 'lease_expired' ELSE g.outcome END,
    processed_at = CASE WHEN f.message THEN $1 ELSE g.processed_at END,
    error_message = CASE WHEN f.message
        THEN 'the worker sending this message stopped before recording whether it was delivered; '
             'it is not re-sent unless the platform shows it never went out'
        ELSE g.error_message END,
    next_attempt_at = CASE WHEN f.message THEN g.next_attempt_at ELSE $1 END,
    lease_owner = CASE WHEN f.message AND NOT f.dead THEN g.lease_owner END,
    lease_expires_at = CASE WHEN f.message THEN g.lease_expires_at END
FROM fate f
WHERE g.id = f.id
RETURNING g.task_id, g.status

-- name: reconcile_take
-- Delivery reconciliation, step 1: the messages account $2 may have sent for a worker that is
-- gone -- in flight with the lease run out at $1, or `uncertain` with outcome `lease_expired`
-- (recovered, not yet asked) -- taken in flight by replica $3 for $4 s before the platform is
-- asked about them. Held in flight: two holders never ask about one message, a task does not
-- complete under a message that may go back in the queue (complete_tasks waits for in-flight
-- targets), and a reconciler that dies leaves them to the recovery as before. `since`, when
-- the attempt began (the old lease less the claim's lease time $5), is kept in result, so a
-- second reconciliation still asks from the first attempt's start.
--  * candidates: the expired ones from invite_targets_in_flight; the recovered ones through
--    the account's tasks (invite_task_accounts_account) and each task's uncertain targets
--    (idx_invite_targets_task_status) -- no scan of the table.
--  * picked: re-checked under the row lock (SKIP LOCKED: someone else has it).
-- The final SELECT always returns a row: `wait_until` is the latest live lease of anything in
-- flight on this account (a previous holder may still be acting on it; NULL: nothing).
WITH candidates AS (
    SELECT id FROM invite_targets
    WHERE status = 'in_flight' AND lease_expires_at <= $1 AND account_id = $2
    UNION
    SELECT g.id FROM invite_task_accounts ta JOIN invite_targets g ON g.task_id = ta.task_id
    WHERE ta.account_id = $2 AND g.status = 'uncertain' AND g.outcome = 'lease_expired' AND g.account_id = $2
), picked AS (
    SELECT g.id, g.lease_expires_at FROM invite_targets g JOIN invite_tasks k ON k.id = g.task_id
    WHERE g.id IN (SELECT id FROM candidates) AND g.account_id = $2 AND k.task_type = 'send_messages'
      AND ((g.status = 'in_flight' AND g.lease_expires_at <= $1)
           OR (g.status = 'uncertain' AND g.outcome = 'lease_expired'))
    FOR UPDATE OF g SKIP LOCKED
), taken AS (
    UPDATE invite_targets g SET
        status = 'in_flight',
        lease_owner = $3,
        lease_expires_at = $1::timestamptz + $4::float8 * interval '1 second',
        result = g.result || jsonb_build_object('attempt_since', COALESCE(
            g.result -> 'attempt_since', to_jsonb(p.lease_expires_at - $5::float8 * interval '1 second')))
    FROM picked p
    WHERE g.id = p.id
    RETURNING g.id, g.task_id, g.identifier_key, g.user_data, g.attempts,
              (g.result ->> 'attempt_since')::timestamptz AS since
)
SELECT t.id, t.task_id, t.identifier_key, t.user_data, t.attempts, t.since,
       (SELECT max(lease_expires_at) FROM invite_targets
        WHERE status = 'in_flight' AND lease_expires_at > $1 AND account_id = $2) AS wait_until
FROM (SELECT 1) one LEFT JOIN taken t ON true

-- name: reconcile_settle
-- Delivery reconciliation, step 2: what the platform said of each message taken by
-- reconcile_take ($2 ids, $3 their attempt numbers, $4 'sent' | 'not_sent' | 'unknown', $5
-- when each attempt began), written by replica $1 for account $6 at $7, where it still holds
-- them:
--  * sent: `succeeded`, outcome `delivered_confirmed`. Its claim reserved the quota before
--    the call, so the account's counters are already right.
--  * not sent: it never went out, so it may be sent now -- back to `pending`, its attempt not
--    counted and its quota reservation given back (if the account's 24 h window still holds
--    it), as if never claimed. That holds while the task runs or is paused. A task finished
--    meanwhile (an uncertain message is final, so its task may complete) is not reopened
--    behind the customer's back: on a completed task the message ends `failed` (outcome
--    `not_sent`, the reason says so) -- a new task can reach the person; on a cancelled or
--    failed one it is closed as close_queues would. The task row is read FOR SHARE, so a
--    completion committing meanwhile is seen, not raced.
--  * unknown: stays `uncertain`, outcome `delivery_unknown`: asked once, never again.
-- One execution-log row each (action `check_delivery`, status delivered_confirmed, not_sent or
-- delivery_unknown); the task counters follow by trigger.
WITH answers AS (
    SELECT u.id, u.claimed, u.verdict, u.since
    FROM unnest($2::uuid[], $3::int[], $4::text[], $5::timestamptz[]) AS u(id, claimed, verdict, since)
), tasks AS MATERIALIZED (
    SELECT k.id, k.status FROM invite_tasks k
    WHERE k.id IN (SELECT g.task_id FROM invite_targets g JOIN answers a ON a.id = g.id)
    ORDER BY k.id
    FOR SHARE
), fate AS (
    SELECT a.id, a.claimed, a.verdict, a.since,
           CASE a.verdict WHEN 'sent' THEN 'delivered_confirmed' WHEN 'unknown' THEN 'delivery_unknown'
                          ELSE 'not_sent' END AS checked,
           CASE a.verdict WHEN 'sent' THEN 'succeeded' WHEN 'unknown' THEN 'uncertain'
               ELSE CASE k.status WHEN 'completed' THEN 'failed'
                                  WHEN 'cancelled' THEN 'cancelled' WHEN 'failed' THEN 'cancelled'
                                  ELSE 'pending' END END AS status,
           CASE a.verdict WHEN 'sent' THEN 'delivered_confirmed' WHEN 'unknown' THEN 'delivery_unknown'
               ELSE CASE k.status WHEN 'cancelled' THEN 'task_cancelled' WHEN 'failed' THEN 'task_failed'
                                  ELSE 'not_sent' END END AS outcome,
           CASE a.verdict
               WHEN 'sent' THEN 'delivered: the platform shows the message sent after its worker stopped'
               WHEN 'unknown' THEN 'the worker sending this message stopped before recording whether it '
                                   'was delivered, and the platform could not tell; it is not re-sent'
               ELSE CASE k.status WHEN 'completed' THEN 'not sent: its worker stopped before sending it, '
                                                        'and the task had completed meanwhile'
                                  ELSE 'its worker stopped before sending it (the platform shows no such '
                                       'message): back in the queue' END END AS reason
    FROM answers a JOIN invite_targets g ON g.id = a.id JOIN tasks k ON k.id = g.task_id
), settled AS (
    UPDATE invite_targets g SET
        status = f.status,
        outcome = f.outcome,
        processed_at = CASE WHEN f.status = 'pending' THEN NULL ELSE $7::timestamptz END,
        error_message = CASE WHEN f.status = 'succeeded' THEN NULL ELSE f.reason END,
        result = CASE WHEN f.status = 'pending' THEN g.result - 'attempt_since'
                      ELSE g.result || jsonb_build_object('account_id', $6::text, 'detail', f.reason) END,
        attempts = CASE WHEN f.verdict = 'not_sent' THEN GREATEST(g.attempts - 1, 0) ELSE g.attempts END,
        next_attempt_at = CASE WHEN f.status = 'pending' THEN $7::timestamptz ELSE g.next_attempt_at END,
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM fate f
    WHERE g.id = f.id AND g.lease_owner = $1 AND g.status = 'in_flight' AND g.attempts = f.claimed
    RETURNING g.id, g.task_id, g.identifier_key, g.status, f.verdict, f.checked, f.outcome, f.reason,
              f.claimed, f.since
), logs AS (
    INSERT INTO invite_execution_logs (task_id, target_id, account_id, action, status, details, created_at)
    SELECT s.task_id, s.id, $6, 'check_delivery', s.checked,
           jsonb_build_object('detail', s.reason, 'attempt', s.claimed, 'identifier', s.identifier_key,
                              'attempt_since', s.since),
           $7::timestamptz
    FROM settled s
    RETURNING 1
), refund AS (
    UPDATE invite_accounts a SET
        daily_count = GREATEST(a.daily_count - (SELECT count(*) FROM settled s
                                                WHERE s.verdict = 'not_sent' AND s.since >= a.daily_window_start), 0),
        updated_at = $7::timestamptz
    WHERE a.id = $6 AND a.daily_window_start > $7::timestamptz - interval '24 hours'
      AND EXISTS (SELECT 1 FROM settled WHERE verdict = 'not_sent')
    RETURNING 1
)
SELECT s.task_id, s.status, s.outcome, (SELECT count(*) FROM logs) AS logged, (SELECT count(*) FROM refund) AS refunded
FROM settled s

-- name: wait_for_accounts
-- Activation of running task $1 could not get its accounts at $3 ($2 says why): the reason
-- is shown, and the wait counted from the first such attempt; once it has lasted $4 seconds
-- the task is paused with the reason instead of staying "running" for ever (a resume waits
-- anew). Only a running task without accounts: a pause or cancel meanwhile wins.
UPDATE invite_tasks t SET
    accounts_wait_since = CASE WHEN w.paused THEN NULL ELSE w.since END,
    status = CASE WHEN w.paused THEN 'paused' ELSE t.status END,
    status_reason = CASE WHEN w.paused
                         THEN 'paused: no accounts after waiting ' || round($4::float8 / 60) || ' min: ' || $2
                         ELSE 'waiting for accounts: ' || $2 END,
    updated_at = $3
FROM (SELECT id, COALESCE(accounts_wait_since, $3) AS since,
             COALESCE(accounts_wait_since, $3) <= $3::timestamptz - $4::float8 * interval '1 second' AS paused
      FROM invite_tasks WHERE id = $1) w
WHERE t.id = w.id AND t.status = 'running'
  AND NOT EXISTS (SELECT 1 FROM invite_task_accounts ta WHERE ta.task_id = t.id)
RETURNING t.status, t.platform
