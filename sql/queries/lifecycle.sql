-- The lifecycle loop's statements (invite/engine/lifecycle.py), run by every replica: each
-- is a guarded statement, so they can race. Every time is a parameter from the service's
-- clock (never now()). The `-- args:` line of each statement names its parameters, in order:
-- the engine's repository (invite/engine/repository.py) passes them by these names. A task's
-- transition takes its sources and target from the state machine (invite/tasks/states.py) as
-- parameters; a task's status spelt out here is a filter (the tasks to look at), never a
-- transition.

-- name: start_due
-- args: $1 now, $2 sources, $3 target
-- Scheduled tasks whose time has come start exactly once across replicas: the status guard
-- lets one UPDATE win per row. `sources` and `target` are the state machine's for a task
-- that falls due (Action.DUE in invite/tasks/states.py), never spelt out here. PostgreSQL plans
-- the guard for its values (a generic plan could not use a partial index, and costs more), so
-- invite_tasks_due still finds the due tasks; complete_tasks keeps invite_tasks_running so.
UPDATE invite_tasks SET status = $3::text, status_reason = NULL,
                        started_at = COALESCE(started_at, $1), updated_at = $1
WHERE status = ANY($2::text[]) AND scheduled_at <= $1
RETURNING id, platform

-- name: next_scheduled
-- args:
-- When the lifecycle loop must wake next for a scheduled start (invite_tasks_due).
SELECT min(scheduled_at) AS due FROM invite_tasks WHERE status = 'scheduled'

-- name: tasks_without_accounts
-- args: $1 driver
-- Running tasks of `driver` that no replica has prepared yet (no account attached).
SELECT t.id, t.user_id, t.platform, t.settings FROM invite_tasks t
WHERE t.status = 'running' AND t.driver = $1 AND NOT EXISTS (SELECT 1 FROM invite_task_accounts ta WHERE ta.task_id = t.id)

-- name: fail_unserved
-- args: $1 now, $2 sources, $3 target
-- Running tasks whose every attached account was blocked or excluded (e.g. none may invite
-- into the group) fail with the accounts' reasons, instead of waiting forever. `sources` and
-- `target` are the state machine's for a task that fails (Action.FAIL), its sources narrowed
-- to running by the caller: a scheduled task has no accounts to judge yet.
UPDATE invite_tasks t SET
    status = $3::text, completed_at = $1, updated_at = $1,
    status_reason = 'no account can serve this task: ' ||
        (SELECT string_agg(ta.account_id || ' ' || ta.status || COALESCE(' (' || ta.status_reason || ')', ''),
                           '; ' ORDER BY ta.account_id)
         FROM invite_task_accounts ta WHERE ta.task_id = t.id)
WHERE t.status = ANY($2::text[])
  AND EXISTS (SELECT 1 FROM invite_task_accounts ta WHERE ta.task_id = t.id)
  AND NOT EXISTS (SELECT 1 FROM invite_task_accounts ta JOIN invite_accounts a ON a.id = ta.account_id
                  WHERE ta.task_id = t.id AND ta.status IN ('active', 'cooldown') AND a.status <> 'blocked')
RETURNING t.id, t.platform

-- name: close_queues
-- args: $1 now, $2 batch, $3 closed
-- Targets still pending in a cancelled or failed task will never be acted on: close them as
-- `closed` says (the decision table's rows, decisions.CLOSED_JSON: per task status, the
-- target's status and outcome; a task status without a row is never closed here),
-- at most `batch` per task per call (the caller repeats while `batch` or more come back), so
-- a big failed task is closed in short statements. The API closes a cancelled task's queue
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
WITH decided AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset($3::text::jsonb) AS d(task_status text, status text, outcome text)
), closing AS MATERIALIZED (
    SELECT t.id, t.status_reason, d.status AS closed_as, d.outcome
    FROM invite_task_counts c JOIN invite_tasks t ON t.id = c.task_id JOIN decided d ON d.task_status = t.status
    WHERE c.status = 'pending' AND c.n > 0
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
        status = k.closed_as,
        outcome = k.outcome,
        processed_at = $1,
        error_message = k.status_reason
    FROM closing k
    WHERE g.id = ANY (ARRAY(SELECT id FROM queued)) AND g.task_id = k.id AND g.status = 'pending'
    RETURNING g.task_id
)
SELECT count(*) AS closed FROM closed

