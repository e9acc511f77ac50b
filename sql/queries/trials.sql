-- Test invites (invite/engine/trials.py; asked by the Mailing page's test-invite). Every time
-- is a parameter from the service's clock (never now()). The `-- args:` line of each
-- statement names its parameters, in order: the engine's repository
-- (invite/engine/repository.py) passes them by these names. Events go out on
-- invite_task_events (`event`, a TaskEvent of the trial's task) in the statement that changes
-- the trial, so the request waiting on any replica wakes only once the change committed.

-- name: target_task
-- args: $1 user_id, $2 target_id
-- The task a target of the tenant belongs to (none: not the tenant's, or no such target).
SELECT g.task_id FROM invite_targets g JOIN invite_tasks t ON t.id = g.task_id
WHERE g.id = $2 AND t.user_id = $1

-- name: settle_stale
-- args: $1 target_id, $2 now
-- Before a new request for the target: its open trial, if its time is over (waiting past
-- `expires_at`: expired) or its action settled (taken, and the target no longer in flight under
-- the attempt it claimed: done), is closed, so it no longer holds the one-open-trial index.
UPDATE invite_trials r SET state = CASE r.state WHEN 'waiting' THEN 'expired' ELSE 'done' END, settled_at = $2
WHERE r.target_id = $1
  AND ((r.state = 'waiting' AND r.expires_at <= $2)
       OR (r.state = 'taken' AND NOT EXISTS (SELECT 1 FROM invite_targets g
                                             WHERE g.id = r.target_id AND g.status = 'in_flight'
                                               AND g.attempts = r.attempt)))

-- name: request
-- args: $1 user_id, $2 task_id, $3 target_id, $4 account_id, $5 now, $6 wait_seconds, $7 event
-- A trial of the tenant's task on one of its targets with `account_id`, committed before any
-- engine hears of it, takeable for `wait_seconds`. The task's driver goes with it: only an
-- engine of that driver takes it (the sandbox never stands in for Telegram). A trial already
-- open on the target wins (the unique index invite_trials_open): `id` is NULL then, and the
-- caller joins that one. The notification goes out only with a new row.
WITH made AS (
    INSERT INTO invite_trials (user_id, task_id, target_id, account_id, driver, created_at, expires_at)
    SELECT $1, t.id, g.id, $4, t.driver, $5, $5::timestamptz + $6::float8 * interval '1 second'
    FROM invite_tasks t JOIN invite_targets g ON g.task_id = t.id
    WHERE t.id = $2 AND t.user_id = $1 AND g.id = $3
    ON CONFLICT (target_id) WHERE state IN ('waiting', 'taken') DO NOTHING
    RETURNING id
)
SELECT (SELECT id FROM made) AS id,
       (SELECT count(pg_notify('invite_task_events', $7)) FROM made) AS notified

-- name: open_trial
-- args: $1 target_id
-- The trial open on the target (a request that lost the race to another joins it).
SELECT id FROM invite_trials WHERE target_id = $1 AND state IN ('waiting', 'taken')

-- name: trial_state
-- args: $1 trial_id, $2 user_id, $3 now
-- A trial of the tenant as its requester sees it. What a taken trial did is the target's row
-- and the execution-log entry of the very attempt it claimed (invite_logs_target): the same
-- record as any action's, nothing copied. Taken and no longer in flight under that attempt:
-- done; waiting past its time: expired (whoever writes it down later).
SELECT r.id, r.task_id, r.target_id, r.account_id,
       CASE WHEN r.state = 'waiting' AND r.expires_at <= $3 THEN 'expired'
            WHEN r.state = 'taken' AND NOT (g.status = 'in_flight' AND g.attempts = r.attempt) THEN 'done'
            ELSE r.state END AS state,
       r.outcome, r.detail, r.retry_at, r.expires_at,
       g.status AS target_status, g.outcome AS target_outcome, g.error_message AS target_error,
       l.status AS logged, l.details AS logged_details
FROM invite_trials r
JOIN invite_targets g ON g.id = r.target_id
LEFT JOIN LATERAL (
    SELECT e.status, e.details FROM invite_execution_logs e
    WHERE e.target_id = r.target_id AND e.account_id = r.account_id
      AND (e.details ->> 'attempt')::int = r.attempt
    ORDER BY e.created_at DESC
    LIMIT 1
) l ON r.state IN ('taken', 'done')
WHERE r.id = $1 AND r.user_id = $2

-- name: waiting
-- args: $1 replica, $2 now, $3 driver
-- The lease keeper's heartbeat: waiting trials of `driver` whose account `replica` holds, or
-- which nobody holds (the keeper leases those, acquire_accounts below) -- with the task's row
-- (a draft's too: a trial does not need the task to run) and the invites the account made
-- into the task's channel so far (the platform's lifetime cap per channel). A handful at most
-- (invite_trials_waiting).
SELECT r.id AS trial_id, r.account_id, r.expires_at,
       COALESCE((SELECT c.invites FROM invite_account_channels c
                 WHERE c.account_id = r.account_id AND c.channel = invite_channel_key(t.target_group_id)), 0)
           AS channel_invites,
       t.id, t.user_id, t.platform, t.task_type, t.target_group_id, t.message_template, t.priority, t.settings
FROM invite_trials r
JOIN invite_tasks t ON t.id = r.task_id
JOIN invite_accounts a ON a.id = r.account_id AND a.user_id = r.user_id
WHERE r.state = 'waiting' AND r.expires_at > $2 AND r.driver = $3 AND a.status <> 'blocked'
  AND (a.lease_owner = $1 OR a.lease_owner IS NULL OR a.lease_expires_at <= $2)
ORDER BY r.created_at
LIMIT 100

-- name: acquire_accounts
-- args: $1 replica, $2 now, $3 room, $4 avoid, $5 lease_seconds, $6 driver
-- Lease up to `room` accounts that nobody holds (or whose lease expired) and that a waiting
-- trial of `driver` asks for, as leases.acquire_accounts leases those of running tasks (the
-- same columns; SKIP LOCKED: two replicas take different ones; `avoid`: what this process
-- drives or must leave alone). Their channel counts come with the heartbeat that follows.
WITH free AS (
    SELECT a.id, a.lease_owner AS previous_owner
    FROM invite_accounts a
    WHERE a.status <> 'blocked'
      AND (a.lease_owner IS NULL OR a.lease_expires_at <= $2 OR a.lease_owner = $1)
      AND NOT (a.id = ANY($4::text[]))
      AND a.id IN (SELECT r.account_id FROM invite_trials r
                   WHERE r.state = 'waiting' AND r.expires_at > $2 AND r.driver = $6 AND r.user_id = a.user_id)
    ORDER BY a.id
    LIMIT $3
    FOR UPDATE OF a SKIP LOCKED
)
UPDATE invite_accounts a SET lease_owner = $1, lease_expires_at = $2::timestamptz + $5::float8 * interval '1 second',
    updated_at = $2
FROM free f
WHERE a.id = f.id
RETURNING a.id, a.platform, a.status, a.daily_window_start, a.daily_count, a.daily_limit, a.last_action_at,
          a.cooldown_until, a.pace_multiplier, a.user_id, f.previous_owner, '{}'::jsonb AS channel_invites,
          a.warmup_since

-- name: claim
-- args: $1 trial_id, $2 now, $3 replica, $4 cap, $5 pause, $6 lease_seconds, $7 recontact_days, $8 contacts_cap, $9 event, $10 closed
-- The claim of a trial, by the account's coroutine on the replica that holds it: in ONE
-- statement, one commit, BEFORE the platform call -- the target in flight (leased for
-- `lease_seconds`, its attempt counted) and the account's quota reserved, or the trial refused
-- with the first rule that says no (`refused`) and nothing else changed. The rules are the
-- campaign claim's (claims.claim), for one named target instead of the queue's head; those
-- the two spell alike are migration 0012's functions, called by both:
--  * the trial still waits and its time (`expires_at`) is not over; the task is not closed
--    (`closed`: the state machine's finished statuses, invite/tasks/states.py, the list the
--    request checks too) -- a draft, scheduled, running or paused one may be tried;
--  * nobody twice: the target is pending (not in flight, not done);
--  * suppressed under any of the person's keys, or reached by another task of the tenant
--    within `recontact_days` (0: no cap) -- invite_barred, the campaign claim's own probes;
--  * the account is the tenant's, not blocked, leased by `replica`; where the task has
--    accounts attached, it is one of them and serves it (active or cooling down);
--  * no cooldown in force, the minimum pause `pause` passed since its last action, and its
--    24 h window below `cap` (and below the provider's daily limit the row keeps);
--  * contacts: a +phone target (invite_imports_contact) is reached by importing the number
--    as a contact, so its account's contacts window must have room below `contacts_cap`
--    (ours, DAILY_CONTACTS_QUOTA; lowered by the provider's contacts_limit in the row), and a
--    claim that passes reserves that import with the daily quota -- else a test invite of a
--    +phone target would go past the cap the campaign's claims keep on every replica.
-- Rows are locked trial, target, account: targets before accounts, as the campaign claim and
-- the group commit do. `retry_at` says when a quota, contacts, pause or cooldown refusal
-- would pass.
WITH trial AS MATERIALIZED (
    SELECT id, user_id, task_id, target_id, account_id, expires_at FROM invite_trials
    WHERE id = $1 AND state = 'waiting'
    FOR UPDATE
), task AS (
    SELECT t.id, t.user_id, t.status FROM invite_tasks t JOIN trial r ON t.id = r.task_id AND t.user_id = r.user_id
), target AS MATERIALIZED (
    SELECT g.id, g.status, g.identifier_key, g.user_data
    FROM invite_targets g JOIN trial r ON g.id = r.target_id AND g.task_id = r.task_id
    FOR UPDATE OF g
), account AS MATERIALIZED (
    SELECT a.id, a.user_id, a.status, a.lease_owner, a.lease_expires_at, a.cooldown_until, a.last_action_at,
           invite_window_used(a.daily_window_start, a.daily_count, $2) AS used,
           a.daily_window_start + interval '24 hours' AS resets_at,
           invite_cap($4::int, a.daily_limit) AS cap,
           invite_window_used(a.contacts_window_start, a.contacts_count, $2) AS contacts_used,
           a.contacts_window_start + interval '24 hours' AS contacts_open_at,
           invite_cap($8::int, a.contacts_limit) AS contacts_cap
    FROM invite_accounts a JOIN trial r ON a.id = r.account_id
    FOR UPDATE OF a
), judged AS (
    SELECT r.id, r.account_id, r.target_id, invite_imports_contact(g.identifier_key) AS phone,
           CASE
               WHEN r.expires_at <= $2 THEN 'expired'
               WHEN t.id IS NULL OR t.status = ANY($10::text[]) THEN 'task_closed'
               WHEN g.id IS NULL THEN 'target_gone'
               WHEN g.status = 'in_flight' THEN 'in_flight'
               WHEN g.status <> 'pending' THEN 'already_done'
               -- the person's bars next (named once: each mention would probe again), then the account's
               ELSE COALESCE(b.barred, CASE
                   WHEN a.id IS NULL OR a.user_id <> t.user_id THEN 'account_unknown'
                   WHEN a.status = 'blocked' THEN 'account_blocked'
                   WHEN a.lease_owner IS DISTINCT FROM $3 OR a.lease_expires_at <= $2 THEN 'account_elsewhere'
                   WHEN EXISTS (SELECT 1 FROM invite_task_accounts ta WHERE ta.task_id = t.id)
                        AND NOT EXISTS (SELECT 1 FROM invite_task_accounts ta
                                        WHERE ta.task_id = t.id AND ta.account_id = a.id
                                          AND ta.status IN ('active', 'cooldown'))
                       THEN 'not_in_task'
                   WHEN a.cooldown_until > $2 THEN 'cooldown'
                   WHEN a.last_action_at > $2::timestamptz - $5::float8 * interval '1 second' THEN 'pause'
                   WHEN a.used >= a.cap THEN 'quota'
                   WHEN invite_imports_contact(g.identifier_key) AND a.contacts_used >= a.contacts_cap THEN 'contacts'
               END)
           END AS refused,
           a.cooldown_until, a.last_action_at + $5::float8 * interval '1 second' AS pause_over, a.resets_at,
           a.contacts_open_at
    FROM trial r
    LEFT JOIN task t ON true
    LEFT JOIN target g ON true
    LEFT JOIN account a ON true
    -- one row always (NULL: nobody bars the person); no task or no target: nothing to probe
    CROSS JOIN LATERAL invite_barred(t.user_id, t.id, g.identifier_key, g.user_data, $2, $7::int) AS b(barred)
), reserved AS (
    UPDATE invite_accounts a SET
        daily_count = invite_window_used(a.daily_window_start, a.daily_count, $2) + 1,
        daily_window_start = invite_window_start(a.daily_window_start, $2),
        contacts_count = CASE WHEN j.phone THEN invite_window_used(a.contacts_window_start, a.contacts_count, $2) + 1
                              ELSE a.contacts_count END,
        contacts_window_start = CASE WHEN j.phone THEN invite_window_start(a.contacts_window_start, $2)
                                     ELSE a.contacts_window_start END,
        last_action_at = $2,
        updated_at = $2
    FROM judged j
    WHERE j.refused IS NULL AND a.id = j.account_id
    RETURNING a.id
), claimed AS (
    UPDATE invite_targets g SET
        status = 'in_flight',
        lease_owner = $3,
        lease_expires_at = $2::timestamptz + $6::float8 * interval '1 second',
        account_id = r.id,
        attempts = g.attempts + 1
    FROM reserved r, judged j
    WHERE g.id = j.target_id
    RETURNING g.id, g.identifier_key, g.user_data, g.attempts
), decided AS (
    UPDATE invite_trials r SET
        state = CASE WHEN j.refused IS NULL THEN 'taken' WHEN j.refused = 'expired' THEN 'expired'
                     ELSE 'refused' END,
        outcome = j.refused,
        retry_at = CASE j.refused WHEN 'cooldown' THEN j.cooldown_until WHEN 'pause' THEN j.pause_over
                                  WHEN 'quota' THEN j.resets_at WHEN 'contacts' THEN j.contacts_open_at END,
        attempt = (SELECT attempts FROM claimed),
        taken_by = $3,
        settled_at = CASE WHEN j.refused IS NOT NULL THEN $2::timestamptz END
    FROM judged j
    WHERE r.id = j.id
    RETURNING r.id
)
SELECT j.refused, c.id, c.identifier_key, c.user_data, c.attempts,
       (SELECT count(pg_notify('invite_task_events', $9)) FROM decided) AS notified
FROM judged j LEFT JOIN claimed c ON true

-- name: refuse
-- args: $1 trial_id, $2 refused, $3 detail, $4 retry_at, $5 now, $6 event
-- The account's coroutine refused a waiting trial before claiming it (what only it knows: the
-- account's right in the group, the task's limits, its bucket): written down, nothing done.
WITH decided AS (
    UPDATE invite_trials SET state = 'refused', outcome = $2, detail = $3, retry_at = $4, settled_at = $5
    WHERE id = $1 AND state = 'waiting'
    RETURNING id
)
SELECT count(pg_notify('invite_task_events', $6)) AS notified FROM decided
