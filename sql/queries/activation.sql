-- Activation's statements (invite/engine/activation.py): a task that has just started running
-- gets its accounts, once across replicas. Every time is a parameter from the service's clock
-- (never now()). The `-- args:` line of each statement names its parameters, in order: the
-- engine's repository (invite/engine/repository.py) passes them by these names. A task's
-- transition (fail_task, wait_for_accounts) takes its sources and target from the state
-- machine (invite/tasks/states.py) as parameters.

-- name: lock_task_for_activation
-- args: $1 task_id
-- Activation happens once: the row lock makes a second replica wait here... ('running' is a
-- filter, not a transition: only a task that runs is activated; the row does not move.)
SELECT true AS running FROM invite_tasks WHERE id = $1 AND status = 'running' FOR UPDATE

-- name: task_prepared
-- args: $1 task_id
-- ... and then find the accounts attached. A statement of its own: under READ COMMITTED a new
-- statement sees what the first replica committed, while a subquery beside the FOR UPDATE
-- above would still read the snapshot taken before the wait.
SELECT EXISTS (SELECT 1 FROM invite_task_accounts WHERE task_id = $1) AS prepared

-- name: upsert_accounts
-- args: $1 user_id, $2 platform, $3 now, $4 accounts
-- The tenant's accounts as the provider lists them (`accounts`: a jsonb array of {id, label,
-- daily_limit}). An id already owned by another tenant is left untouched (and then not
-- attached below): an account serves its owner's tasks only. A list without a limit keeps
-- the one the provider's last lease gave (leases.renew_leases). A new account's clean history
-- starts now: it warms up (invite/engine/warmup.py); one seen before keeps its own.
INSERT INTO invite_accounts AS a (id, user_id, platform, label, daily_limit, created_at, updated_at, warmup_since)
SELECT u.id, $1, $2, u.label, u.daily_limit, $3, $3, $3
FROM jsonb_to_recordset($4::jsonb) AS u(id text, label text, daily_limit int)
ON CONFLICT (id) DO UPDATE SET label = EXCLUDED.label,
                               daily_limit = COALESCE(EXCLUDED.daily_limit, a.daily_limit),
                               updated_at = EXCLUDED.updated_at
WHERE a.user_id = EXCLUDED.user_id

-- name: attach_accounts
-- args: $1 task_id, $2 user_id, $3 account_ids, $4 most
-- Attach the tenant's (`user_id`) accounts `account_ids` to the task, at most `most` of them
-- (NULL: all; usable ones first); an account already blocked comes in blocked, so the status shows why
-- it does nothing. The task waits for its accounts no longer: what wait_for_accounts wrote is
-- cleared.
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
-- args: $1 task_id, $2 reason, $3 now, $4 sources, $5 target
-- The task cannot go on (no usable account): from `sources` to `target` (the state machine's
-- Action.FAIL in invite/tasks/states.py: failed), with the reason the customer sees.
UPDATE invite_tasks SET status = $5::text, status_reason = $2, completed_at = $3, updated_at = $3
WHERE id = $1 AND status = ANY($4::text[])
RETURNING platform

-- name: wait_for_accounts
-- args: $1 task_id, $2 reason, $3 now, $4 wait_seconds, $5 sources, $6 target
-- Activation of the running task could not get its accounts at `now` (`reason` says why): the
-- reason is shown, and the wait counted from the first such attempt; once it has lasted
-- `wait_seconds` the task is paused (`target`) with the reason instead of staying "running"
-- for ever (a resume waits anew). Only a task in `sources` (a running one) without accounts:
-- a pause or cancel meanwhile wins. Both are the state machine's Action.TRIP, as the
-- breaker's pause (invite/tasks/states.py).
UPDATE invite_tasks t SET
    accounts_wait_since = CASE WHEN w.paused THEN NULL ELSE w.since END,
    status = CASE WHEN w.paused THEN $6::text ELSE t.status END,
    status_reason = CASE WHEN w.paused
                         THEN 'paused: no accounts after waiting ' || round($4::float8 / 60) || ' min: ' || $2
                         ELSE 'waiting for accounts: ' || $2 END,
    updated_at = $3
FROM (SELECT id, COALESCE(accounts_wait_since, $3) AS since,
             COALESCE(accounts_wait_since, $3) <= $3::timestamptz - $4::float8 * interval '1 second' AS paused
      FROM invite_tasks WHERE id = $1) w
WHERE t.id = w.id AND t.status = ANY($5::text[])
  AND NOT EXISTS (SELECT 1 FROM invite_task_accounts ta WHERE ta.task_id = t.id)
RETURNING t.status, t.platform
