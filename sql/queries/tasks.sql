-- Tasks as the API sees them. Every statement on a task names the tenant ($1 or $2), so
-- another tenant's task is simply not found; statements on a task's targets and counters run
-- only after that task was read this way in the same transaction.
-- A statement that returns a task names the columns of invite/tasks/rows.py's StoredTask, in
-- its order (the row is built by position and checked on every call), not *: a column a later
-- migration adds then changes nothing the API reads.

-- name: create
-- args: $1 user_id, $2 platform, $3 task_type, $4 title, $5 description, $6 target_group_id, $7 message_template, $8 priority, $9 settings, $10 scheduled_at, $11 driver, $12 now
-- created_at/updated_at come from the service's clock ($12) so ordering matches its view of time.
INSERT INTO invite_tasks (user_id, platform, task_type, title, description, target_group_id,
                          message_template, priority, settings, scheduled_at, driver,
                          created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
RETURNING id, platform, task_type, title, description, target_group_id, message_template, priority,
          status, status_reason, driver, progress, settings, created_at, updated_at, scheduled_at,
          started_at, completed_at

-- name: get
-- args: $1 task_id, $2 user_id
SELECT id, platform, task_type, title, description, target_group_id, message_template, priority,
       status, status_reason, driver, progress, settings, created_at, updated_at, scheduled_at,
       started_at, completed_at
FROM invite_tasks WHERE id = $1 AND user_id = $2

-- name: get_for_update
-- args: $1 task_id, $2 user_id
-- PUT reads, validates and writes in one transaction: the row lock keeps a concurrent start
-- or edit from slipping between the check and the write.
SELECT id, platform, task_type, title, description, target_group_id, message_template, priority,
       status, status_reason, driver, progress, settings, created_at, updated_at, scheduled_at,
       started_at, completed_at
FROM invite_tasks WHERE id = $1 AND user_id = $2 FOR UPDATE

-- name: list
-- args: $1 user_id, $2 after_created_at, $3 after_id, $4 status, $5 task_type, $6 platform, $7 priority, $8 limit
-- Keyset pagination, newest first, on invite_tasks_user_created (user_id, created_at DESC,
-- id DESC): the row comparison is the index order, so a page costs the same however deep it
-- is. The first page passes 'infinity' and the largest uuid. Filters are optional ($n IS NULL).
SELECT id, platform, task_type, title, description, target_group_id, message_template, priority,
       status, status_reason, driver, progress, settings, created_at, updated_at, scheduled_at,
       started_at, completed_at
FROM invite_tasks
WHERE user_id = $1
  AND (created_at, id) < ($2::timestamptz, $3::uuid)
  AND ($4::text IS NULL OR status = $4)
  AND ($5::text IS NULL OR task_type = $5)
  AND ($6::text IS NULL OR platform = $6)
  AND ($7::int IS NULL OR priority = $7)
ORDER BY created_at DESC, id DESC
LIMIT $8

-- name: update
-- args: $1 task_id, $2 user_id, $3 editable, $4 title, $5 description, $6 target_group_id, $7 message_template, $8 priority, $9 scheduled_at, $10 settings, $11 now
-- The status guard repeats the check made under the row lock: an edit never lands on a
-- running task.
UPDATE invite_tasks
SET title = $4, description = $5, target_group_id = $6, message_template = $7, priority = $8,
    scheduled_at = $9, settings = $10, updated_at = $11
WHERE id = $1 AND user_id = $2 AND status = ANY($3::text[])
RETURNING id, platform, task_type, title, description, target_group_id, message_template, priority,
          status, status_reason, driver, progress, settings, created_at, updated_at, scheduled_at,
          started_at, completed_at

-- name: delete
-- args: $1 task_id, $2 user_id, $3 deletable
-- Targets, counts and logs go with the task (ON DELETE CASCADE); a running task stays.
DELETE FROM invite_tasks WHERE id = $1 AND user_id = $2 AND status = ANY($3::text[])
RETURNING id

-- name: transition
-- args: $1 task_id, $2 user_id, $3 allowed_from, $4 status, $5 reason, $6 now
-- A state change is one guarded UPDATE: only a row still in an allowed source state ($3,
-- from invite/tasks/states.py, as the target $4) changes, so two requests (or a request and
-- the engine) can never both win.
-- started_at is the first time the task ran; completed_at is when it finished, however.
UPDATE invite_tasks
SET status = $4::text,
    status_reason = $5,
    started_at = CASE WHEN $4::text = 'running' THEN COALESCE(started_at, $6) ELSE started_at END,
    completed_at = CASE WHEN $4::text IN ('completed', 'cancelled', 'failed') THEN $6 ELSE completed_at END,
    updated_at = $6
WHERE id = $1 AND user_id = $2 AND status = ANY($3::text[])
RETURNING id, platform, task_type, title, description, target_group_id, message_template, priority,
          status, status_reason, driver, progress, settings, created_at, updated_at, scheduled_at,
          started_at, completed_at

-- name: lock_tenant_starts
-- args: $1 user_id
-- Serialises starts of one tenant's tasks until the transaction ends, so the active-task
-- limit is checked and used atomically (two starts cannot both see 9 of 10).
-- 444465154 (0x1A7E0002) namespaces these locks apart from the migration lock.
SELECT pg_advisory_xact_lock(444465154, hashtext($1))

-- name: count_active
-- args: $1 user_id, $2 statuses
-- idx_invite_tasks_user_status serves this: a handful of rows per tenant.
SELECT count(*) FROM invite_tasks WHERE user_id = $1 AND status = ANY($2::text[])

-- name: count_targets
-- args: $1 task_id
-- From the trigger-kept counters: never a COUNT(*) over the targets.
SELECT COALESCE(sum(n), 0)::bigint FROM invite_task_counts WHERE task_id = $1

-- name: target_counts
-- args: $1 task_id
SELECT status, n FROM invite_task_counts WHERE task_id = $1

-- name: status_report
-- args: $1 task_id, $2 user_id
-- /status in one statement (one snapshot, one round trip): the task's state and its
-- trigger-kept counters as two parallel arrays (NULL when it has no target yet).
SELECT t.status, t.status_reason, t.driver, c.statuses, c.ns
FROM invite_tasks t
CROSS JOIN LATERAL (
    SELECT array_agg(status) AS statuses, array_agg(n) AS ns FROM invite_task_counts WHERE task_id = t.id
) c
WHERE t.id = $1 AND t.user_id = $2

-- name: cancel_pending_targets
-- args: $1 task_id
-- A cancelled task contacts nobody else: its queue is closed in the cancelling transaction.
-- Targets in flight are left to the engine, which records what actually happened.
UPDATE invite_targets SET status = 'cancelled' WHERE task_id = $1 AND status = 'pending'

-- name: notify
-- args: $1 event
-- The engine (and live status streams) LISTEN here; delivered only if the change commits.
SELECT pg_notify('invite_task_events', $1)

-- name: running_by_platform
-- args:
-- The invite_active_tasks gauge on every scrape: the partial index invite_tasks_running
-- holds exactly these rows, so this stays cheap however many tasks exist.
SELECT platform, count(*) AS n FROM invite_tasks WHERE status = 'running' GROUP BY platform
