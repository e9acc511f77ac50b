-- The rules every claim applies before an account acts on a target, written once: the
-- campaign's claim (claims.claim: the head of a task's queue) and a test invite's
-- (trials.claim: one named target) both call these, so the two cannot come to disagree on
-- who may not be contacted, what a 24 h window still counts or when a +phone target needs
-- contact room. Each is LANGUAGE sql with a body of one SELECT and no SET clause, not STRICT,
-- so the planner inlines it into the calling statement: its indexes are probed as if the
-- expression were written there (tests/integration/engine/test_claim_plan.py). Times are the
-- caller's parameters (the service's clock), never now().

-- What a 24 h window opened at `start` still counts at `at` of the `used` it counted: all of
-- it while open, nothing once it closed or never opened (the daily quota's window and the
-- contacts window alike). STABLE: timestamptz minus an interval is, by PostgreSQL's account.
CREATE FUNCTION invite_window_used(start timestamptz, used integer, at timestamptz) RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN start > at - interval '24 hours' THEN used ELSE 0 END
$$;

-- Where that window starts once one more is counted at `at`: where it started while open,
-- at `at` when it closed or never opened (the count then restarts at 1:
-- invite_window_used(...) + 1).
CREATE FUNCTION invite_window_start(start timestamptz, at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN start > at - interval '24 hours' THEN start ELSE at END
$$;

-- The cap in force: ours, lowered by the one the accounts provider gave the account (kept in
-- its row: daily_limit, contacts_limit), never raised by it; NULL `theirs`: none given.
CREATE FUNCTION invite_cap(ours integer, theirs integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT LEAST(ours, COALESCE(theirs, ours))
$$;

-- A target reached by importing its number as a contact first (a +phone target: its key is
-- 'p:' || E.164, audience/normalise.py): it takes room in the account's contacts window.
CREATE FUNCTION invite_imports_contact(identifier_key text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT identifier_key LIKE 'p:%'
$$;

-- Why the person of `person_key` (and `person`: the target's user_data, whose other keys
-- name them too) may not be contacted for task `task` of tenant `tenant` at `at`, or NULL:
--  * 'suppressed': on the tenant's suppression list under any of their keys
--    (invite_person_keys), probing the list's primary key (user_id, identifier_key);
--  * 'recently_contacted': with a recontact cap (`recontact_days` > 0; 0: none), another task
--    of the tenant reached them (succeeded, or uncertain: perhaps reached) within it, probing
--    each other task's (task_id, identifier_key) index.
-- Decided at the moment of claiming, whatever path put the target back in a queue. A set of
-- exactly one row, called as CROSS JOIN LATERAL invite_barred(...) AS b(barred): PostgreSQL
-- never inlines a scalar SQL function whose body holds a subquery (it would run as an opaque
-- call, its probes out of the statement's plan), while a set-returning one is inlined as a
-- subquery in FROM and pulled up into the caller's plan.
CREATE FUNCTION invite_barred(
    tenant text, task uuid, person_key text, person jsonb, at timestamptz, recontact_days integer
) RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1 AS $$
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
