-- Retention: old execution logs, and (when configured) old finished tasks, removed in small
-- batches so that no statement holds locks or bloats WAL for long, by one replica at a time.

-- name: try_lock
-- args:
-- Session-level, on the connection the whole run uses: the other replicas skip this round.
-- 444465155 (0x1A7E0003) namespaces it apart from the migration and tenant-start locks.
SELECT pg_try_advisory_lock(444465155)

-- name: unlock
-- args:
SELECT pg_advisory_unlock(444465155)

-- name: delete_old_logs
-- args: $1 cutoff, $2 batch_size
-- The oldest rows first through invite_logs_created, deleted by ctid (the log is insert-only,
-- so a row cannot move between the SELECT and the DELETE). $1 = cutoff, $2 = batch size.
DELETE FROM invite_execution_logs
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM invite_execution_logs WHERE created_at < $1 ORDER BY created_at LIMIT $2
))

-- name: expired_tasks
-- args: $1 cutoff, $2 limit
-- Finished tasks whose completion is older than the cutoff, oldest first, from the partial
-- index invite_tasks_finished.
SELECT id FROM invite_tasks
WHERE status IN ('completed', 'cancelled', 'failed') AND completed_at < $1
ORDER BY completed_at
LIMIT $2

-- name: lock_expired_task
-- args: $1 task_id, $2 cutoff
-- Each batch first re-checks, under the task's row lock, that the task is still finished and
-- expired: a customer's change in between (a reopen, say) stops the purge.
SELECT 1 FROM invite_tasks
WHERE id = $1 AND status IN ('completed', 'cancelled', 'failed') AND completed_at < $2
FOR UPDATE

-- name: delete_task_logs
-- args: $1 task_id, $2 batch_size
DELETE FROM invite_execution_logs
WHERE ctid = ANY (ARRAY(SELECT ctid FROM invite_execution_logs WHERE task_id = $1 LIMIT $2))

-- name: delete_task_targets
-- args: $1 task_id, $2 batch_size
-- By id, not ctid: a target may still be updated by a late engine write. The counters follow
-- by trigger, a batch at a time.
DELETE FROM invite_targets
WHERE id IN (SELECT id FROM invite_targets WHERE task_id = $1 LIMIT $2)

-- name: delete_task
-- args: $1 task_id
-- Its targets and logs are gone by now; what cascades is small (counts, accounts, rollups).
DELETE FROM invite_tasks WHERE id = $1