-- name: complete_tasks
-- args: $1 now, $2 sources, $3 target
-- Completion is detected once: `sources` → `target` (the state machine's Action.COMPLETE,
-- running → completed) only when the trigger-kept counters show nothing pending or in
-- flight; the status guard lets one replica win.
UPDATE invite_tasks t SET status = $3::text, status_reason = NULL, completed_at = $1, updated_at = $1
WHERE t.status = ANY($2::text[])
  AND NOT EXISTS (SELECT 1 FROM invite_task_counts c
                  WHERE c.task_id = t.id AND c.status IN ('pending', 'in_flight') AND c.n > 0)
RETURNING t.id, t.platform, t.started_at

-- name: recover
-- args: $1 now, $2 batch, $3 own, $4 recovered
-- The recovery of in-flight targets whose worker is gone, `batch` at a time at `now`: those
-- whose lease ran out (the sweep, any replica: their worker died or hung) and, at start-up,
-- every one under this replica's own id `own` (a previous process with the same id died;
-- nothing is waiting for their outcome). Through the small invite_targets_in_flight index
-- (`own` NULL: the sweep). What each becomes is not decided here: `recovered` (the decision
-- table's rows, decisions.RECOVERED_JSON: a jsonb array with one row per task type, every
-- type having one -- test_decisions.py) says it, joined on the target's task type. As decided
-- there: a message may have gone out, so it becomes `uncertain` and is never re-sent blindly
-- -- whoever drives its account next asks the platform whether it went out
-- (reconcile.reconcile_take); an invite is idempotent on Telegram: back to the queue. A
-- target of an invite task whose one-use link was due was getting a message: it is one. A target
-- not requeued keeps the time its lease ran out (when its attempt began follows) and, unless
-- its worker is known dead, its owner, so a late outcome from that worker still replaces
-- "unknown".
--  * recorded: its outcome, error message and processed time are written (else kept);
--  * requeue: back in the queue, due now, its lease gone;
--  * give_back: the attempt is not counted.
WITH expired AS (
    SELECT id FROM invite_targets
    WHERE status = 'in_flight' AND (lease_expires_at <= $1 OR lease_owner = $3)
    ORDER BY lease_expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), fate AS (
    SELECT g.id, d.status, d.recorded, d.outcome, d.error_message, d.requeue, d.give_back,
           g.lease_owner IS NOT DISTINCT FROM $3 AS dead
    FROM expired e JOIN invite_targets g ON g.id = e.id JOIN invite_tasks k ON k.id = g.task_id
    JOIN jsonb_to_recordset($4::text::jsonb)
         AS d(task_type text, status text, recorded boolean, outcome text, error_message text, requeue boolean,
              give_back boolean)
         ON d.task_type = CASE WHEN g.link_state = 'due' THEN 'send_messages' ELSE k.task_type END
)
UPDATE invite_targets g SET
    status = f.status,
    outcome = CASE WHEN f.recorded THEN f.outcome ELSE g.outcome END,
    processed_at = CASE WHEN f.recorded THEN $1 ELSE g.processed_at END,
    error_message = CASE WHEN f.recorded THEN f.error_message ELSE g.error_message END,
    attempts = CASE WHEN f.give_back THEN GREATEST(g.attempts - 1, 0) ELSE g.attempts END,
    next_attempt_at = CASE WHEN f.requeue THEN $1 ELSE g.next_attempt_at END,
    lease_owner = CASE WHEN NOT f.requeue AND NOT f.dead THEN g.lease_owner END,
    lease_expires_at = CASE WHEN NOT f.requeue THEN g.lease_expires_at END
FROM fate f
WHERE g.id = f.id
RETURNING g.task_id, g.status

-- name: pause_task
-- args: $1 task_id, $2 reason, $3 now, $4 sources, $5 target
-- The breaker, the driver (chat unavailable) or a task whose row cannot drive the engine
-- pauses a task: only from `sources` (the state machine's Action.TRIP: a running task), so a
-- pause by the customer or a cancel in between wins.
UPDATE invite_tasks SET status = $5::text, status_reason = $2, updated_at = $3
WHERE id = $1 AND status = ANY($4::text[])
RETURNING platform

-- name: notify
-- args: $1 events
-- Status changes made by the engine: live status pages and the other replicas LISTEN on
-- invite_task_events.
SELECT pg_notify('invite_task_events', p) FROM unnest($1::text[]) p
