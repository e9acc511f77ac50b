-- Task settings gained upper bounds (tasks/task_settings.py): a task stored before them could
-- hold a value the schema now refuses (max_parallel_accounts 2**70, min_pause_seconds 1e12),
-- and such a row could be read neither by the API nor by the engine. Each is brought to its
-- bound, which keeps what the customer meant (as many accounts as allowed, as slow as
-- allowed). The numbers are the MAX_* of task_settings.py.
UPDATE invite_tasks t SET settings = t.settings || clamped.patch
FROM (
    SELECT id, jsonb_object_agg(key, to_jsonb(bound)) AS patch
    FROM invite_tasks,
         LATERAL (VALUES ('daily_limit_per_account', 10000::numeric),
                         ('min_pause_seconds', 86400),
                         ('max_parallel_accounts', 10000),
                         ('max_attempts', 100),
                         ('recontact_days', 3650)) AS b(key, bound)
    WHERE jsonb_typeof(settings -> key) = 'number' AND (settings ->> key)::numeric > bound
    GROUP BY id
) clamped
WHERE t.id = clamped.id;
