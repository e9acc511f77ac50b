-- The claimer's statements (invite/engine/claims.py). Every time is a parameter from the
-- service's clock (never now()), so a simulated day in tests behaves as a real one. Statements
-- that lock several rows of invite_accounts lock them in id order (a MATERIALIZED ... ORDER BY
-- id FOR UPDATE CTE), so the claim, the group commit and the lease heartbeat of one replica
-- never deadlock. The `-- args:` line of each statement names its parameters, in order: the
-- engine's repository (invite/engine/repository.py) passes them by these names. A task's
-- status spelt out here ('running') is a filter, never a transition: no statement here moves
-- a task (those that do take their statuses from invite/tasks/states.py).

-- name: claim
-- args: $1 task_id, $2 now, $3 limit, $4 replica, $5 accounts, $6 expires_at, $7 recontact_days, $8 contacts_cap, $9 claim_id, $10 barred
-- Claims up to `limit` targets of ONE task for the ready `accounts` of `replica` (a jsonb
-- array of {account_id, cap, pause, link_cap}: each with its daily cap and minimum pause, in the
-- order they are paired with targets, and -- in an invite task offering one-use invite links --
-- its cap for a message carrying one), at `now`; targets are leased until `expires_at`;
-- `recontact_days` is the task's cross-task recontact cap in days (0: none); `contacts_cap`
-- our own cap on +phone targets an account reaches a day (each imports the number as a
-- contact first; the accounts provider's contacts_limit in the row may lower it). One statement,
-- one commit, BEFORE any platform call: the in-flight mark and the quota reservation are
-- written together or not at all.
--  * asking: each account with its place in `accounts`, whether its contacts window has room
--    for one more +phone target, and whether its 24 h window is still under its `link_cap`
--    (room for a message carrying a one-use invite link: the link quota, lower than the
--    others) -- read unlocked to pair; `reserved` checks both again.
--  * next: exactly the partial index invite_targets_pending (task_id, next_attempt_at, seq)
--    WHERE status = 'pending' -- equality on task_id, range on next_attempt_at, the index order
--    as ORDER BY -- so the plan reads the head of one task's queue and nothing else, however
--    many targets are finished. SKIP LOCKED: a concurrent claim passes by instead of queueing.
--  * plain: only when an account is out of contact or link room (else a one-time filter reads
--    nothing), up to `limit` due targets that need neither a contact import nor a link, from
--    anywhere in the queue -- the partial index invite_targets_pending_plain (migration 0013) --
--    so +phone targets and links due at the head never hold back the usernames behind them. Its LIMIT is `limit`, not
--    the count of such accounts: a LIMIT the planner cannot know is estimated at a tenth of
--    the table, and the statement's joins then turned to scans (bench/engine.py: 0.9 -> 0.6 of
--    pgqueuer's rate). found: both, once each.
--  * judged: who must not be contacted is decided HERE, at the moment of claiming, not once
--    at activation: invite_barred (migration 0012, the trial's claim's too) -- a person on the
--    tenant's suppression list under any of their keys (probing the list's primary key), or
--    -- with a recontact cap -- one whom another task of the tenant reached in `recontact_days`
--    (probing each other task's (task_id, identifier_key) index); inlined, so those probes
--    are this plan's. Whatever path put a target back in the queue (a transient answer, a
--    recovery, retry-failed), it passes through this check before any platform call. A
--    suppression committed before this statement began is seen; one committing meanwhile
--    waits for our row locks and then finds these rows in flight. The task is LEFT JOINed:
--    one no longer running bars nobody here (nothing is reserved for it below).
--  * skipped: the barred rows are closed in the same statement, so they never come back, as
--    `barred` says (the decision table's rows, decisions.BARRED_JSON: status, outcome and
--    error message by the bar's name; "{days}" in a message is the recontact cap).
--  * numbered: window functions may not sit beside FOR UPDATE, so rows are numbered apart,
--    in queue order, each kind on its own, the barred left out: +phone targets (a contact to
--    import), links due (link_state, migration 0019: the action is the message carrying a
--    one-use invite link -- its person's number was imported by the invite already), the others.
--  * phones, links, paired: the accounts with contact room take the +phone targets, those
--    left with link room the links due, in their order and the queue's; every other account
--    takes the other targets in the same way -- so a +phone target is never paired with an
--    account that may not import it, nor a link with one past its link quota, and none stands
--    idle while a target it may take was found. Accounts beyond the targets found reserve nothing. locked: their
--    rows are locked in id order before any is updated (as every statement of the engine
--    does), so claims, group commits and heartbeats of one replica cannot deadlock.
--  * reserved: the quota is reserved only where this replica still holds the account's lease,
--    the account is the task's tenant's, not blocked nor cooling down, its minimum pause has
--    passed and its 24 h window has room -- under `link_cap` for a link -- (and, for a +phone
--    target, its contacts window: one import reserved there too), and the task is running and the account may serve it
--    (invite_task_accounts active) -- the safety net across replicas and restarts behind the
--    in-memory bucket, and why pause/cancel take effect before the next action. The windows
--    and caps are migration 0012's (invite_window_used, invite_window_start, invite_cap), as
--    in the trial's claim.
--  * claimed: only targets paired with a successful reservation go in flight, marked with
--    `claim_id` (the claimer's id for this statement): should its answer be lost, the claimer
--    finds them by it (release_lost_claim). Each comes back with its `link_state` (a one-use
--    invite link due: the action is the message carrying it, links.py).
-- The final SELECT always returns one row at least: `available` (targets found that may be
-- contacted) tells an empty queue from a refused account, `running` whether the task still
-- runs, and -- only when the claim came back short -- `next_due` when the earliest other
-- pending target is due, never before now (NULL: nothing pending at all): the first entry of
-- the same index. `paired`: the accounts a target was paired with (one not claimed among them
-- was refused by its reservation); `phones_left`: +phone targets found that no account with
-- contact room was left to take, `links_left` links due that none with link room was (the
-- accounts left without a target wait for their window).
WITH task AS (
    SELECT id, user_id FROM invite_tasks WHERE id = $1 AND status = 'running'
), asking AS (
    SELECT w.account_id, w.cap, w.pause, w.place, COALESCE(w.link_cap, w.cap) AS link_cap,
           COALESCE(invite_window_used(a.contacts_window_start, a.contacts_count, $2)
                    < invite_cap($8::int, a.contacts_limit), false) AS room,
           w.link_cap IS NULL OR COALESCE(invite_window_used(a.daily_window_start, a.daily_count, $2)
                                          < invite_cap(w.link_cap, a.daily_limit), true) AS link_room
    FROM ROWS FROM (jsonb_to_recordset($5::jsonb) AS (account_id text, cap int, pause float8, link_cap int))
         WITH ORDINALITY AS w(account_id, cap, pause, link_cap, place)
    LEFT JOIN invite_accounts a ON a.id = w.account_id
), next AS (
    SELECT id, identifier_key, user_data, next_attempt_at, seq, link_state FROM invite_targets
    WHERE task_id = $1 AND status = 'pending' AND next_attempt_at <= $2
    ORDER BY next_attempt_at, seq
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), plain AS (
    SELECT id, identifier_key, user_data, next_attempt_at, seq, link_state FROM invite_targets
    WHERE task_id = $1 AND status = 'pending' AND next_attempt_at <= $2
      AND NOT invite_imports_contact(identifier_key) AND link_state IS NULL
      AND EXISTS (SELECT 1 FROM asking WHERE NOT room OR NOT link_room)
    ORDER BY next_attempt_at, seq
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), found AS (
    SELECT * FROM next
    UNION ALL
    SELECT * FROM plain WHERE id NOT IN (SELECT id FROM next)
), judged AS (
    SELECT x.id, x.next_attempt_at, x.seq, b.barred, x.link_state IS NOT DISTINCT FROM 'due' AS link,
           invite_imports_contact(x.identifier_key) AND x.link_state IS NULL AS phone
    FROM found x
    LEFT JOIN task t ON true
    CROSS JOIN LATERAL invite_barred(t.user_id, t.id, x.identifier_key, x.user_data, $2, $7::int) AS b(barred)
), skipped AS (
    UPDATE invite_targets g SET
        status = d.status, outcome = d.outcome, processed_at = $2,
        error_message = replace(d.error_message, '{days}', $7::int::text)
    FROM judged j
    JOIN jsonb_to_recordset($10::text::jsonb) AS d(barred text, status text, outcome text, error_message text)
         ON d.barred = j.barred
    WHERE g.id = j.id
), numbered AS (
    SELECT id, phone, link, row_number() OVER (PARTITION BY phone, link ORDER BY next_attempt_at, seq) AS n
    FROM judged WHERE barred IS NULL
), phones AS (
    SELECT r.account_id, r.cap, r.pause, r.link_cap, nb.id AS target_id, true AS phone, nb.link
    FROM (SELECT *, row_number() OVER (ORDER BY place) AS k FROM asking WHERE room) r
    JOIN numbered nb ON nb.phone AND nb.n = r.k
), links AS (
    SELECT r.account_id, r.cap, r.pause, r.link_cap, nb.id AS target_id, false AS phone, true AS link
    FROM (SELECT *, row_number() OVER (ORDER BY place) AS k FROM asking
          WHERE link_room AND account_id NOT IN (SELECT account_id FROM phones)) r
    JOIN numbered nb ON nb.link AND nb.n = r.k
), paired AS (
    SELECT * FROM phones
    UNION ALL
    SELECT * FROM links
    UNION ALL
    SELECT r.account_id, r.cap, r.pause, r.link_cap, nb.id, false, false
    FROM (SELECT *, row_number() OVER (ORDER BY place) AS k FROM asking
          WHERE account_id NOT IN (SELECT account_id FROM phones UNION ALL SELECT account_id FROM links)) r
    JOIN numbered nb ON NOT nb.phone AND NOT nb.link AND nb.n = r.k
), locked AS MATERIALIZED (
    SELECT a.id FROM invite_accounts a
    WHERE a.id IN (SELECT account_id FROM paired)
    ORDER BY a.id
    FOR UPDATE
), reserved AS (
    UPDATE invite_accounts a SET
        daily_count = invite_window_used(a.daily_window_start, a.daily_count, $2) + 1,
        daily_window_start = invite_window_start(a.daily_window_start, $2),
        contacts_count = CASE WHEN p.phone THEN invite_window_used(a.contacts_window_start, a.contacts_count, $2) + 1
                              ELSE a.contacts_count END,
        contacts_window_start = CASE WHEN p.phone THEN invite_window_start(a.contacts_window_start, $2)
                                     ELSE a.contacts_window_start END,
        last_action_at = $2,
        updated_at = $2
    FROM paired p, task t
    WHERE a.id = p.account_id AND a.id IN (SELECT id FROM locked)
      AND a.lease_owner = $4 AND a.lease_expires_at > $2
      AND a.user_id = t.user_id
      AND a.status <> 'blocked'
      AND (a.cooldown_until IS NULL OR a.cooldown_until <= $2)
      AND (a.last_action_at IS NULL OR a.last_action_at <= $2::timestamptz - p.pause * interval '1 second')
      AND invite_window_used(a.daily_window_start, a.daily_count, $2)
          < invite_cap(CASE WHEN p.link THEN p.link_cap ELSE p.cap END, a.daily_limit)
      AND (NOT p.phone
           OR invite_window_used(a.contacts_window_start, a.contacts_count, $2) < invite_cap($8::int, a.contacts_limit))
      AND EXISTS (SELECT 1 FROM invite_task_accounts ta
                  WHERE ta.task_id = t.id AND ta.account_id = a.id AND ta.status IN ('active', 'cooldown'))
    RETURNING a.id, p.target_id
), claimed AS (
    UPDATE invite_targets g SET
        status = 'in_flight',
        lease_owner = $4,
        lease_expires_at = $6,
        account_id = r.id,
        attempts = g.attempts + 1,
        claim_id = $9
    FROM reserved r
    WHERE g.id = r.target_id
    RETURNING g.id, g.account_id, g.identifier_key, g.user_data, g.attempts, g.link_state
)
SELECT c.id, c.account_id, c.identifier_key, c.user_data, c.attempts, c.link_state,
       (SELECT count(*) FROM numbered) AS available,
       EXISTS (SELECT 1 FROM task) AS running,
       CASE WHEN (SELECT count(*) FROM numbered) < $3 THEN
           (SELECT GREATEST(p.next_attempt_at, $2::timestamptz) FROM invite_targets p
            WHERE p.task_id = $1 AND p.status = 'pending' AND p.id NOT IN (SELECT id FROM found)
            ORDER BY p.next_attempt_at, p.seq
            LIMIT 1)
       END AS next_due,
       ARRAY(SELECT account_id FROM paired) AS paired,
       (SELECT count(*) FROM numbered WHERE phone AND id NOT IN (SELECT target_id FROM paired)) AS phones_left,
       (SELECT count(*) FROM numbered WHERE link AND id NOT IN (SELECT target_id FROM paired)) AS links_left
FROM (SELECT 1) one LEFT JOIN claimed c ON true

-- name: release_lost_claim
-- args: $1 claim_id, $2 claimed_at, $3 expires_at, $4 now, $5 status, $6 requeue, $7 give_back, $8 refund
-- A claim whose answer never reached the claimer (the connection broke once the statement was
-- sent): it committed or it did not. If it did, its targets are in flight under `claim_id`,
-- never handed to an account, so nothing was done to anyone -- what they become is the
-- decision table's row for a lost claim (decisions.LOST_CLAIM: `status`; `requeue`: due at
-- `now`; `give_back`: the attempt is not counted; `refund`: the claim's reservations, made at
-- `claimed_at`, are given back where the account's 24 h window still holds them, the contacts
-- window's too for a +phone target). Through invite_targets_in_flight by the claim's exact
-- lease expiry `expires_at`, then the id; a target whose lease ran out meanwhile was
-- recovered already (recover) and is not touched. Accounts are locked in id order, as every
-- statement here does.
WITH lost AS (
    SELECT id FROM invite_targets
    WHERE status = 'in_flight' AND lease_expires_at = $3 AND claim_id = $1
    FOR UPDATE
), locked AS MATERIALIZED (
    SELECT a.id FROM invite_accounts a
    WHERE a.id IN (SELECT g.account_id FROM invite_targets g JOIN lost l ON l.id = g.id)
    ORDER BY a.id
    FOR UPDATE
), released AS (
    UPDATE invite_targets g SET
        status = $5::text,
        attempts = CASE WHEN $7 THEN GREATEST(g.attempts - 1, 0) ELSE g.attempts END,
        next_attempt_at = CASE WHEN $6 THEN $4::timestamptz ELSE g.next_attempt_at END,
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM lost l
    WHERE g.id = l.id
    RETURNING g.id, g.task_id, g.account_id, invite_imports_contact(g.identifier_key) AS phone
), refunded AS (
    UPDATE invite_accounts a SET
        daily_count = CASE WHEN a.daily_window_start <= $2 THEN GREATEST(a.daily_count - 1, 0)
                           ELSE a.daily_count END,
        contacts_count = CASE WHEN r.phone AND a.contacts_window_start <= $2
                              THEN GREATEST(a.contacts_count - 1, 0) ELSE a.contacts_count END,
        updated_at = $4
    FROM released r
    WHERE $8 AND a.id = r.account_id AND a.id IN (SELECT id FROM locked)
    RETURNING a.id
)
SELECT r.id, r.task_id, r.account_id, (SELECT count(*) FROM refunded) AS refunded
FROM released r

-- name: account_state
-- args: $1 replica, $2 account_ids
-- Re-read the quota state of accounts whose reservation the database refused (or that found
-- no target they may take for want of contact or link room), whether `replica` still holds
-- them, and when their contacts window and their 24 h window close (NULL: never opened).
SELECT id, platform, status, daily_window_start, daily_count, daily_limit, last_action_at, cooldown_until,
       pace_multiplier, (lease_owner IS NOT DISTINCT FROM $1) AS held,
       contacts_window_start + interval '24 hours' AS contacts_open_at,
       daily_window_start + interval '24 hours' AS daily_open_at
FROM invite_accounts WHERE id = ANY($2::text[])
