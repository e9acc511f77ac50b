-- The platform's limits and states that our own quota must hold (PLATFORM-AS-RUN.md).

-- A channel as the platform keys its per-channel counters: a lowercase slug without a t.me
-- link or the '@' (https://t.me/Interop_Grp, @Interop_Grp -> interop_grp). The same rule as
-- invite.integrations.integration.channel_key, which sends it as target_channel_id.
CREATE FUNCTION invite_channel_key(channel text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(regexp_replace(
        CASE WHEN s ~ '^(https?://)?t\.me/' THEN regexp_replace(s, '^.*/', '') ELSE s END, '^@', ''))
    FROM (SELECT btrim(channel, E' \t\r\n') AS s) trimmed
$$;

-- Invites each account made into each channel, ever: the platform stops an account at 200
-- into one channel for good, and its preferred allocation (the one we use) does not check
-- it, so our quota must. Kept by a statement-level trigger, like invite_task_counts: one
-- upsert per (account, channel) a group commit touched, never a count over the targets.
CREATE TABLE invite_account_channels (
    account_id varchar(255) NOT NULL,
    channel    text NOT NULL,
    invites    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, channel)
);

CREATE FUNCTION invite_count_channel_invites() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER invite_targets_channel_invites AFTER UPDATE ON invite_targets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION invite_count_channel_invites();

-- what was invited before this migration counts too
INSERT INTO invite_account_channels (account_id, channel, invites)
SELECT g.account_id, invite_channel_key(t.target_group_id), count(*)
FROM invite_targets g JOIN invite_tasks t ON t.id = g.task_id
WHERE g.status = 'succeeded' AND g.outcome = 'success' AND g.account_id IS NOT NULL
  AND t.task_type = 'invite_to_group' AND t.target_group_id IS NOT NULL
GROUP BY 1, 2;

-- Since when a running task has been waiting for its accounts (the accounts provider did not
-- answer): after a bounded wait it is paused with the reason instead of "running" forever.
ALTER TABLE invite_tasks ADD COLUMN accounts_wait_since timestamptz;
