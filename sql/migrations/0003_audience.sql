-- Audience imports: one row per import, so the rows it rejected can be paged through after
-- the request that made it is gone. The rejected rows are capped (the first N in file
-- order); the counts in `report` are always complete.
CREATE TABLE invite_imports (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     text NOT NULL,
    task_id     uuid NOT NULL REFERENCES invite_tasks (id) ON DELETE CASCADE,
    source      varchar(20) NOT NULL CHECK (source IN ('file', 'parsing')),
    source_name text,
    report      jsonb NOT NULL,
    rejected    jsonb NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invite_imports_task ON invite_imports (task_id, created_at DESC);

-- The suppression list is shown newest first, a page at a time (keyset on this index).
CREATE INDEX invite_suppressions_user_created
    ON invite_suppressions (user_id, created_at DESC, identifier_key DESC);
