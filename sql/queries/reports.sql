-- Reports: stats, the final report and its export, the execution log, retry of failed targets,
-- and the fleet gauges. Task ownership is checked first with tasks.get (tenant-scoped); the
-- statements here then read by task id only.

-- name: stats
-- args: $1 task_id, $2 user_id, $3 since, $4 until
-- /stats (and the report's totals) in one statement: one snapshot, one round trip (under the
-- engine's load every round trip waits its turn on the API's event loop). The task ($1, tenant
-- $2) with its counters as in tasks.status_report; then, each as parallel arrays (NULL when
-- empty), the per-account rollup (0004; a few rows per account, however many targets), the
-- task's accounts and their state in it, and the per-hour rollup within [$3, $4) (its primary
-- key starts (task_id, hour): one index range), and the reply counters per account (0017; one
-- row per account that had replies). The service folds them; arrays come back in
-- the binary protocol, far cheaper for both sides than JSON built here. No row: no such task
-- for this tenant.
SELECT t.status, t.status_reason, t.driver, c.statuses, c.ns,
       r.r_account, r.r_action, r.r_status, r.r_outcome, r.r_n, r.r_first, r.r_last,
       a.a_account, a.a_state, a.a_reason, a.a_cooldown,
       h.h_hour, h.h_status, h.h_outcome, h.h_n,
       p.p_account, p.p_replies, p.p_opt_outs
FROM invite_tasks t
CROSS JOIN LATERAL (
    SELECT array_agg(status) AS statuses, array_agg(n) AS ns FROM invite_task_counts WHERE task_id = t.id
) c
CROSS JOIN LATERAL (
    SELECT array_agg(account_id) AS r_account, array_agg(action) AS r_action,
           array_agg(status) AS r_status, array_agg(outcome) AS r_outcome, array_agg(n) AS r_n,
           array_agg(first_at) AS r_first, array_agg(last_at) AS r_last
    FROM invite_stats_by_account
    WHERE task_id = t.id
) r
CROSS JOIN LATERAL (
    SELECT array_agg(account_id) AS a_account, array_agg(status) AS a_state,
           array_agg(status_reason) AS a_reason, array_agg(cooldown_until) AS a_cooldown
    FROM invite_task_accounts
    WHERE task_id = t.id
) a
CROSS JOIN LATERAL (
    SELECT array_agg(hour ORDER BY hour) AS h_hour, array_agg(status ORDER BY hour) AS h_status,
           array_agg(outcome ORDER BY hour) AS h_outcome, array_agg(n ORDER BY hour) AS h_n
    FROM invite_stats_by_hour
    WHERE task_id = t.id AND hour >= $3 AND hour < $4
) h
CROSS JOIN LATERAL (
    SELECT array_agg(account_id) AS p_account, array_agg(replies) AS p_replies,
           array_agg(opt_outs) AS p_opt_outs
    FROM invite_reply_counts
    WHERE task_id = t.id
) p
WHERE t.id = $1 AND t.user_id = $2

-- name: export_page
-- args: $1 task_id, $2 after_seq, $3 limit
-- One page of the export, keyset over seq (import order) on invite_targets_task_seq: every
-- page costs the same however deep it is, and each is its own short statement, so a long
-- download never holds back vacuum on the hot targets table. What the person did after: their
-- first reply and their opt-out (0017, never the text), and their one-use invite link's state
-- (0019: NULL, due, sent, joined, expired).
SELECT seq, user_identifier, status, outcome, account_id, attempts, processed_at, error_message,
       user_data ->> 'username' AS username,
       user_data ->> 'first_name' AS first_name,
       user_data ->> 'last_name' AS last_name,
       replied_at, opted_out_at, link_state
FROM invite_targets
WHERE task_id = $1 AND seq > $2
ORDER BY seq
LIMIT $3

-- name: logs_page
-- args: $1 task_id, $2 before_created_at, $3 before_id, $4 since, $5 status, $6 action, $7 limit
-- Newest first, keyset over (created_at, id) on idx_invite_logs_task_created. The explicit
-- created_at bound gives the index its range; the row comparison breaks ties. $2/$3 is the
-- last row of the previous page (or the upper end of the time range), $4 the lower end.
-- Optional filters ($n IS NULL) only narrow rows already in that range.
SELECT l.id, l.created_at, l.target_id, l.account_id, l.action, l.status, l.details,
       t.user_identifier
FROM invite_execution_logs l
LEFT JOIN invite_targets t ON t.id = l.target_id
WHERE l.task_id = $1
  AND l.created_at <= $2 AND (l.created_at, l.id) < ($2, $3)
  AND l.created_at >= $4
  AND ($5::text IS NULL OR l.status = $5)
  AND ($6::text IS NULL OR l.action = $6)
