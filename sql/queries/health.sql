-- name: ping
-- args:
-- Readiness: the cheapest statement that proves a pooled connection reaches the server.
SELECT 1
