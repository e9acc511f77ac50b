-- The group commit's statements (invite/engine/recorder.py). Every time is a parameter from
-- the service's clock (never now()). Rows of invite_accounts are locked in id order, as by
-- every statement of the engine, so the claim, the group commit and the lease heartbeat of one
-- replica never deadlock. The `-- args:` line of each statement names its parameters, in
-- order: the engine's repository (invite/engine/repository.py) passes them by these names.

-- name: record
-- args: $1 replica, $2 targets, $3 logs, $4 accounts, $5 task_accounts, $6 events, $7 now, $8 kept
-- Group commit: the outcomes of many actions in ONE statement (one round trip, atomic). Each
-- batch is one jsonb document, encoded once from the recorder's rows (their field names are
-- the column names below):
--  * targets: only rows `replica` still holds for this very claim (the attempt number it
--    claimed) change -- a row taken over after its lease expired is someone else's now; an
--    `uncertain` left by a recovery sweep is overwritten (the real outcome is better than
--    "unknown"); a target going back to the queue loses its lease, and goes to its head when
--    its next attempt is NULL ('-infinity', before the people not reached yet: a one-use
--    invite link offered); a `link_state` given (a link offered or sent) replaces its own;
--  * logs: [task id, log row] pairs, one execution-log row per platform call (and per failed
--    check of an account's right, without a target), under the id the recorder gave it: a
--    batch written again because the answer to its commit was lost adds none twice; a target
--    deleted with its task meanwhile is left out;
--  * accounts: the state the outcomes changed (cooldown, AIMD multiplier, blocked), only on
--    accounts this replica still leases, locked in id order; a `warmup_since` given (a spam
--    flag, a death) starts the account's clean history again (invite/engine/warmup.py);
--  * task_accounts: [[task id, account id], change] pairs, per task and account its state and
--    its counters by outcome (`stats`: an object of increments merged into stats); a status
--    among `kept` (decisions.KEPT_TASK_ACCOUNT_STATUSES, the ones an outcome sets: the account
--    left the task, or died) stays, with its reason, whatever a later change says, until a
--    person undoes it;
--  * one invite_task_events notification per task (`events`), sent when the statement
--    commits; `now` is the time of the commit.
-- Each row is touched by one part only, so the parts cannot trip over each other.
WITH targets AS (
    UPDATE invite_targets g SET
        status = u.status,
        outcome = u.outcome,
        processed_at = u.processed_at,
        error_message = u.error_message,
        result = u.result,
        attempts = u.attempts,
        next_attempt_at = COALESCE(u.next_attempt_at, '-infinity'),
        link_state = COALESCE(u.link_state, g.link_state),
        lease_owner = CASE WHEN u.status = 'pending' THEN NULL ELSE g.lease_owner END,
        lease_expires_at = CASE WHEN u.status = 'pending' THEN NULL ELSE g.lease_expires_at END
    FROM jsonb_to_recordset($2::jsonb)
         AS u(id uuid, claimed int, status text, outcome text, processed_at timestamptz, error_message text,
              result jsonb, attempts int, next_attempt_at timestamptz, link_state text)
    WHERE g.id = u.id AND g.lease_owner = $1 AND g.attempts = u.claimed
      AND g.status IN ('in_flight', 'uncertain')
    RETURNING g.id
), logs AS (
    INSERT INTO invite_execution_logs (id, task_id, target_id, account_id, action, status, details, created_at)
    SELECT u.id, (e.pair ->> 0)::uuid, u.target_id, u.account_id, u.action, u.status, u.details, u.at
    FROM jsonb_array_elements($3::jsonb) AS e(pair),
         jsonb_to_record(e.pair -> 1)
         AS u(id uuid, target_id uuid, account_id text, action text, status text, details jsonb, at timestamptz)
    WHERE u.target_id IS NULL OR EXISTS (SELECT 1 FROM invite_targets g WHERE g.id = u.target_id)
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
), mine AS MATERIALIZED (
    SELECT id FROM invite_accounts
    WHERE id = ANY (ARRAY(SELECT u.id FROM jsonb_to_recordset($4::jsonb) AS u(id text))) AND lease_owner = $1
    ORDER BY id
    FOR UPDATE
), accounts AS (
    UPDATE invite_accounts a SET
        status = u.status,
        status_reason = u.reason,
        cooldown_until = u.cooldown_until,
        pace_multiplier = u.multiplier,
        flood_waits = a.flood_waits + u.flood_waits,
        peer_floods = a.peer_floods + u.peer_floods,
        warmup_since = COALESCE(u.warmup_since, a.warmup_since),
        updated_at = $7
    FROM jsonb_to_recordset($4::jsonb)
         AS u(id text, status text, reason text, cooldown_until timestamptz, multiplier float8, flood_waits int,
              peer_floods int, warmup_since timestamptz),
         mine m
    WHERE a.id = u.id AND m.id = u.id
    RETURNING 1
), task_accounts AS (
    UPDATE invite_task_accounts ta SET
        status = CASE WHEN ta.status = ANY($8::text[]) THEN ta.status ELSE u.status END,
        status_reason = CASE WHEN ta.status = ANY($8::text[]) THEN ta.status_reason ELSE u.reason END,
        cooldown_until = u.cooldown_until,
        stats = (SELECT COALESCE(jsonb_object_agg(k, COALESCE((ta.stats ->> k)::bigint, 0)
                                                     + COALESCE((u.stats ->> k)::bigint, 0)), '{}')
                 FROM jsonb_object_keys(ta.stats || u.stats) k),
        last_used_at = COALESCE(u.last_used_at, ta.last_used_at)
    FROM jsonb_array_elements($5::jsonb) AS e(pair),
         jsonb_to_record(e.pair -> 1)
         AS u(status text, reason text, cooldown_until timestamptz, stats jsonb, last_used_at timestamptz)
    WHERE ta.task_id = (e.pair -> 0 ->> 0)::uuid AND ta.account_id = e.pair -> 0 ->> 1
    RETURNING 1
)
SELECT (SELECT COALESCE(array_agg(id), '{}') FROM targets) AS applied,
       (SELECT count(*) FROM logs) AS logged,
       (SELECT count(*) FROM accounts) AS accounts,
       (SELECT count(*) FROM task_accounts) AS task_accounts,
       (SELECT count(pg_notify('invite_task_events', p)) FROM unnest($6::text[]) p) AS notified

-- name: block_task_accounts
-- args: $1 status, $2 reasons
-- A dead account is blocked in every task it was attached to, not only the one it died in
-- (`reasons`: a jsonb object, account id → why), its rows given `status`: the decision
-- table's for a dead account (the task_account cell of account_dead and dead_at_start).
UPDATE invite_task_accounts ta SET status = $1::text, status_reason = u.reason
FROM jsonb_each_text($2::jsonb) AS u(account_id, reason)
WHERE ta.account_id = u.account_id AND ta.status <> $1::text