ORDER BY l.created_at DESC, l.id DESC
LIMIT $7

-- name: logs_page_by_account
-- args: $1 task_id, $2 before_created_at, $3 before_id, $4 since, $5 status, $6 action, $7 limit, $8 account_id
-- logs_page for one account, on invite_logs_task_account_created: a rare account's rows are
-- found without reading the rest of the task's log. A separate statement (not "$n IS NULL OR
-- account_id = $n") so that the plan can always use that index.
SELECT l.id, l.created_at, l.target_id, l.account_id, l.action, l.status, l.details,
       t.user_identifier
FROM invite_execution_logs l
LEFT JOIN invite_targets t ON t.id = l.target_id
WHERE l.task_id = $1 AND l.account_id = $8
  AND l.created_at <= $2 AND (l.created_at, l.id) < ($2, $3)
  AND l.created_at >= $4
  AND ($5::text IS NULL OR l.status = $5)
  AND ($6::text IS NULL OR l.action = $6)
ORDER BY l.created_at DESC, l.id DESC
LIMIT $7

-- name: requeue_failed
-- args: $1 task_id, $2 outcomes, $3 user_id
-- Failed targets whose outcome says another try may work go back to the queue as if new:
-- attempts reset, due now, no account -- except people the tenant ($3) has suppressed since
-- (under any of their keys): they stay failed, and are counted so the answer can say so.
-- The claim would stop them anyway; leaving them out here keeps the numbers honest. One
-- pass over idx_invite_targets_task_status; the counters follow by trigger.
WITH retry AS (
    SELECT g.id,
           EXISTS (SELECT 1 FROM invite_suppressions s
                   WHERE s.user_id = $3 AND s.identifier_key = ANY (invite_person_keys(g.identifier_key, g.user_data)))
               AS suppressed
    FROM invite_targets g
    WHERE g.task_id = $1 AND g.status = 'failed' AND (g.outcome IS NULL OR g.outcome = ANY($2::text[]))
), requeued AS (
    UPDATE invite_targets
    SET status = 'pending', outcome = NULL, error_message = NULL, processed_at = NULL,
        attempts = 0, next_attempt_at = '-infinity', account_id = NULL,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE id IN (SELECT id FROM retry WHERE NOT suppressed)
    RETURNING 1
)
SELECT (SELECT count(*) FROM requeued) AS requeued,
       (SELECT count(*) FROM retry WHERE suppressed) AS suppressed

-- name: reopen
-- args: $1 task_id, $2 user_id, $3 allowed_from, $4 now
-- A finished task goes back to running for its re-queued targets; guarded by status like
-- every transition, so it cannot race a concurrent change. The task comes back as tasks.get's.
UPDATE invite_tasks
SET status = 'running', status_reason = NULL, completed_at = NULL, updated_at = $4
WHERE id = $1 AND user_id = $2 AND status = ANY($3::text[])
RETURNING id, platform, task_type, title, description, target_group_id, message_template, priority,
          status, status_reason, driver, progress, settings, created_at, updated_at, scheduled_at,
          started_at, completed_at

-- name: accounts_by_status
-- args:
-- Fleet gauge: invite_accounts holds one row per account, thousands at most.
SELECT platform, status, count(*) AS n FROM invite_accounts GROUP BY platform, status

-- name: pending_by_platform
-- args:
-- Fleet gauge: running tasks come from the partial index invite_tasks_running, their pending
-- counts from the trigger-kept counters; no target is read.
SELECT t.platform, sum(c.n)::bigint AS n
FROM invite_tasks t
JOIN invite_task_counts c ON c.task_id = t.id AND c.status = 'pending'
WHERE t.status = 'running'
GROUP BY t.platform

-- name: running_task_idle_max
-- args: $1 now
-- Fleet gauge: seconds since the most idle running task (with pending targets) last acted,
-- was started or resumed ($1 = now). The last log row of a task is one backward step on
-- idx_invite_logs_task_created.
SELECT COALESCE(max(EXTRACT(EPOCH FROM ($1 - GREATEST(t.started_at, t.updated_at, l.last_at)))), 0)::float8
FROM invite_tasks t
JOIN invite_task_counts c ON c.task_id = t.id AND c.status = 'pending' AND c.n > 0
LEFT JOIN LATERAL (
    SELECT max(created_at) AS last_at FROM invite_execution_logs WHERE task_id = t.id
) l ON true
WHERE t.status = 'running'

