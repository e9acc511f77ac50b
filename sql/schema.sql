-- The schema sql/migrations produce, written by `make schema`: do not edit by hand.

--
-- Name: invite; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA invite;

--
-- Name: invite_barred(text, uuid, text, jsonb, timestamp with time zone, integer); Type: FUNCTION; Schema: invite; Owner: -
--

CREATE FUNCTION invite.invite_barred(tenant text, task uuid, person_key text, person jsonb, at timestamp with time zone, recontact_days integer) RETURNS SETOF text
    LANGUAGE sql STABLE ROWS 1 PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM invite_suppressions s
                     WHERE s.user_id = tenant
                       AND s.identifier_key = ANY (invite_person_keys(person_key, person)))
            THEN 'suppressed'
        WHEN recontact_days > 0
             AND EXISTS (SELECT 1 FROM invite_tasks o JOIN invite_targets p ON p.task_id = o.id
                         WHERE o.user_id = tenant AND o.id <> task
                           AND p.identifier_key = person_key
                           AND p.status IN ('succeeded', 'uncertain')
                           AND p.processed_at >= at - recontact_days * interval '1 day')
            THEN 'recently_contacted'
    END
$$;

--
-- Name: invite_cap(integer, integer); Type: FUNCTION; Schema: invite; Owner: -
--

CREATE FUNCTION invite.invite_cap(ours integer, theirs integer) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT LEAST(ours, COALESCE(theirs, ours))
$$;

--
-- Name: invite_channel_key(text); Type: FUNCTION; Schema: invite; Owner: -
--

