-- Forwarders ([[forwarders]], issue 26): the durable cursor of each, the seq of the last
-- event it delivered or passed over (filtered out). After a restart a forwarder resumes
-- after it, so every committed event is pushed at least once, in seq order.
CREATE TABLE IF NOT EXISTS forwarder_cursors (
    name        TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON forwarder_cursors TO vigil_app;
