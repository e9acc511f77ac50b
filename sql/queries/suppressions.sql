-- The tenant's suppression list: people who must never be contacted, whatever the task.

-- name: lock_tenant
-- args: $1 user_id
-- Imports and suppression changes of one tenant take turns (a transaction-scoped advisory
-- lock keyed by the tenant): otherwise a person suppressed while an import is running could
-- be written by that import after it checked the list.
SELECT pg_advisory_xact_lock(hashtextextended('invite_suppressions:' || $1, 0))

-- name: add
-- args: $1 user_id, $2 keys, $3 identifiers, $4 reason, $5 now
-- Many at once from two parallel arrays; people already listed keep their first entry.
INSERT INTO invite_suppressions (user_id, identifier_key, user_identifier, reason, created_at)
SELECT $1, x.key, x.identifier, $4, $5
FROM unnest($2::text[], $3::text[]) AS x(key, identifier)
ON CONFLICT (user_id, identifier_key) DO NOTHING
RETURNING identifier_key

-- name: skip_pending_targets
-- args: $1 user_id, $2 keys, $3 now
-- Suppressing someone also takes them out of the tenant's tasks right away: their pending
-- targets become skipped/suppressed in the same transaction, so the engine never claims
-- them. A target matches under any of its keys (invite_person_keys: the same person
-- imported by user id is caught by a suppressed username). Targets already in flight are
-- left to finish (the claim is where a suppression is enforced: one in flight that comes
-- back to the queue is stopped there); done targets are history and stay as they are.
UPDATE invite_targets t
SET status = 'skipped', outcome = 'suppressed', error_message = 'on the suppression list', processed_at = $3
FROM invite_tasks k
WHERE k.user_id = $1
  AND t.task_id = k.id
  AND t.status = 'pending'
  AND invite_person_keys(t.identifier_key, t.user_data) && $2::text[]

-- name: page
-- args: $1 user_id, $2 after_created_at, $3 after_key, $4 limit
-- Newest first, keyset-paged on (created_at, identifier_key) — the index of 0003 in that
-- order — so a deep page costs the same as the first. $2/$3 are the last row seen (NULL: start).
-- Rows come back as the API's Suppression (invite/suppressions/schemas.py), field for field.
SELECT user_identifier AS identifier, identifier_key AS key, reason, created_at
FROM invite_suppressions
WHERE user_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, identifier_key) < ($2, $3::text))
ORDER BY created_at DESC, identifier_key DESC
LIMIT $4

-- name: find
-- args: $1 user_id, $2 key
SELECT user_identifier AS identifier, identifier_key AS key, reason, created_at
FROM invite_suppressions
WHERE user_id = $1 AND identifier_key = $2

-- name: remove
-- args: $1 user_id, $2 key
-- Removing a suppression does not bring back targets it skipped: those stay skipped.
DELETE FROM invite_suppressions WHERE user_id = $1 AND identifier_key = $2
RETURNING identifier_key
