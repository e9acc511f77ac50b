-- One-use invite links (a task's settings.privacy_fallback = 'invite_link'; invite/engine/links.py).
-- A person whose privacy refuses a direct add is offered, by one personal message, a link only
-- they can use. `link_state` follows them: 'due' (the message is to be sent: the target is back
-- in the queue), 'sent' (the message went out with a link), 'joined' (they came in through it),
-- 'expired' (it ran out unused and was revoked). NULL: no link was ever offered. Not indexed: the
-- claim reads it off the rows it already locked, and the watcher goes through invite_links.
ALTER TABLE invite_targets
    ADD COLUMN link_state text CHECK (link_state IN ('due', 'sent', 'joined', 'expired'));

-- The link made for a target: saved BEFORE the message carrying it is sent (a worker that dies
-- between the two leaves a link the next attempt sends again, the same text under the same
-- random_id, instead of a second link), so every link we made can be read back and revoked.
CREATE TABLE invite_links (
    target_id  uuid PRIMARY KEY REFERENCES invite_targets (id) ON DELETE CASCADE,
    task_id    uuid NOT NULL REFERENCES invite_tasks (id) ON DELETE CASCADE,
    account_id varchar(255) NOT NULL,  -- the account that made it: only it can read its importers
    url        text NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    joined_at  timestamptz,  -- the person came in through it
    revoked_at timestamptz   -- revoked by us (expired unused, or never sent)
);

-- The forecast's question (reports.progress): how many of a task's pending people wait for
-- their link's message -- few, however many the task has pending.
CREATE INDEX invite_targets_link_due ON invite_targets (task_id) WHERE status = 'pending' AND link_state = 'due';

-- The watcher's question, per account: its links still open (neither used nor revoked).
CREATE INDEX invite_links_open ON invite_links (account_id, expires_at)
    WHERE joined_at IS NULL AND revoked_at IS NULL;

-- A reply to the message that carried a link is a reply like any other: invite_reply_targets
-- (0017) also finds, in the account's invite tasks, the targets whose link's message it sent
-- (link_state sent, joined or expired) -- never a person it only invited. `statuses` still
-- holds for message tasks' targets.
CREATE OR REPLACE FUNCTION invite_reply_targets(account text, keys text[], at timestamptz, statuses text[])
RETURNS TABLE (id uuid)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT t.id
    FROM invite_task_accounts ta
    JOIN invite_tasks k ON k.id = ta.task_id
    JOIN invite_targets t ON t.task_id = k.id AND t.identifier_key = ANY (keys)
    WHERE ta.account_id = account AND t.account_id = account
      AND CASE WHEN k.task_type = 'send_messages' THEN t.status = ANY (statuses)
               ELSE t.link_state IN ('sent', 'joined', 'expired') END
      AND t.processed_at <= at + interval '1 minute'
$$;
