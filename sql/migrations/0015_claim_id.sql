-- The id of the claim that last put a target in flight. A claim whose answer the connection
-- lost may or may not have committed; the claimer knows the id it sent, so once the database
-- answers again it can find the targets that claim put in flight -- never handed to an
-- account, so provably untouched -- and put them back (claims.release_lost_claim) instead of
-- leaving them in flight until their lease runs out (a message then waits in doubt for its
-- account's next holder to ask the platform). No index of its own: that statement reaches
-- them through invite_targets_in_flight by the claim's exact lease expiry.
ALTER TABLE invite_targets ADD COLUMN claim_id uuid;
