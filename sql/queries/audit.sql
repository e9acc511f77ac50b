-- name: record
-- args: $1 user_id, $2 action, $3 resource, $4 resource_id, $5 request_id, $6 details
-- One row per mutating API call, written on the caller's connection inside the caller's
-- transaction: the change and its audit row commit (or roll back) together.
INSERT INTO invite_audit_log (user_id, action, resource, resource_id, request_id, details)
VALUES ($1, $2, $3, $4, $5, $6)
