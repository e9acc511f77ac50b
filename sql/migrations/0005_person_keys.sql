-- Every identifier key a target is known by: its own identifier_key and the other
-- identifiers its import kept in user_data (a person imported by user id is the same person
-- as a suppressed username). One definition, used wherever a suppression is matched -- the
-- claim, the activation pass, a suppression being added and retry-failed -- so the four can
-- never disagree on who is the same person. The key forms are those of the import
-- (audience/normalise.py): 'u:' || lower(username), 'id:' || user id, 'p:' || E.164 phone.
-- IMMUTABLE and a single SELECT, so the planner inlines it into each statement.
CREATE FUNCTION invite_person_keys(identifier_key text, user_data jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_remove(ARRAY[
        identifier_key,
        'u:' || lower(user_data ->> 'username'),
        'id:' || (user_data ->> 'user_id'),
        'p:' || (user_data ->> 'phone')
    ], NULL)
$$;
