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
