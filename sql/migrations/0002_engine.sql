-- The engine's changes to the schema.
--
-- invite_count_targets() (0001) upserts one counter row per (task, status) a statement
-- touched, in whatever order its aggregate produced them. Two statements on the same task --
-- a claim (pending → in_flight) and a group commit (in_flight → succeeded, or back to
-- pending), or two claims of one replica -- could then lock the same two counter rows in
-- opposite orders and deadlock (PostgreSQL breaks the tie after deadlock_timeout, a second
-- lost each time). Same function, but every upsert takes the rows in (task_id, status) order.
CREATE OR REPLACE FUNCTION invite_count_targets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO invite_task_counts AS c (task_id, status, n)
        SELECT task_id, status, count(*) FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO invite_task_counts AS c (task_id, status, n)
        SELECT task_id, status, sum(d) FROM (
            SELECT task_id, status, 1 AS d FROM new_rows
            UNION ALL
            SELECT task_id, status, -1 FROM old_rows
        ) delta GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2
        ON CONFLICT (task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
        INSERT INTO invite_task_counts AS c (task_id, status, n)
        SELECT o.task_id, o.status, -count(*) FROM old_rows o
        WHERE EXISTS (SELECT 1 FROM invite_tasks t WHERE t.id = o.task_id)
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;
