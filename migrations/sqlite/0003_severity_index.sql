-- Serves GET /v1/events?severity=... (rare values such as high/critical) without a scan.
CREATE INDEX events_severity ON events (severity, seq);