CREATE FUNCTION invite.invite_channel_key(channel text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT lower(regexp_replace(
        CASE WHEN s ~ '^(https?://)?t\.me/' THEN regexp_replace(s, '^.*/', '') ELSE s END, '^@', ''))
    FROM (SELECT btrim(channel, E' \t\r\n') AS s) trimmed
$$;

--
-- Name: invite_count_channel_invites(); Type: FUNCTION; Schema: invite; Owner: -
--

CREATE FUNCTION invite.invite_count_channel_invites() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    -- only a target that becomes succeeded by a successful invite counts (old_rows: an
    -- update that touches a target already succeeded does not count it again); keys in
    -- order, so two commits lock the counters in the same order
    INSERT INTO invite_account_channels AS c (account_id, channel, invites)
    SELECT n.account_id, invite_channel_key(t.target_group_id), count(*)
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id
    JOIN invite_tasks t ON t.id = n.task_id
    WHERE n.status = 'succeeded' AND n.outcome = 'success' AND o.status <> 'succeeded'
      AND n.account_id IS NOT NULL AND t.task_type = 'invite_to_group' AND t.target_group_id IS NOT NULL
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (account_id, channel) DO UPDATE SET invites = c.invites + EXCLUDED.invites;
    RETURN NULL;
END $$;

--
-- Name: invite_count_targets(); Type: FUNCTION; Schema: invite; Owner: -
--

CREATE FUNCTION invite.invite_count_targets() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO invite_task_counts AS c (task_id, status, n)
        SELECT task_id, status, count(*) FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO invite_task_counts AS c (task_id, status, n)
        SELECT task_id, status, sum(d) FROM (
            SELECT task_id, status, 1 AS d FROM new_rows
            UNION ALL
            SELECT task_id, status, -1 FROM old_rows
        ) delta GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2
        ON CONFLICT (task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
        INSERT INTO invite_task_counts AS c (task_id, status, n)
        SELECT o.task_id, o.status, -count(*) FROM old_rows o
        WHERE EXISTS (SELECT 1 FROM invite_tasks t WHERE t.id = o.task_id)
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;

--
-- Name: invite_imports_contact(text); Type: FUNCTION; Schema: invite; Owner: -
--

CREATE FUNCTION invite.invite_imports_contact(identifier_key text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT identifier_key LIKE 'p:%'
$$;

--
-- Name: invite_person_keys(text, jsonb); Type: FUNCTION; Schema: invite; Owner: -
--

CREATE FUNCTION invite.invite_person_keys(identifier_key text, user_data jsonb) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT array_remove(ARRAY[
        identifier_key,
        'u:' || lower(user_data ->> 'username'),
        'id:' || (user_data ->> 'user_id'),
        'p:' || (user_data ->> 'phone')
    ], NULL)
$$;

--
-- Name: invite_reply_targets(text, text[], timestamp with time zone, text[]); Type: FUNCTION; Schema: invite; Owner: -
--

CREATE FUNCTION invite.invite_reply_targets(account text, keys text[], at timestamp with time zone, statuses text[]) RETURNS TABLE(id uuid)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT t.id
    FROM invite_task_accounts ta
    JOIN invite_tasks k ON k.id = ta.task_id
    JOIN invite_targets t ON t.task_id = k.id AND t.identifier_key = ANY (keys)
    WHERE ta.account_id = account AND t.account_id = account
      AND CASE WHEN k.task_type = 'send_messages' THEN t.status = ANY (statuses)
               ELSE t.link_state IN ('sent', 'joined', 'expired') END
      AND t.processed_at <= at + interval '1 minute'
$$;

--
-- Name: invite_roll_up_logs(); Type: FUNCTION; Schema: invite; Owner: -
--

CREATE FUNCTION invite.invite_roll_up_logs() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

--
-- Name: invite_window_start(timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: invite; Owner: -
--

CREATE FUNCTION invite.invite_window_start(start timestamp with time zone, at timestamp with time zone) RETURNS timestamp with time zone
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN start > at - interval '24 hours' THEN start ELSE at END
$$;

--
-- Name: invite_window_used(timestamp with time zone, integer, timestamp with time zone); Type: FUNCTION; Schema: invite; Owner: -
--

CREATE FUNCTION invite.invite_window_used(start timestamp with time zone, used integer, at timestamp with time zone) RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN start > at - interval '24 hours' THEN used ELSE 0 END
$$;

--
-- Name: invite_account_channels; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_account_channels (
    account_id character varying(255) NOT NULL,
    channel text NOT NULL,
    invites bigint DEFAULT 0 NOT NULL
);

--
-- Name: invite_accounts; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_accounts (
    id character varying(255) NOT NULL,
    user_id text NOT NULL,
    platform character varying(20) DEFAULT 'telegram'::character varying NOT NULL,
    label text,
    status character varying(20) DEFAULT 'active'::character varying NOT NULL,
    status_reason text,
    cooldown_until timestamp with time zone,
    daily_window_start timestamp with time zone,
    daily_count integer DEFAULT 0 NOT NULL,
    daily_limit integer,
    last_action_at timestamp with time zone,
    pace_multiplier double precision DEFAULT 1.0 NOT NULL,
    flood_waits integer DEFAULT 0 NOT NULL,
    peer_floods integer DEFAULT 0 NOT NULL,
    lease_owner text,
    lease_expires_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    contacts_window_start timestamp with time zone,
    contacts_count integer DEFAULT 0 NOT NULL,
    contacts_limit integer,
    warmup_since timestamp with time zone,
    CONSTRAINT invite_accounts_contacts_count_check CHECK ((contacts_count >= 0)),
    CONSTRAINT invite_accounts_contacts_limit_check CHECK (((contacts_limit IS NULL) OR (contacts_limit >= 0))),
    CONSTRAINT invite_accounts_daily_count_check CHECK ((daily_count >= 0)),
    CONSTRAINT invite_accounts_daily_limit_check CHECK (((daily_limit IS NULL) OR (daily_limit >= 0))),
    CONSTRAINT invite_accounts_pace_multiplier_check CHECK ((pace_multiplier >= (1.0)::double precision)),
    CONSTRAINT invite_accounts_platform_check CHECK (((platform)::text = ANY ((ARRAY['telegram'::character varying, 'instagram'::character varying, 'whatsapp'::character varying])::text[]))),
    CONSTRAINT invite_accounts_status_check CHECK (((status)::text = ANY ((ARRAY['active'::character varying, 'cooldown'::character varying, 'blocked'::character varying, 'disabled'::character varying])::text[])))
)
WITH (fillfactor='70', autovacuum_vacuum_scale_factor='0.01', autovacuum_vacuum_cost_delay='0');

--
-- Name: invite_audit_log; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_audit_log (
    id bigint NOT NULL,
    user_id text NOT NULL,
    action character varying(64) NOT NULL,
    resource character varying(64) NOT NULL,
    resource_id text,
    request_id text,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: invite_audit_log_id_seq; Type: SEQUENCE; Schema: invite; Owner: -
--

ALTER TABLE invite.invite_audit_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME invite.invite_audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: invite_execution_logs; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_execution_logs (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    task_id uuid,
    target_id uuid,
    account_id character varying(255) NOT NULL,
    action character varying(50) NOT NULL,
    status character varying(20) NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
)
WITH (autovacuum_vacuum_scale_factor='0.05');

--
-- Name: invite_imports; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_imports (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id text NOT NULL,
    task_id uuid NOT NULL,
    source character varying(20) NOT NULL,
    source_name text,
    report jsonb NOT NULL,
    rejected jsonb DEFAULT '[]'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT invite_imports_source_check CHECK (((source)::text = ANY ((ARRAY['file'::character varying, 'parsing'::character varying, 'legacy'::character varying])::text[])))
);

--
-- Name: invite_links; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_links (
    target_id uuid NOT NULL,
    task_id uuid NOT NULL,
    account_id character varying(255) NOT NULL,
    url text NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone NOT NULL,
    joined_at timestamp with time zone,
    revoked_at timestamp with time zone
);

--
-- Name: invite_reply_counts; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_reply_counts (
    task_id uuid NOT NULL,
    account_id character varying(255) NOT NULL,
    replies bigint DEFAULT 0 NOT NULL,
    opt_outs bigint DEFAULT 0 NOT NULL,
    CONSTRAINT invite_reply_counts_opt_outs_check CHECK ((opt_outs >= 0)),
    CONSTRAINT invite_reply_counts_replies_check CHECK ((replies >= 0))
);

--
-- Name: invite_stats_by_account; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_stats_by_account (
    task_id uuid NOT NULL,
    account_id character varying(255) NOT NULL,
    action character varying(50) NOT NULL,
    status character varying(20) NOT NULL,
    outcome character varying(32) NOT NULL,
    n bigint NOT NULL,
    first_at timestamp with time zone NOT NULL,
    last_at timestamp with time zone NOT NULL
)
WITH (fillfactor='70', autovacuum_vacuum_scale_factor='0.01', autovacuum_vacuum_cost_delay='0');

--
-- Name: invite_stats_by_hour; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_stats_by_hour (
    task_id uuid NOT NULL,
    hour timestamp with time zone NOT NULL,
    action character varying(50) NOT NULL,
    status character varying(20) NOT NULL,
    outcome character varying(32) NOT NULL,
    n bigint NOT NULL
)
WITH (fillfactor='70', autovacuum_vacuum_scale_factor='0.01', autovacuum_vacuum_cost_delay='0');

--
-- Name: invite_suppressions; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_suppressions (
    user_id text NOT NULL,
    identifier_key character varying(255) NOT NULL,
    user_identifier character varying(255) NOT NULL,
    reason text,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: invite_targets; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_targets (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    task_id uuid NOT NULL,
    seq bigint NOT NULL,
    user_identifier character varying(255) NOT NULL,
    identifier_key character varying(255) NOT NULL,
    user_data jsonb DEFAULT '{}'::jsonb NOT NULL,
    status character varying(20) DEFAULT 'pending'::character varying NOT NULL,
    outcome character varying(32),
    result jsonb DEFAULT '{}'::jsonb NOT NULL,
    processed_at timestamp with time zone,
    error_message text,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    account_id character varying(255),
    lease_owner text,
    lease_expires_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    claim_id uuid,
    replied_at timestamp with time zone,
    opted_out_at timestamp with time zone,
    link_state text,
    CONSTRAINT invite_targets_attempts_check CHECK ((attempts >= 0)),
    CONSTRAINT invite_targets_check CHECK ((((status)::text <> 'in_flight'::text) OR ((lease_owner IS NOT NULL) AND (lease_expires_at IS NOT NULL)))),
    CONSTRAINT invite_targets_link_state_check CHECK ((link_state = ANY (ARRAY['due'::text, 'sent'::text, 'joined'::text, 'expired'::text]))),
    CONSTRAINT invite_targets_status_check CHECK (((status)::text = ANY ((ARRAY['pending'::character varying, 'in_flight'::character varying, 'succeeded'::character varying, 'skipped'::character varying, 'failed'::character varying, 'uncertain'::character varying, 'cancelled'::character varying])::text[])))
)
WITH (fillfactor='70', autovacuum_vacuum_scale_factor='0.01', autovacuum_vacuum_threshold='1000', autovacuum_vacuum_cost_delay='0', autovacuum_analyze_scale_factor='0.02');

--
-- Name: invite_targets_seq_seq; Type: SEQUENCE; Schema: invite; Owner: -
--

ALTER TABLE invite.invite_targets ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME invite.invite_targets_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: invite_task_accounts; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_task_accounts (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    task_id uuid NOT NULL,
    account_id character varying(255) NOT NULL,
    platform character varying(20) NOT NULL,
    status character varying(20) DEFAULT 'active'::character varying NOT NULL,
    status_reason text,
    cooldown_until timestamp with time zone,
    stats jsonb DEFAULT '{}'::jsonb NOT NULL,
    last_used_at timestamp with time zone,
    CONSTRAINT invite_task_accounts_platform_check CHECK (((platform)::text = ANY ((ARRAY['telegram'::character varying, 'instagram'::character varying, 'whatsapp'::character varying])::text[]))),
    CONSTRAINT invite_task_accounts_status_check CHECK (((status)::text = ANY ((ARRAY['active'::character varying, 'cooldown'::character varying, 'blocked'::character varying, 'excluded'::character varying])::text[])))
);

--
-- Name: invite_task_counts; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_task_counts (
    task_id uuid NOT NULL,
    status character varying(20) NOT NULL,
    n bigint DEFAULT 0 NOT NULL
)
WITH (fillfactor='50', autovacuum_vacuum_scale_factor='0.01', autovacuum_vacuum_cost_delay='0');

--
-- Name: invite_tasks; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_tasks (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id text NOT NULL,
    platform character varying(20) NOT NULL,
    task_type character varying(20) NOT NULL,
    title character varying(255) NOT NULL,
    description text,
    target_group_id character varying(255),
    message_template text,
    priority integer DEFAULT 2 NOT NULL,
    status character varying(20) DEFAULT 'draft'::character varying NOT NULL,
    progress jsonb DEFAULT '{}'::jsonb NOT NULL,
    settings jsonb DEFAULT '{}'::jsonb NOT NULL,
    driver character varying(20) DEFAULT 'sandbox'::character varying NOT NULL,
    status_reason text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    scheduled_at timestamp with time zone,
    started_at timestamp with time zone,
    completed_at timestamp with time zone,
    accounts_wait_since timestamp with time zone,
    CONSTRAINT invite_tasks_check CHECK ((((task_type)::text <> 'invite_to_group'::text) OR (target_group_id IS NOT NULL))),
    CONSTRAINT invite_tasks_check1 CHECK ((((task_type)::text <> 'send_messages'::text) OR (message_template IS NOT NULL))),
    CONSTRAINT invite_tasks_driver_check CHECK (((driver)::text = ANY ((ARRAY['sandbox'::character varying, 'telegram'::character varying])::text[]))),
    CONSTRAINT invite_tasks_platform_check CHECK (((platform)::text = ANY ((ARRAY['telegram'::character varying, 'instagram'::character varying, 'whatsapp'::character varying])::text[]))),
    CONSTRAINT invite_tasks_priority_check CHECK ((priority = ANY (ARRAY[1, 2, 3]))),
    CONSTRAINT invite_tasks_status_check CHECK (((status)::text = ANY ((ARRAY['draft'::character varying, 'scheduled'::character varying, 'running'::character varying, 'paused'::character varying, 'completed'::character varying, 'cancelled'::character varying, 'failed'::character varying])::text[]))),
    CONSTRAINT invite_tasks_task_type_check CHECK (((task_type)::text = ANY ((ARRAY['invite_to_group'::character varying, 'send_messages'::character varying])::text[])))
);

--
-- Name: invite_trials; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.invite_trials (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id text NOT NULL,
    task_id uuid NOT NULL,
    target_id uuid NOT NULL,
    account_id character varying(255) NOT NULL,
    driver character varying(20) NOT NULL,
    state character varying(20) DEFAULT 'waiting'::character varying NOT NULL,
    outcome character varying(32),
    detail text,
    retry_at timestamp with time zone,
    attempt integer,
    taken_by text,
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    settled_at timestamp with time zone,
    CONSTRAINT invite_trials_state_check CHECK (((state)::text = ANY ((ARRAY['waiting'::character varying, 'taken'::character varying, 'refused'::character varying, 'expired'::character varying, 'done'::character varying])::text[])))
);

--
-- Name: schema_migrations; Type: TABLE; Schema: invite; Owner: -
--

CREATE TABLE invite.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: invite_account_channels invite_account_channels_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_account_channels
    ADD CONSTRAINT invite_account_channels_pkey PRIMARY KEY (account_id, channel);

--
-- Name: invite_accounts invite_accounts_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_accounts
    ADD CONSTRAINT invite_accounts_pkey PRIMARY KEY (id);

--
-- Name: invite_audit_log invite_audit_log_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_audit_log
    ADD CONSTRAINT invite_audit_log_pkey PRIMARY KEY (id);

--
-- Name: invite_execution_logs invite_execution_logs_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_execution_logs
    ADD CONSTRAINT invite_execution_logs_pkey PRIMARY KEY (id);

--
-- Name: invite_imports invite_imports_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_imports
    ADD CONSTRAINT invite_imports_pkey PRIMARY KEY (id);

--
-- Name: invite_links invite_links_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_links
    ADD CONSTRAINT invite_links_pkey PRIMARY KEY (target_id);

--
-- Name: invite_reply_counts invite_reply_counts_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_reply_counts
    ADD CONSTRAINT invite_reply_counts_pkey PRIMARY KEY (task_id, account_id);

--
-- Name: invite_stats_by_account invite_stats_by_account_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_stats_by_account
    ADD CONSTRAINT invite_stats_by_account_pkey PRIMARY KEY (task_id, account_id, action, status, outcome);

--
-- Name: invite_stats_by_hour invite_stats_by_hour_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_stats_by_hour
    ADD CONSTRAINT invite_stats_by_hour_pkey PRIMARY KEY (task_id, hour, action, status, outcome);

--
-- Name: invite_suppressions invite_suppressions_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_suppressions
    ADD CONSTRAINT invite_suppressions_pkey PRIMARY KEY (user_id, identifier_key);

--
-- Name: invite_targets invite_targets_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_targets
    ADD CONSTRAINT invite_targets_pkey PRIMARY KEY (id);

--
-- Name: invite_targets invite_targets_task_id_identifier_key_key; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_targets
    ADD CONSTRAINT invite_targets_task_id_identifier_key_key UNIQUE (task_id, identifier_key);

--
-- Name: invite_task_accounts invite_task_accounts_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_task_accounts
    ADD CONSTRAINT invite_task_accounts_pkey PRIMARY KEY (id);

--
-- Name: invite_task_accounts invite_task_accounts_task_id_account_id_key; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_task_accounts
    ADD CONSTRAINT invite_task_accounts_task_id_account_id_key UNIQUE (task_id, account_id);

--
-- Name: invite_task_counts invite_task_counts_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_task_counts
    ADD CONSTRAINT invite_task_counts_pkey PRIMARY KEY (task_id, status);

--
-- Name: invite_tasks invite_tasks_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_tasks
    ADD CONSTRAINT invite_tasks_pkey PRIMARY KEY (id);

--
-- Name: invite_trials invite_trials_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_trials
    ADD CONSTRAINT invite_trials_pkey PRIMARY KEY (id);

--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

--
-- Name: idx_invite_logs_task_created; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX idx_invite_logs_task_created ON invite.invite_execution_logs USING btree (task_id, created_at);

--
-- Name: idx_invite_targets_task_status; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX idx_invite_targets_task_status ON invite.invite_targets USING btree (task_id, status);

--
-- Name: idx_invite_tasks_user_status; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX idx_invite_tasks_user_status ON invite.invite_tasks USING btree (user_id, status);

--
-- Name: invite_accounts_lease; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_accounts_lease ON invite.invite_accounts USING btree (lease_expires_at) WHERE ((status)::text <> 'blocked'::text);

--
-- Name: invite_accounts_user; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_accounts_user ON invite.invite_accounts USING btree (user_id);

--
-- Name: invite_audit_user_created; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_audit_user_created ON invite.invite_audit_log USING btree (user_id, created_at DESC);

--
-- Name: invite_imports_task; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_imports_task ON invite.invite_imports USING btree (task_id, created_at DESC);

--
-- Name: invite_links_open; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_links_open ON invite.invite_links USING btree (account_id, expires_at) WHERE ((joined_at IS NULL) AND (revoked_at IS NULL));

--
-- Name: invite_logs_created; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_logs_created ON invite.invite_execution_logs USING btree (created_at);

--
-- Name: invite_logs_flood_waits; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_logs_flood_waits ON invite.invite_execution_logs USING btree (task_id, created_at) WHERE ((status)::text = 'flood_wait'::text);

--
-- Name: invite_logs_target; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_logs_target ON invite.invite_execution_logs USING btree (target_id);

--
-- Name: invite_logs_task_account_created; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_logs_task_account_created ON invite.invite_execution_logs USING btree (task_id, account_id, created_at);

--
-- Name: invite_suppressions_user_created; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_suppressions_user_created ON invite.invite_suppressions USING btree (user_id, created_at DESC, identifier_key DESC);

--
-- Name: invite_targets_in_flight; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_targets_in_flight ON invite.invite_targets USING btree (lease_expires_at) WHERE ((status)::text = 'in_flight'::text);

--
-- Name: invite_targets_link_due; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_targets_link_due ON invite.invite_targets USING btree (task_id) WHERE (((status)::text = 'pending'::text) AND (link_state = 'due'::text));

--
-- Name: invite_targets_pending; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_targets_pending ON invite.invite_targets USING btree (task_id, next_attempt_at, seq) WHERE ((status)::text = 'pending'::text);

--
-- Name: invite_targets_pending_plain; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_targets_pending_plain ON invite.invite_targets USING btree (task_id, next_attempt_at, seq) WHERE (((status)::text = 'pending'::text) AND (NOT invite.invite_imports_contact((identifier_key)::text)));

--
-- Name: invite_targets_task_seq; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_targets_task_seq ON invite.invite_targets USING btree (task_id, seq);

--
-- Name: invite_task_accounts_account; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_task_accounts_account ON invite.invite_task_accounts USING btree (account_id);

--
-- Name: invite_tasks_due; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_tasks_due ON invite.invite_tasks USING btree (scheduled_at) WHERE ((status)::text = 'scheduled'::text);

--
-- Name: invite_tasks_finished; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_tasks_finished ON invite.invite_tasks USING btree (completed_at) WHERE ((status)::text = ANY ((ARRAY['completed'::character varying, 'cancelled'::character varying, 'failed'::character varying])::text[]));

--
-- Name: invite_tasks_running; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_tasks_running ON invite.invite_tasks USING btree (priority, id) WHERE ((status)::text = 'running'::text);

--
-- Name: invite_tasks_user_created; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_tasks_user_created ON invite.invite_tasks USING btree (user_id, created_at DESC, id DESC);

--
-- Name: invite_trials_open; Type: INDEX; Schema: invite; Owner: -
--

CREATE UNIQUE INDEX invite_trials_open ON invite.invite_trials USING btree (target_id) WHERE ((state)::text = ANY ((ARRAY['waiting'::character varying, 'taken'::character varying])::text[]));

--
-- Name: invite_trials_task; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_trials_task ON invite.invite_trials USING btree (task_id);

--
-- Name: invite_trials_waiting; Type: INDEX; Schema: invite; Owner: -
--

CREATE INDEX invite_trials_waiting ON invite.invite_trials USING btree (account_id) WHERE ((state)::text = 'waiting'::text);

--
-- Name: invite_execution_logs invite_execution_logs_roll_up; Type: TRIGGER; Schema: invite; Owner: -
--

CREATE TRIGGER invite_execution_logs_roll_up AFTER INSERT ON invite.invite_execution_logs REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION invite.invite_roll_up_logs();

--
-- Name: invite_targets invite_targets_channel_invites; Type: TRIGGER; Schema: invite; Owner: -
--

CREATE TRIGGER invite_targets_channel_invites AFTER UPDATE ON invite.invite_targets REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION invite.invite_count_channel_invites();

--
-- Name: invite_targets invite_targets_count_delete; Type: TRIGGER; Schema: invite; Owner: -
--

CREATE TRIGGER invite_targets_count_delete AFTER DELETE ON invite.invite_targets REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION invite.invite_count_targets();

--
-- Name: invite_targets invite_targets_count_insert; Type: TRIGGER; Schema: invite; Owner: -
--

CREATE TRIGGER invite_targets_count_insert AFTER INSERT ON invite.invite_targets REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION invite.invite_count_targets();

--
-- Name: invite_targets invite_targets_count_update; Type: TRIGGER; Schema: invite; Owner: -
--

CREATE TRIGGER invite_targets_count_update AFTER UPDATE ON invite.invite_targets REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION invite.invite_count_targets();

--
-- Name: invite_execution_logs invite_execution_logs_target_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_execution_logs
    ADD CONSTRAINT invite_execution_logs_target_id_fkey FOREIGN KEY (target_id) REFERENCES invite.invite_targets(id) ON DELETE CASCADE;

--
-- Name: invite_execution_logs invite_execution_logs_task_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_execution_logs
    ADD CONSTRAINT invite_execution_logs_task_id_fkey FOREIGN KEY (task_id) REFERENCES invite.invite_tasks(id) ON DELETE CASCADE;

--
-- Name: invite_imports invite_imports_task_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_imports
    ADD CONSTRAINT invite_imports_task_id_fkey FOREIGN KEY (task_id) REFERENCES invite.invite_tasks(id) ON DELETE CASCADE;

--
-- Name: invite_links invite_links_target_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_links
    ADD CONSTRAINT invite_links_target_id_fkey FOREIGN KEY (target_id) REFERENCES invite.invite_targets(id) ON DELETE CASCADE;

--
-- Name: invite_links invite_links_task_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_links
    ADD CONSTRAINT invite_links_task_id_fkey FOREIGN KEY (task_id) REFERENCES invite.invite_tasks(id) ON DELETE CASCADE;

--
-- Name: invite_reply_counts invite_reply_counts_task_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_reply_counts
    ADD CONSTRAINT invite_reply_counts_task_id_fkey FOREIGN KEY (task_id) REFERENCES invite.invite_tasks(id) ON DELETE CASCADE;

--
-- Name: invite_stats_by_account invite_stats_by_account_task_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_stats_by_account
    ADD CONSTRAINT invite_stats_by_account_task_id_fkey FOREIGN KEY (task_id) REFERENCES invite.invite_tasks(id) ON DELETE CASCADE;

--
-- Name: invite_stats_by_hour invite_stats_by_hour_task_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_stats_by_hour
    ADD CONSTRAINT invite_stats_by_hour_task_id_fkey FOREIGN KEY (task_id) REFERENCES invite.invite_tasks(id) ON DELETE CASCADE;

--
-- Name: invite_targets invite_targets_task_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_targets
    ADD CONSTRAINT invite_targets_task_id_fkey FOREIGN KEY (task_id) REFERENCES invite.invite_tasks(id) ON DELETE CASCADE;

--
-- Name: invite_task_accounts invite_task_accounts_task_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_task_accounts
    ADD CONSTRAINT invite_task_accounts_task_id_fkey FOREIGN KEY (task_id) REFERENCES invite.invite_tasks(id) ON DELETE CASCADE;

--
-- Name: invite_task_counts invite_task_counts_task_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_task_counts
    ADD CONSTRAINT invite_task_counts_task_id_fkey FOREIGN KEY (task_id) REFERENCES invite.invite_tasks(id) ON DELETE CASCADE;

--
-- Name: invite_trials invite_trials_target_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_trials
    ADD CONSTRAINT invite_trials_target_id_fkey FOREIGN KEY (target_id) REFERENCES invite.invite_targets(id) ON DELETE CASCADE;

--
-- Name: invite_trials invite_trials_task_id_fkey; Type: FK CONSTRAINT; Schema: invite; Owner: -
--

ALTER TABLE ONLY invite.invite_trials
    ADD CONSTRAINT invite_trials_task_id_fkey FOREIGN KEY (task_id) REFERENCES invite.invite_tasks(id) ON DELETE CASCADE;
