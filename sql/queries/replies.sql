-- Replies to message tasks (invite/engine/replies.py) and the opt-out check beside the circuit
-- breaker (invite/engine/opt_outs.py). The `-- args:` line names each statement's parameters,
-- in order: the engine's repository (invite/engine/repository.py) passes them by these names.

-- name: watched_accounts
-- args: $1 account_ids, $2 now, $3 watch_seconds
-- Which of the accounts this replica holds ($1) are worth a poll, and from when: those attached
-- to a message task that is running or paused, or that ended less than $3 seconds ago (people
-- answer after the campaign too), and those with a one-use invite link still open (0019: the
-- person may answer the message that carried it). The earliest start among those (a task's
-- start, a link's making), no earlier than $3 seconds back (GREATEST passes over a task never
-- started), is where a first read begins. Through invite_task_accounts_account and
-- invite_links_open: an account's few rows, whatever the size of the tasks.
WITH watched AS (
    SELECT ta.account_id, k.started_at AS since
    FROM invite_task_accounts ta
    JOIN invite_tasks k ON k.id = ta.task_id
    WHERE ta.account_id = ANY($1::text[])
      AND k.task_type = 'send_messages'
      AND (k.status IN ('running', 'paused') OR k.completed_at > $2::timestamptz - make_interval(secs => $3))
    UNION ALL
    SELECT l.account_id, l.created_at
    FROM invite_links l
    WHERE l.account_id = ANY($1::text[]) AND l.joined_at IS NULL AND l.revoked_at IS NULL
)
SELECT account_id, GREATEST(min(since), $2::timestamptz - make_interval(secs => $3)) AS since
FROM watched
GROUP BY account_id
ORDER BY account_id

-- name: unheld_watched
-- args: $1 driver, $2 now, $3 watch_seconds, $4 avoid
-- The accounts worth a poll (as watched_accounts says) that no replica holds: their lease free,
-- or expired (its owner died), not blocked, not among $4 (those this replica holds or rests).
-- Read under a short lease each (invite/engine/followup.py): a message task's accounts are let
-- go of when its last task ends, and people answer for a day after. Only tasks of this
-- replica's $1 driver, and of the account's own tenant. The tasks are few (running, paused, or
-- ended within the window) and the open links are a partial index (invite_links_open).
WITH watched AS (
    SELECT ta.account_id, k.user_id, k.started_at AS since
    FROM invite_tasks k
    JOIN invite_task_accounts ta ON ta.task_id = k.id
    WHERE k.task_type = 'send_messages' AND k.driver = $1
      AND (k.status IN ('running', 'paused') OR k.completed_at > $2::timestamptz - make_interval(secs => $3))
    UNION ALL
    SELECT l.account_id, k.user_id, l.created_at
    FROM invite_links l
    JOIN invite_tasks k ON k.id = l.task_id
    WHERE l.joined_at IS NULL AND l.revoked_at IS NULL AND k.driver = $1
)
SELECT a.id AS account_id, a.user_id,
       GREATEST(min(w.since), $2::timestamptz - make_interval(secs => $3)) AS since
FROM watched w
JOIN invite_accounts a ON a.id = w.account_id AND a.user_id = w.user_id
WHERE a.status <> 'blocked'
  AND (a.lease_owner IS NULL OR a.lease_expires_at <= $2)
  AND NOT (a.id = ANY($4::text[]))
GROUP BY a.id, a.user_id
ORDER BY a.id

-- name: borrow_account
-- args: $1 owner, $2 account_id, $3 now, $4 lease_seconds
-- A short lease on one account no replica holds, for a read (followup.py): taken as the lease
-- keeper takes one (free or expired, not blocked; SKIP LOCKED), by `owner` -- the replica's id
-- with a suffix of its own, so that no lease keeper, this replica's included, takes the account
-- while the read holds it. What the row said before is returned: give_back_account puts it back
-- as found (an expired lease stays the dead owner's, so its next holder still knows the account
-- was not let go of gracefully). Not while the account cools down (a FloodWait, a spam flag):
-- the accounts provider rests it as long, and a read would ask it for a rested account every
-- round -- the lease keeper asks once, for its renewal, and not again before the cooldown
-- ends (leases.py). No row: someone holds it now, or it rests.
WITH found AS MATERIALIZED (
    SELECT id, lease_owner, lease_expires_at
    FROM invite_accounts
    WHERE id = $2 AND status <> 'blocked' AND (lease_owner IS NULL OR lease_expires_at <= $3)
      AND (cooldown_until IS NULL OR cooldown_until <= $3)
    FOR UPDATE SKIP LOCKED
)
UPDATE invite_accounts a SET lease_owner = $1, lease_expires_at = $3::timestamptz + $4::float8 * interval '1 second'
FROM found f
WHERE a.id = f.id
RETURNING a.id, a.user_id, f.lease_owner AS previous_owner, f.lease_expires_at AS previous_expires_at

