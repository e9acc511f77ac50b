-- Each task's FloodWaits in time order: the forecast's mean wait of a task's last 200
-- (reports.flood_seconds, forecast.tenant_history: every /status plan, GET /forecast, import
-- dry runs) reads them here. On idx_invite_logs_task_created the status is checked on the
-- table rows, so a task with fewer than 200 FloodWaits had its whole log read; here every
-- entry is one, so the rest of the log is never read (at most 200 entries walking it
-- backwards, a task's few by bitmap). Partial: FloodWaits are a few in a hundred actions, so
-- it costs the log's writes little.
CREATE INDEX invite_logs_flood_waits ON invite_execution_logs (task_id, created_at)
    WHERE status = 'flood_wait';
