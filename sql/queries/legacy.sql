-- invite import-legacy (invite/legacy.py): the old invite service's tasks and people, copied
-- into ours. The old tables are read on a connection of their own whose search_path is the
-- old service's schema (public in the platform's invite_db), so `invite_tasks` there is
-- theirs; every other statement runs on ours. Rows are read whole as jsonb: the old
-- service's models grew columns over time, and a copy must not fail on one it never had.

-- name: old_tasks
-- args:
-- The old service's tasks (theirs: integer ids, enum statuses read as their labels).
SELECT to_jsonb(t)::text AS item FROM invite_tasks t ORDER BY t.id

-- name: old_targets
-- args: $1 task_id
-- The people of one old task, in the order they were added.
SELECT to_jsonb(g)::text AS item FROM invite_targets g WHERE g.task_id = $1 ORDER BY g.id

-- name: imported
-- args:
-- The old tasks copied before (each copy keeps its old id in its settings' extra fields),
-- so a second run copies only what is new.
SELECT (settings -> 'extra' ->> 'legacy_task_id')::int AS legacy_task_id
FROM invite_tasks WHERE settings -> 'extra' ? 'legacy_task_id'

-- name: close_imported
-- args: $1 task_id, $2 status, $3 outcome, $4 message, $5 at
-- The people just imported into a copied task (still pending: nobody has claimed them, the task
-- is a draft) who were done in the old service: closed as they ended there, at `at` (their
-- task's last time in the old service), so the recontact cap and "nobody twice" count them.
UPDATE invite_targets SET status = $2, outcome = $3, error_message = $4, processed_at = $5
WHERE task_id = $1 AND status = 'pending'
RETURNING user_identifier

-- name: set_status
-- args: $1 task_id, $2 status, $3 reason, $4 started_at, $5 completed_at, $6 now
-- The copied task (a draft until now) takes the state its old task was in, as it was: not a
-- transition of the state machine -- nothing ran here -- and never `running` (a task that ran
-- in the old service comes in paused, for a person to resume once the old worker is off).
UPDATE invite_tasks SET status = $2, status_reason = $3, started_at = $4, completed_at = $5, updated_at = $6
WHERE id = $1 AND status = 'draft'
