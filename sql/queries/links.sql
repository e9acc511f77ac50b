-- One-use invite links (invite/engine/links.py; migration 0019). Every time is a parameter
-- from the service's clock. The `-- args:` line names each statement's parameters, in order:
-- the engine's repository (invite/engine/repository.py) passes them by these names.

-- name: link_for
-- args: $1 target_id
-- The link made for a target before, if any: a message sent again (after a FloodWait, a lost
-- answer, another account) carries the same link, so its text and random_id stay the same.
SELECT url, expires_at, account_id FROM invite_links WHERE target_id = $1

-- name: save_link
-- args: $1 target_id, $2 task_id, $3 account_id, $4 url, $5 expires_at, $6 now
-- A link just made, saved (and committed: it runs on its own) BEFORE the message carrying it is
-- sent. It replaces only a link that ran out before its message could go (link_for said so),
-- which nobody received.
INSERT INTO invite_links (target_id, task_id, account_id, url, expires_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (target_id) DO UPDATE SET
    account_id = EXCLUDED.account_id, url = EXCLUDED.url, expires_at = EXCLUDED.expires_at,
    created_at = EXCLUDED.created_at, joined_at = NULL, revoked_at = NULL
RETURNING url

-- name: open_links
-- args: $1 account_ids
-- The links the accounts ($1) made that are still open (neither used nor revoked), with the
-- group each leads into: through the partial index invite_links_open, so the watcher reads only
-- the few open links, never those already settled.
SELECT l.target_id, l.account_id, k.target_group_id AS group_id, l.url, l.expires_at
FROM invite_links l
JOIN invite_tasks k ON k.id = l.task_id
WHERE l.account_id = ANY($1::text[]) AND l.joined_at IS NULL AND l.revoked_at IS NULL
ORDER BY l.account_id, l.expires_at

-- name: unheld_links
-- args: $1 driver, $2 now, $3 avoid
-- The open links of accounts no replica holds (their lease free or expired, not blocked, not
-- among $3: those this replica holds or rests), made in tasks of this replica's $1 driver: an
-- account is let go of once its last task ends, and its links are still read back and revoked,
-- each account under a short lease (followup.py). Through the partial index invite_links_open:
-- the open links are few, whatever the size of the table.
SELECT l.target_id, l.account_id, k.target_group_id AS group_id, l.url, l.expires_at
FROM invite_links l
JOIN invite_tasks k ON k.id = l.task_id
JOIN invite_accounts a ON a.id = l.account_id
WHERE l.joined_at IS NULL AND l.revoked_at IS NULL AND k.driver = $1
  AND a.status <> 'blocked' AND (a.lease_owner IS NULL OR a.lease_expires_at <= $2)
  AND NOT (l.account_id = ANY($3::text[]))
ORDER BY l.account_id, l.expires_at

-- name: mark_joined
-- args: $1 joins, $2 joined_status, $3 joined_outcome, $4 joined_link, $5 action
-- People who came in through their link ($1: [{target_id, at}], the open links just read): the
-- link is used, and its target becomes what the decision table's JOINED_VIA_LINK row says
-- (decisions.LINK_WATCH) -- whatever the message's fate was recorded as (a join proves the link
-- reached them) unless the target is in flight right now, which the next watch finds again.
-- Its processed time stays the message's (a reply to it is matched by that; the join's time is
-- the link's joined_at and its log row's). Each join is one execution-log row (action $5, at the join's time), so /stats, its hours
-- and the report's charts count it as they count every answer. By primary keys only.
WITH used AS (
    UPDATE invite_links l SET joined_at = j.at
    FROM jsonb_to_recordset($1::jsonb) AS j(target_id uuid, at timestamptz)
    WHERE l.target_id = j.target_id AND l.joined_at IS NULL
      AND EXISTS (SELECT 1 FROM invite_targets g WHERE g.id = l.target_id AND g.status <> 'in_flight')
    RETURNING l.target_id, l.task_id, l.account_id, j.at
), settled AS (
    UPDATE invite_targets g SET
        status = $2, outcome = $3, link_state = $4, error_message = NULL
    FROM used u
    WHERE g.id = u.target_id
    RETURNING g.id, g.task_id, g.identifier_key, u.account_id, u.at
), logged AS (
    INSERT INTO invite_execution_logs (task_id, target_id, account_id, action, status, details, created_at)
    SELECT task_id, id, account_id, $5, $3, jsonb_build_object('identifier', identifier_key), at FROM settled
)
SELECT id, task_id FROM settled

-- name: mark_expired
-- args: $1 target_ids, $2 now, $3 expired_status, $4 expired_outcome, $5 expired_link, $6 expired_reason, $7 action
-- The links of targets $1, revoked once they ran out unused: a target whose message carried one
-- becomes what the decision table's LINK_EXPIRED row says, with one execution-log row (action
-- $7) as a join has; a target still waiting for its message keeps its place (its next claim
-- makes a new link).
WITH revoked AS (
    UPDATE invite_links l SET revoked_at = $2
    WHERE l.target_id = ANY($1::uuid[]) AND l.joined_at IS NULL AND l.revoked_at IS NULL
    RETURNING l.target_id, l.account_id
), settled AS (
    UPDATE invite_targets g SET
        status = $3, outcome = $4, link_state = $5, error_message = $6
    FROM revoked r
    WHERE g.id = r.target_id AND g.link_state = 'sent' AND g.status <> 'in_flight'
    RETURNING g.id, g.task_id, g.identifier_key, r.account_id
), logged AS (
    INSERT INTO invite_execution_logs (task_id, target_id, account_id, action, status, details, created_at)
    SELECT task_id, id, account_id, $7, $4, jsonb_build_object('identifier', identifier_key), $2 FROM settled
)
SELECT id, task_id FROM settled
