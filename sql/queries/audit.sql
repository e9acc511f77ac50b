-- name: record
-- One row per mutating API call, written on the caller's connection inside the caller's
-- transaction: the change and its audit row commit (or roll back) together.
INSERT INTO invite_audit_log (user_id, action, resource, resource_id, request_id, details)
VALUES ($1, $2, $3, $4, $5, $6)
