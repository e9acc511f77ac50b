-- Invite Service schema: the brief's four tables (same names and columns) plus what the
-- engine needs. Tenant ids are opaque strings (the platform's ids are integers today).
-- Times the engine decides on are written from the service's clock, not now(), so a
-- simulated day behaves like a real one.

CREATE TABLE invite_tasks (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          text NOT NULL,
    platform         varchar(20) NOT NULL
                     CHECK (platform IN ('telegram', 'instagram', 'whatsapp')),
    task_type        varchar(20) NOT NULL
                     CHECK (task_type IN ('invite_to_group', 'send_messages')),
    title            varchar(255) NOT NULL,
    description      text,
    target_group_id  varchar(255),
    message_template text,
    priority         integer NOT NULL DEFAULT 2 CHECK (priority IN (1, 2, 3)),
    status           varchar(20) NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'scheduled', 'running', 'paused',
                                       'completed', 'cancelled', 'failed')),
    progress         jsonb NOT NULL DEFAULT '{}',
    settings         jsonb NOT NULL DEFAULT '{}',
    -- which Telegram driver runs the task: the sandbox simulator is never a silent fallback
    driver           varchar(20) NOT NULL DEFAULT 'sandbox'
                     CHECK (driver IN ('sandbox', 'telegram')),
    -- why the task is paused or failed, in words the customer sees
    status_reason    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    scheduled_at     timestamptz,
    started_at       timestamptz,
    completed_at     timestamptz,
    CHECK (task_type <> 'invite_to_group' OR target_group_id IS NOT NULL),
    CHECK (task_type <> 'send_messages' OR message_template IS NOT NULL)
);
CREATE INDEX idx_invite_tasks_user_status ON invite_tasks (user_id, status);
-- keyset pagination of a tenant's tasks, newest first
CREATE INDEX invite_tasks_user_created ON invite_tasks (user_id, created_at DESC, id DESC);
-- the scheduler's look-ups: due scheduled tasks and running tasks, both tiny sets
CREATE INDEX invite_tasks_due ON invite_tasks (scheduled_at) WHERE status = 'scheduled';
CREATE INDEX invite_tasks_running ON invite_tasks (priority, id) WHERE status = 'running';

CREATE TABLE invite_targets (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_id          uuid NOT NULL REFERENCES invite_tasks (id) ON DELETE CASCADE,
    -- claim order: the order people were imported in
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    user_identifier  varchar(255) NOT NULL,
    -- the normalised person ('u:<username lower>', 'id:<n>', 'p:<E.164>'): one action per
    -- person per task is a unique constraint, not a hope
    identifier_key   varchar(255) NOT NULL,
    user_data        jsonb NOT NULL DEFAULT '{}',
    status           varchar(20) NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'in_flight', 'succeeded', 'skipped',
                                       'failed', 'uncertain', 'cancelled')),
    -- the typed outcome behind the status (success, already_member, privacy_restricted, ...)
    outcome          varchar(32),
    result           jsonb NOT NULL DEFAULT '{}',
    processed_at     timestamptz,
    error_message    text,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- retries with backoff wait here; '-infinity' means "now", so the claim index can
    -- order by it without NULL handling
    next_attempt_at  timestamptz NOT NULL DEFAULT '-infinity',
    account_id       varchar(255),
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, identifier_key),
    CHECK (status <> 'in_flight' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
) WITH (
    -- hot table: every target is updated at least twice; keep vacuum close behind the claim
    -- so dead entries never pile up at the head of the pending index (see PERF-NOTES)
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02
);
CREATE INDEX idx_invite_targets_task_status ON invite_targets (task_id, status);
-- The claim's index: its columns are exactly the claim's WHERE and ORDER BY, and only
-- pending rows are in it, so a claim reads the head of one task's queue and nothing else.
CREATE INDEX invite_targets_pending ON invite_targets (task_id, next_attempt_at, seq)
    WHERE status = 'pending';
-- Recovery after a crash looks only at rows in flight whose lease has run out.
CREATE INDEX invite_targets_in_flight ON invite_targets (lease_expires_at)
    WHERE status = 'in_flight';

CREATE TABLE invite_task_accounts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_id        uuid NOT NULL REFERENCES invite_tasks (id) ON DELETE CASCADE,
    account_id     varchar(255) NOT NULL,
    platform       varchar(20) NOT NULL CHECK (platform IN ('telegram', 'instagram', 'whatsapp')),
    -- 'excluded': the account may not serve this task (e.g. no invite right in the group)
    status         varchar(20) NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'cooldown', 'blocked', 'excluded')),
    status_reason  text,
    cooldown_until timestamptz,
    stats          jsonb NOT NULL DEFAULT '{}',
    last_used_at   timestamptz,
    UNIQUE (task_id, account_id)
);
CREATE INDEX invite_task_accounts_account ON invite_task_accounts (account_id);

