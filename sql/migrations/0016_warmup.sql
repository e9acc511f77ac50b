-- Account warm-up (invite/engine/warmup.py): a new or recovered account does not start at the
-- full quota. warmup_since is the start of the account's clean history: set when the service
-- first sees the account (activation.upsert_accounts) and set again by the group commit when
-- Telegram spam-flags it (PeerFlood), and when it is found dead or frozen, so that an account
-- that comes back warms up anew. NULL: no history known, the account is not held back.
ALTER TABLE invite_accounts ADD COLUMN warmup_since timestamptz;

-- the accounts seen before warm-up existed: their history with us began when we first saw them
UPDATE invite_accounts SET warmup_since = created_at;
