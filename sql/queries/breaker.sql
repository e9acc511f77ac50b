-- The circuit breaker's statement (invite/engine/breaker.py), run inside the group commit's
-- follow-up. The `-- args:` line names its parameters, in order: the engine's repository
-- (invite/engine/repository.py) passes them by these names.

-- name: breaker_window
-- args: $1 task_id, $2 window, $3 error_statuses
-- The circuit breaker's view of a task: spam flags so far (from the per-account counters) and
-- how many of its last `window` outcomes were errors (a status among `error_statuses`),
-- newest first on idx_invite_logs_task_created.
SELECT (SELECT COALESCE(sum((stats ->> 'peer_flood')::bigint), 0)
        FROM invite_task_accounts WHERE task_id = $1) AS peer_floods,
       count(*) AS outcomes,
       count(*) FILTER (WHERE w.status = ANY($3::text[])) AS errors
FROM (SELECT status FROM invite_execution_logs WHERE task_id = $1
      ORDER BY created_at DESC LIMIT $2) w
