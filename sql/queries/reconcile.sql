-- Delivery reconciliation's statements (invite/engine/reconcile.py). Every time is a
-- parameter from the service's clock (never now()). The `-- args:` line of each statement
-- names its parameters, in order: the engine's repository (invite/engine/repository.py)
-- passes them by these names. A task's status spelt out here is read (what became of the
-- task decides its target's fate), never a transition: no statement here moves a task.

-- name: reconcile_take
-- args: $1 now, $2 account_id, $3 replica, $4 lease_seconds, $5 claim_lease_seconds
-- Delivery reconciliation, step 1: the messages the account may have sent for a worker that
-- is gone (a message task's, or an invite task's one-use link, `link_state` due) -- in flight with the lease run out at `now`, or `uncertain` with outcome
-- `lease_expired` (recovered, not yet asked) -- taken in flight by `replica` for
-- `lease_seconds` before the platform is asked about them. Held in flight: two holders never
-- ask about one message, a task does not complete under a message that may go back in the
-- queue (lifecycle.complete_tasks waits for in-flight targets), and a reconciler that dies
-- leaves them to the recovery as before. `since`, when the attempt began (the old lease less
-- the claim's lease time, `claim_lease_seconds`), is kept in result, so a second
-- reconciliation still asks from the first attempt's start.
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
    WHERE g.id IN (SELECT id FROM candidates) AND g.account_id = $2
      AND (k.task_type = 'send_messages' OR g.link_state = 'due')
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
              (g.result ->> 'attempt_since')::timestamptz AS since, g.link_state
)
SELECT t.id, t.task_id, t.identifier_key, t.user_data, t.attempts, t.since, t.link_state,
       (SELECT max(lease_expires_at) FROM invite_targets
        WHERE status = 'in_flight' AND lease_expires_at > $1 AND account_id = $2) AS wait_until
FROM (SELECT 1) one LEFT JOIN taken t ON true

-- name: reconcile_settle
-- args: $1 replica, $2 answers, $3 account_id, $4 now, $5 reconciled
-- Delivery reconciliation, step 2: what the platform said of each message taken by
-- reconcile_take (`answers`: a jsonb array of {id, claimed: its attempt number, verdict:
-- 'sent' | 'not_sent' | 'unknown', since: when the attempt began}), written by `replica` for
-- the account at `now`, where it still holds them. What a verdict makes of a message is not
-- decided here: `reconciled` (the decision table's rows, decisions.RECONCILED_JSON: a jsonb
-- array with one row per verdict, task status and kind of message) says it, joined on the
-- answer's verdict, the status of the message's task and whether the message carried a
-- one-use invite link (its target's link_state 'due': an invite task's link, links.py). As
-- decided there:
--  * sent: `succeeded`, outcome `delivered_confirmed` (a link's: `link_sent`). Its claim reserved the quota before
--    the call, so the account's counters are already right (`counted`: the engine counts it
--    in the account's usage).
--  * not sent: it never went out, so it may be sent now -- back to `pending`, its attempt not
--    counted and its quota reservation given back (if the account's 24 h window still holds
--    it), as if never claimed. That holds while the task runs or is paused. A task finished
--    meanwhile (an uncertain message is final, so its task may complete) is not reopened
--    behind the customer's back: on a completed task the message ends `failed` (outcome
--    `not_sent`, the reason says so) -- a new task can reach the person; on a cancelled or
--    failed one it is closed as close_queues would. The task row is read FOR SHARE, so a
--    completion committing meanwhile is seen, not raced.
--  * unknown: stays `uncertain`, outcome `delivery_unknown`: asked once, never again.
-- The cells: requeue (back in the queue, due now; else processed now), give_back (the attempt
-- is not counted), refund (the reservation is given back), logged (the execution log's
-- status), reason (the detail in the log and in the target's result), error_message.
-- One execution-log row each (action `check_delivery`); the task counters follow by trigger.
WITH answers AS (
    SELECT u.id, u.claimed, u.verdict, u.since
    FROM jsonb_to_recordset($2::jsonb) AS u(id uuid, claimed int, verdict text, since timestamptz)
), tasks AS MATERIALIZED (
    SELECT k.id, k.status FROM invite_tasks k
    WHERE k.id IN (SELECT g.task_id FROM invite_targets g JOIN answers a ON a.id = g.id)
    ORDER BY k.id
    FOR SHARE
), fate AS (
    SELECT a.id, a.claimed, a.since, d.status, d.outcome, d.link_state, d.logged, d.reason, d.error_message,
           d.requeue, d.give_back, d.refund, d.counted
    FROM answers a JOIN invite_targets g ON g.id = a.id JOIN tasks k ON k.id = g.task_id
    JOIN jsonb_to_recordset($5::text::jsonb)
         AS d(verdict text, task_status text, link boolean, status text, outcome text, link_state text,
              logged text, reason text, error_message text, requeue boolean, give_back boolean, refund boolean,
              counted boolean)
         ON d.verdict = a.verdict AND d.task_status = k.status AND d.link = (g.link_state IS NOT DISTINCT FROM 'due')
), settled AS (
    UPDATE invite_targets g SET
        status = f.status,
        outcome = f.outcome,
        link_state = COALESCE(f.link_state, g.link_state),
        processed_at = CASE WHEN f.requeue THEN NULL ELSE $4::timestamptz END,
        error_message = f.error_message,
        result = CASE WHEN f.requeue THEN g.result - 'attempt_since'
                      ELSE g.result || jsonb_build_object('account_id', $3::text, 'detail', f.reason) END,
        attempts = CASE WHEN f.give_back THEN GREATEST(g.attempts - 1, 0) ELSE g.attempts END,
        next_attempt_at = CASE WHEN f.requeue THEN $4::timestamptz ELSE g.next_attempt_at END,
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM fate f
    WHERE g.id = f.id AND g.lease_owner = $1 AND g.status = 'in_flight' AND g.attempts = f.claimed
    RETURNING g.id, g.task_id, g.identifier_key, g.status, f.outcome, f.logged, f.reason, f.refund, f.counted,
              f.claimed, f.since
), logs AS (
    INSERT INTO invite_execution_logs (task_id, target_id, account_id, action, status, details, created_at)
    SELECT s.task_id, s.id, $3, 'check_delivery', s.logged,
           jsonb_build_object('detail', s.reason, 'attempt', s.claimed, 'identifier', s.identifier_key,
                              'attempt_since', s.since),
           $4::timestamptz
    FROM settled s
    RETURNING 1
), refund AS (
    UPDATE invite_accounts a SET
        daily_count = GREATEST(a.daily_count - (SELECT count(*) FROM settled s
                                                WHERE s.refund AND s.since >= a.daily_window_start), 0),
        updated_at = $4::timestamptz
    WHERE a.id = $3 AND a.daily_window_start > $4::timestamptz - interval '24 hours'
      AND EXISTS (SELECT 1 FROM settled WHERE refund)
    RETURNING 1
)
SELECT s.task_id, s.status, s.outcome, s.counted, (SELECT count(*) FROM logs) AS logged,
       (SELECT count(*) FROM refund) AS refunded
FROM settled s
