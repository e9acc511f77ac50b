-- The queue of targets reached without importing a contact (not a +phone key), per task in
-- queue order: an account whose contacts window is full takes its next targets here, from
-- anywhere in the due queue, instead of finding only +phone targets at the head of it
-- (claims.claim's `plain`). Partial like invite_targets_pending, so it holds the pending
-- targets only; the predicate is invite_imports_contact's (migration 0012), word for word,
-- so the planner proves the claim's condition implies it.
CREATE INDEX invite_targets_pending_plain ON invite_targets (task_id, next_attempt_at, seq)
    WHERE status = 'pending' AND NOT invite_imports_contact(identifier_key);
