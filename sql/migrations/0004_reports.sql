-- Reports at a million targets: what /stats, /report and /logs read, kept cheap to read and
-- cheap to write.
--
-- The execution log is summed as it is written, by a statement-level trigger (one upsert per
-- distinct key a statement touched, however many rows it inserted), into two small rollups:
-- per account (no time) and per UTC hour (no account). Their sizes grow with accounts and
-- hours, not with targets, so /stats reads a few thousand rows at most. They are statistics,
-- not the log: retention deletes old log rows and the rollups keep counting them.
--
-- `outcome` is the log row's details->>'outcome' (the typed outcome of the platform call),
-- or its status when the row carries none.

CREATE TABLE invite_stats_by_account (
    task_id    uuid NOT NULL REFERENCES invite_tasks (id) ON DELETE CASCADE,
    account_id varchar(255) NOT NULL,
    action     varchar(50) NOT NULL,
    status     varchar(20) NOT NULL,
    outcome    varchar(32) NOT NULL,
    n          bigint NOT NULL,
    first_at   timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    PRIMARY KEY (task_id, account_id, action, status, outcome)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);

CREATE TABLE invite_stats_by_hour (
    task_id uuid NOT NULL REFERENCES invite_tasks (id) ON DELETE CASCADE,
    hour    timestamptz NOT NULL,  -- start of the UTC hour the actions were logged in
    action  varchar(50) NOT NULL,
    status  varchar(20) NOT NULL,
    outcome varchar(32) NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (task_id, hour, action, status, outcome)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);

CREATE FUNCTION invite_roll_up_logs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- ORDER BY: concurrent statements lock rollup rows in one order, so they never deadlock
    INSERT INTO invite_stats_by_account AS s
        (task_id, account_id, action, status, outcome, n, first_at, last_at)
    SELECT task_id, account_id, action, status,
           left(COALESCE(NULLIF(details ->> 'outcome', ''), status), 32),
           count(*), min(created_at), max(created_at)
    FROM new_rows WHERE task_id IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (task_id, account_id, action, status, outcome) DO UPDATE
    SET n = s.n + EXCLUDED.n,
        first_at = LEAST(s.first_at, EXCLUDED.first_at),
        last_at = GREATEST(s.last_at, EXCLUDED.last_at);

    INSERT INTO invite_stats_by_hour AS s (task_id, hour, action, status, outcome, n)
    SELECT task_id, date_trunc('hour', created_at, 'UTC'), action, status,
           left(COALESCE(NULLIF(details ->> 'outcome', ''), status), 32), count(*)
    FROM new_rows WHERE task_id IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (task_id, hour, action, status, outcome) DO UPDATE SET n = s.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE TRIGGER invite_execution_logs_roll_up AFTER INSERT ON invite_execution_logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION invite_roll_up_logs();

-- The export streams a task's targets in import order, a page at a time (keyset over seq):
-- without this each page would sort the whole task.
CREATE INDEX invite_targets_task_seq ON invite_targets (task_id, seq);

-- /logs filtered by account pages through that account's rows only, not the task's.
CREATE INDEX invite_logs_task_account_created ON invite_execution_logs (task_id, account_id, created_at);

-- Retention finds finished tasks past their keep-until date without reading live ones.
CREATE INDEX invite_tasks_finished ON invite_tasks (completed_at)
    WHERE status IN ('completed', 'cancelled', 'failed');
