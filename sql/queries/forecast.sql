-- name: tenant_history
-- args: $1 user_id, $2 platform, $3 task_type, $4 task_id, $5 tasks, $6 invite_action, $7 refused
-- The FloodWaits the tenant's ($1) other tasks (not $4) on the platform ($2) with the same
-- task type ($3) met: the $5 most recent that acted, their actions and FloodWaits from the
-- per-hour rollup (the primary key's range per task) and the mean wait of each one's last
-- 200 FloodWaits (from invite_logs_flood_waits, as reports.flood_seconds: it holds the
-- FloodWaits only, so a task's are read and none of the rest of its log, nothing for one that
-- met none). What a task expects before it has met any of its own; every /status plan asks.
-- Likewise their invites ($6 rows answered) and those their people's privacy refused (a status
-- among $7): the share of people a task offering one-use links will offer one to.
SELECT COALESCE(sum(r.actions), 0)::bigint AS actions,
       COALESCE(sum(r.floods), 0)::bigint AS floods,
       (sum(w.seconds * w.n) / NULLIF(sum(w.n), 0))::float8 AS flood_seconds,
       COALESCE(sum(r.invites), 0)::bigint AS invites,
       COALESCE(sum(r.refused), 0)::bigint AS refused
FROM (
    SELECT id FROM invite_tasks
    WHERE user_id = $1 AND platform = $2 AND task_type = $3 AND id <> $4
      AND EXISTS (SELECT FROM invite_stats_by_hour s WHERE s.task_id = invite_tasks.id)
    ORDER BY created_at DESC
    LIMIT $5
) t
CROSS JOIN LATERAL (
    SELECT COALESCE(sum(n), 0) AS actions, COALESCE(sum(n) FILTER (WHERE status = 'flood_wait'), 0) AS floods,
           COALESCE(sum(n) FILTER (WHERE action = $6 AND status <> 'flood_wait'), 0) AS invites,
           COALESCE(sum(n) FILTER (WHERE action = $6 AND status = ANY ($7::text[])), 0) AS refused
    FROM invite_stats_by_hour WHERE task_id = t.id
) r
CROSS JOIN LATERAL (
    SELECT avg(seconds) AS seconds, count(*) AS n FROM (
        SELECT (details ->> 'seconds')::float8 AS seconds
        FROM invite_execution_logs
        WHERE task_id = t.id AND status = 'flood_wait'
        ORDER BY created_at DESC
        LIMIT 200
    ) f
) w
