-- Audience import. The people themselves go in with COPY (asyncpg copy_to_table), not here.

-- name: lock_task
-- args: $1 task_id, $2 user_id
-- The tenant's task, locked for the import's transaction: a concurrent import into the same
-- task waits (so the duplicate check below stays true until commit) and so does a start,
-- which could otherwise run the task while people are still being added.
SELECT status FROM invite_tasks WHERE id = $1 AND user_id = $2 FOR UPDATE

-- name: find_task
-- args: $1 task_id, $2 user_id
-- A dry run only reads: no lock.
SELECT status FROM invite_tasks WHERE id = $1 AND user_id = $2

-- name: target_count
-- args: $1 task_id
-- From the trigger-kept counters: never a COUNT(*) over the task's targets.
SELECT coalesce(sum(n), 0)::bigint FROM invite_task_counts WHERE task_id = $1

-- name: task_keys
-- args: $1 task_id
-- Every key the task's people are known by: their identifier_key and the keys of the other
-- identifiers kept in user_data, so a row naming the same person by another identifier is
-- still "already in the task". At most max_targets_per_task people, so fetched whole.
SELECT DISTINCT k AS key
FROM invite_targets t,
     LATERAL (VALUES (t.identifier_key),
                     ('u:' || lower(t.user_data ->> 'username')),
                     ('id:' || (t.user_data ->> 'user_id')),
                     ('p:' || (t.user_data ->> 'phone'))) AS v(k)
WHERE t.task_id = $1 AND k IS NOT NULL

-- name: suppressed_keys
-- args: $1 user_id, $2 keys
-- Which of the file's keys the tenant suppressed; the list may be long, so it is probed
-- with the file's keys through the primary key rather than read whole.
SELECT s.identifier_key AS key
FROM unnest($2::text[]) AS k(key)
JOIN invite_suppressions s ON s.user_id = $1 AND s.identifier_key = k.key

-- name: insert_import
-- args: $1 user_id, $2 task_id, $3 source, $4 source_name, $5 report, $6 rejected
INSERT INTO invite_imports (user_id, task_id, source, source_name, report, rejected)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id

-- name: get_import
-- args: $1 import_id, $2 user_id, $3 offset, $4 limit
-- One page of an import's rejected rows, cut in SQL so a 10,000-row list never travels whole.
SELECT i.report,
       coalesce((SELECT jsonb_agg(e ORDER BY n)
                 FROM jsonb_array_elements(i.rejected) WITH ORDINALITY AS x(e, n)
                 WHERE n > $3 AND n <= $3 + $4), '[]'::jsonb) AS page
FROM invite_imports i
WHERE i.id = $1 AND i.user_id = $2