CREATE TABLE invite_execution_logs (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_id    uuid REFERENCES invite_tasks (id) ON DELETE CASCADE,
    target_id  uuid REFERENCES invite_targets (id) ON DELETE CASCADE,
    account_id varchar(255) NOT NULL,
    action     varchar(50) NOT NULL,
    status     varchar(20) NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0.05);
CREATE INDEX idx_invite_logs_task_created ON invite_execution_logs (task_id, created_at);
-- retention deletes the oldest rows in batches
CREATE INDEX invite_logs_created ON invite_execution_logs (created_at);
CREATE INDEX invite_logs_target ON invite_execution_logs (target_id);

-- One row per Telegram account across all tasks: the quota, cooldown, pacing and lease
-- state that must hold across tasks, restarts and replicas.
CREATE TABLE invite_accounts (
    id                 varchar(255) PRIMARY KEY,
    user_id            text NOT NULL,
    platform           varchar(20) NOT NULL DEFAULT 'telegram'
                       CHECK (platform IN ('telegram', 'instagram', 'whatsapp')),
    label              text,
    status             varchar(20) NOT NULL DEFAULT 'active'
                       CHECK (status IN ('active', 'cooldown', 'blocked', 'disabled')),
    status_reason      text,
    cooldown_until     timestamptz,
    -- the daily quota is a 24 h window opened by the first action after the last one closed
    daily_window_start timestamptz,
    daily_count        integer NOT NULL DEFAULT 0 CHECK (daily_count >= 0),
    -- the lowest limit the Integration Service reports for this account (NULL: none)
    daily_limit        integer CHECK (daily_limit IS NULL OR daily_limit >= 0),
    last_action_at     timestamptz,
    -- AIMD: FloodWait multiplies the pause, successes bring it back down slowly
    pace_multiplier    double precision NOT NULL DEFAULT 1.0 CHECK (pace_multiplier >= 1.0),
    flood_waits        integer NOT NULL DEFAULT 0,
    peer_floods        integer NOT NULL DEFAULT 0,
    lease_owner        text,
    lease_expires_at   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX invite_accounts_user ON invite_accounts (user_id);
CREATE INDEX invite_accounts_lease ON invite_accounts (lease_expires_at) WHERE status <> 'blocked';

-- Counts of targets per task and status, kept by statement-level triggers so that status
-- pages never COUNT(*) a million rows and the counters can never drift from the targets.
CREATE TABLE invite_task_counts (
    task_id uuid NOT NULL REFERENCES invite_tasks (id) ON DELETE CASCADE,
    status  varchar(20) NOT NULL,
    n       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, status)
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);

CREATE FUNCTION invite_count_targets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- one upsert per (task, status) a statement touched, however many rows it changed
    IF TG_OP = 'INSERT' THEN
        INSERT INTO invite_task_counts AS c (task_id, status, n)
        SELECT task_id, status, count(*) FROM new_rows GROUP BY 1, 2
        ON CONFLICT (task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO invite_task_counts AS c (task_id, status, n)
        SELECT task_id, status, sum(d) FROM (
            SELECT task_id, status, 1 AS d FROM new_rows
            UNION ALL
            SELECT task_id, status, -1 FROM old_rows
        ) delta GROUP BY 1, 2 HAVING sum(d) <> 0
        ON CONFLICT (task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
        INSERT INTO invite_task_counts AS c (task_id, status, n)
        SELECT o.task_id, o.status, -count(*) FROM old_rows o
        WHERE EXISTS (SELECT 1 FROM invite_tasks t WHERE t.id = o.task_id)
        GROUP BY 1, 2
        ON CONFLICT (task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER invite_targets_count_insert AFTER INSERT ON invite_targets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION invite_count_targets();
CREATE TRIGGER invite_targets_count_update AFTER UPDATE ON invite_targets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION invite_count_targets();
CREATE TRIGGER invite_targets_count_delete AFTER DELETE ON invite_targets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION invite_count_targets();

-- People a tenant must never contact, whatever the task.
CREATE TABLE invite_suppressions (
    user_id        text NOT NULL,
    identifier_key varchar(255) NOT NULL,
    user_identifier varchar(255) NOT NULL,
    reason         text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, identifier_key)
);

-- Who did what, when, through which request: every mutating API call.
CREATE TABLE invite_audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     text NOT NULL,
    action      varchar(64) NOT NULL,
    resource    varchar(64) NOT NULL,
    resource_id text,
    request_id  text,
    details     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invite_audit_user_created ON invite_audit_log (user_id, created_at DESC);
