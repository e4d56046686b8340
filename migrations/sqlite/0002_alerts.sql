-- Alerts raised by detection rules (mutable: status, count, last_seen change over a lifecycle;
-- every lifecycle step that matters is also an event in the chain).
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    rule        TEXT    NOT NULL,
    rule_version TEXT   NOT NULL,
    rule_sha256 TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    dedup_key   TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'open',
    count       INTEGER NOT NULL DEFAULT 1,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    event_seqs  TEXT    NOT NULL,
    fields      TEXT    NOT NULL,
    actions     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX alerts_fingerprint ON alerts (rule, severity, dedup_key, status);
CREATE INDEX alerts_rule ON alerts (rule, id);
CREATE INDEX alerts_status ON alerts (status, id);