-- name: progress
-- args: $1 task_id, $2 user_id, $3 rate_since, $4 account_ids, $5 not_actions, $6 link_action, $7 invite_action, $8 offered, $9 refused
-- /status with its rate, accounts and ETA, and GET /tasks/{id}/forecast, in one statement (one
-- snapshot, one round trip): the task ($1, tenant $2) with its counters as in
-- tasks.status_report and the fields its limits come from; the actions logged (in all, as
-- FloodWaits, and from the hour starting $3 on: the rate's window), from the per-hour rollup (a few rows an
-- hour of the campaign, the primary key's range: no log row is read), but for the log rows of
-- $5 (what no account spent an action on: the link watcher's joins and revocations) -- of those,
-- what one-use invite links cost (the messages carrying them, $6 rows but FloodWaits; the
-- invites, $7, whose person was offered one, status $8) and what the invites met (those
-- answered, and refused for privacy: a status among $9), and the people still waiting for
-- their link's message (the small partial index invite_targets_link_due); and the quota state
-- of every account attached to the task or named in $4 (the accounts a task not yet started
-- would use) -- its warm-up's start too --, with its state in this task, as parallel arrays (one aggregation, so one row
-- order for all of them, as in reports.stats). The accounts are the tenant's
-- own, found through invite_accounts_user (a handful). No row: no such task for this tenant.
-- The counters come first, as in tasks.status_report (the row is read as a TaskCounts).
SELECT t.status, t.status_reason, t.driver, c.statuses, c.ns,
       t.id, t.user_id, t.platform, t.task_type, t.target_group_id, t.message_template, t.priority,
       t.settings, r.recent, r.actions, r.floods, r.link_actions, r.offered, r.invites, r.refused,
       (SELECT count(*) FROM invite_targets g WHERE g.task_id = t.id AND g.status = 'pending' AND g.link_state = 'due')
           AS links_due,
       a.a_id, a.a_task_status, a.a_status, a.a_reason, a.a_cooldown, a.a_task_cooldown,
       a.a_window, a.a_count, a.a_limit, a.a_last, a.a_multiplier, a.a_warmup
FROM invite_tasks t
CROSS JOIN LATERAL (
    SELECT array_agg(status) AS statuses, array_agg(n) AS ns FROM invite_task_counts WHERE task_id = t.id
) c
CROSS JOIN LATERAL (
    SELECT COALESCE(sum(n) FILTER (WHERE hour >= $3), 0)::bigint AS recent,
           COALESCE(sum(n), 0)::bigint AS actions,
           COALESCE(sum(n) FILTER (WHERE status = 'flood_wait'), 0)::bigint AS floods,
           COALESCE(sum(n) FILTER (WHERE action = $6 AND status <> 'flood_wait'), 0)::bigint AS link_actions,
           COALESCE(sum(n) FILTER (WHERE action = $7 AND status = $8), 0)::bigint AS offered,
           COALESCE(sum(n) FILTER (WHERE action = $7 AND status <> 'flood_wait'), 0)::bigint AS invites,
           COALESCE(sum(n) FILTER (WHERE action = $7 AND status = ANY ($9::text[])), 0)::bigint AS refused
    FROM invite_stats_by_hour WHERE task_id = t.id AND NOT (action = ANY ($5::text[]))
) r
CROSS JOIN LATERAL (
    SELECT array_agg(ac.id) AS a_id,
           array_agg(ta.status) AS a_task_status,
           array_agg(ac.status) AS a_status,
           array_agg(COALESCE(ta.status_reason, ac.status_reason)) AS a_reason,
           array_agg(ac.cooldown_until) AS a_cooldown,
           array_agg(ta.cooldown_until) AS a_task_cooldown,
           array_agg(ac.daily_window_start) AS a_window,
           array_agg(ac.daily_count) AS a_count,
           array_agg(ac.daily_limit) AS a_limit,
           array_agg(ac.last_action_at) AS a_last,
           array_agg(ac.pace_multiplier) AS a_multiplier,
           array_agg(ac.warmup_since) AS a_warmup
    FROM invite_accounts ac
    LEFT JOIN invite_task_accounts ta ON ta.task_id = t.id AND ta.account_id = ac.id
    WHERE ac.user_id = t.user_id AND (ta.id IS NOT NULL OR ac.id = ANY($4::text[]))
) a
WHERE t.id = $1 AND t.user_id = $2

-- name: flood_seconds
-- args: $1 task_id
-- The forecast's FloodWait cost: the mean wait of the task's ($1) last 200 FloodWaits, found
-- from invite_logs_flood_waits, which holds the FloodWaits only: the task's are read and none
-- of the rest of its log, at most 200 walking it backwards, all when the planner expects few
-- and takes them by bitmap (every /status plan of a task that met FloodWaits asks, each 30 s
-- on every replica, besides GET /forecast and import dry runs).
SELECT avg(seconds)::float8 FROM (
    SELECT (details ->> 'seconds')::float8 AS seconds
    FROM invite_execution_logs
    WHERE task_id = $1 AND status = 'flood_wait'
    ORDER BY created_at DESC
    LIMIT 200
) f
