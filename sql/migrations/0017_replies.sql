-- Replies to message tasks (invite/engine/replies.py). A person who answers an account's
-- message is marked on their target: when they first replied, and when they first asked not
-- to be written to again (a stop word; they go onto the tenant's suppression list too). What
-- they wrote is never stored. Both columns are set once by replies.mark_*, never indexed: the
-- hot table's writes (claims, the group commit) do not pay for them.
ALTER TABLE invite_targets
    ADD COLUMN replied_at timestamptz,
    ADD COLUMN opted_out_at timestamptz;

-- Per task and account, how many people replied and how many of them opted out, counted as
-- the targets are marked (one upsert per task a poll touched): /stats reads rates here, and
-- the opt-out check (replies.opt_out_window) a task's few rows, however many targets it has.
CREATE TABLE invite_reply_counts (
    task_id    uuid NOT NULL REFERENCES invite_tasks (id) ON DELETE CASCADE,
    account_id varchar(255) NOT NULL,
    replies    bigint NOT NULL DEFAULT 0 CHECK (replies >= 0),
    opt_outs   bigint NOT NULL DEFAULT 0 CHECK (opt_outs >= 0),
    PRIMARY KEY (task_id, account_id)
);

-- The targets a reply to `account` answers, for replies.mark_replied and mark_opted_out alike
-- (one rule): a target of one of the account's message tasks under one of the reply's `keys`
-- (the unique (task_id, identifier_key) index: one probe per task and key), sent by this
-- account (its status among `statuses`: delivered, or in doubt -- a reply proves it arrived)
-- no later than the reply `at`, give or take a minute of Telegram's clock against ours. A
-- single SELECT in SQL, STABLE: inlined into the caller, so those probes are its plan's.
CREATE FUNCTION invite_reply_targets(account text, keys text[], at timestamptz, statuses text[])
RETURNS TABLE (id uuid)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT t.id
    FROM invite_task_accounts ta
    JOIN invite_tasks k ON k.id = ta.task_id AND k.task_type = 'send_messages'
    JOIN invite_targets t ON t.task_id = k.id AND t.identifier_key = ANY (keys)
    WHERE ta.account_id = account AND t.account_id = account AND t.status = ANY (statuses)
      AND t.processed_at <= at + interval '1 minute'
$$;
