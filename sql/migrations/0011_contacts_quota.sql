-- Phone numbers an account imports as contacts, a day (PLATFORM-AS-RUN.md: the platform's
-- allocations carry contacts_daily_limit 15 besides the invite and message limits). Reaching a
-- +phone target means importing the number first, so each claim of such a target reserves one
-- import here, in the same statement as the daily quota, on every replica.

-- the window opens with the first import after the last one closed, as the daily quota's does
ALTER TABLE invite_accounts
    ADD COLUMN contacts_window_start timestamptz,
    ADD COLUMN contacts_count integer NOT NULL DEFAULT 0 CHECK (contacts_count >= 0),
    -- the accounts provider's contacts limit for this account (NULL: none given)
    ADD COLUMN contacts_limit integer CHECK (contacts_limit IS NULL OR contacts_limit >= 0);
