-- Test invites (the Mailing page's POST /tasks/{id}/test-invite): one real action for one target
-- with one account, asked of whichever engine replica drives (or may lease) that account. The
-- request is a row committed first; the account's coroutine serves it before its next campaign
-- action, through the same claim -> act -> record path, and the claim writes what it decided
-- into the row. Nothing else about the action lives here: its outcome is the target's row and
-- its execution-log entry (the attempt the trial claimed), as for any other action.
CREATE TABLE invite_trials (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     text NOT NULL,
    task_id     uuid NOT NULL REFERENCES invite_tasks (id) ON DELETE CASCADE,
    target_id   uuid NOT NULL REFERENCES invite_targets (id) ON DELETE CASCADE,
    account_id  varchar(255) NOT NULL,
    driver      varchar(20) NOT NULL,  -- the task's: only an engine of that driver takes it
    -- waiting: asked, not taken yet; taken: the target is in flight under `attempt`, the quota
    -- reserved; refused: a rule said no (`outcome` names it, `detail` says it); expired: nobody
    -- took it before `expires_at`; done: the action's outcome is recorded (written lazily, when
    -- a later request for the target finds the taken one settled)
    state       varchar(20) NOT NULL DEFAULT 'waiting'
                CHECK (state IN ('waiting', 'taken', 'refused', 'expired', 'done')),
    outcome     varchar(32),
    detail      text,
    retry_at    timestamptz,  -- refused by a quota, a pause or a cooldown: when it would pass
    attempt     integer,
    taken_by    text,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    settled_at  timestamptz
);

-- One open trial per target: a second request while one is waiting or in flight joins it
-- instead of acting twice.
CREATE UNIQUE INDEX invite_trials_open ON invite_trials (target_id) WHERE state IN ('waiting', 'taken');
-- The lease keeper of every replica looks for waiting trials on each heartbeat: a handful at most.
CREATE INDEX invite_trials_waiting ON invite_trials (account_id) WHERE state = 'waiting';
CREATE INDEX invite_trials_task ON invite_trials (task_id);
