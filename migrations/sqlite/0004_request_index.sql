-- Correlation-id lookups ordered newest first: (request_id, seq) lets the planner walk the index
-- backwards instead of scanning the log by seq (seen on PostgreSQL at 1M events).
DROP INDEX events_request;
CREATE INDEX events_request ON events (request_id, seq) WHERE request_id IS NOT NULL;