-- name: give_back_account
-- args: $1 owner, $2 account_id, $3 previous_owner, $4 previous_expires_at
-- The short lease of borrow_account given back: the lease as it was found, if `owner` still has it.
UPDATE invite_accounts SET lease_owner = $3, lease_expires_at = $4
WHERE id = $2 AND lease_owner = $1

-- name: mark_replied
-- args: $1 account_id, $2 replies, $3 statuses
-- Replies to the account $1 ($2: [{keys, at}], the keys every identifier the platform knows the
-- person by) marked on the people it messaged: the targets invite_reply_targets (migration
-- 0017) finds for each, its status among $3.
-- The first reply sets replied_at, never the text; what is set again is not counted again
-- (`replied_at IS NULL` is re-checked on the locked row), so a poll read twice changes nothing.
-- The per-task counters of /stats count each target once. Returns the targets marked now.
WITH r AS (
    SELECT x.keys, x.at FROM jsonb_to_recordset($2::jsonb) AS x(keys text[], at timestamptz)
), hit AS (
    SELECT m.id, min(r.at) AS at
    FROM r CROSS JOIN LATERAL invite_reply_targets($1, r.keys, r.at, $3::text[]) AS m
    GROUP BY m.id
), marked AS (
    UPDATE invite_targets t SET replied_at = h.at
    FROM hit h
    WHERE t.id = h.id AND t.replied_at IS NULL
    RETURNING t.id, t.task_id
), counted AS (
    INSERT INTO invite_reply_counts AS c (task_id, account_id, replies)
    SELECT task_id, $1, count(*) FROM marked GROUP BY task_id ORDER BY task_id
    ON CONFLICT (task_id, account_id) DO UPDATE SET replies = c.replies + EXCLUDED.replies
)
SELECT id, task_id FROM marked

-- name: mark_opted_out
-- args: $1 account_id, $2 replies, $3 statuses
-- Replies asking to stop ($2, as mark_replied's, which marked them replied first in the same
-- transaction), matched the same way: the first sets the target's opted_out_at and counts once
-- per target. Returns those marked now with their tenant, their key and every key their
-- replies named: the caller puts the person on the tenant's suppression list under all of them.
-- The keys are gathered apart from the update, so the update's join is estimated on the
-- targets matched, not on each key of them: estimated ten times larger, it hashed the whole
-- of invite_targets (test_replies_plan.py).
WITH r AS (
    SELECT x.keys, x.at FROM jsonb_to_recordset($2::jsonb) AS x(keys text[], at timestamptz)
), matched AS (
    SELECT m.id, r.at, r.keys
    FROM r CROSS JOIN LATERAL invite_reply_targets($1, r.keys, r.at, $3::text[]) AS m
), hit AS (
    SELECT id, min(at) AS at FROM matched GROUP BY id
), marked AS (
    UPDATE invite_targets t SET opted_out_at = h.at
    FROM hit h
    WHERE t.id = h.id AND t.opted_out_at IS NULL
    RETURNING t.id, t.task_id, t.identifier_key
), counted AS (
    INSERT INTO invite_reply_counts AS c (task_id, account_id, opt_outs)
    SELECT task_id, $1, count(*) FROM marked GROUP BY task_id ORDER BY task_id
    ON CONFLICT (task_id, account_id) DO UPDATE SET opt_outs = c.opt_outs + EXCLUDED.opt_outs
)
SELECT m.id, m.task_id, k.user_id, m.identifier_key,
       ARRAY(SELECT DISTINCT key FROM matched x, unnest(x.keys) AS key WHERE x.id = m.id ORDER BY key) AS keys
FROM marked m JOIN invite_tasks k ON k.id = m.task_id
ORDER BY m.id

-- name: opt_out_window
-- args: $1 task_id, $2 actions, $3 reached, $4 blocked
-- What a task's recipients said of it, for the opt-out check: the people its messages
-- reached (its actions among $2 -- a message task's, an invite task's links -- logged with a status among $3: delivered, or refused because the
-- person blocked the account), those who blocked it (status $4), and those who replied asking
-- to stop. From the per-account rollup (0004) and the reply counters (0017): a few rows per
-- account, however many targets the task has.
SELECT COALESCE(sum(s.n) FILTER (WHERE s.status = ANY ($3::text[])), 0)::bigint AS reached,
       COALESCE(sum(s.n) FILTER (WHERE s.status = $4), 0)::bigint AS blocked,
       (SELECT COALESCE(sum(c.opt_outs), 0) FROM invite_reply_counts c WHERE c.task_id = $1)::bigint
           AS opt_outs
FROM invite_stats_by_account s
WHERE s.task_id = $1 AND s.action = ANY ($2::text[])
