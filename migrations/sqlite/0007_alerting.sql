-- Alert lifecycle, notification outbox, silences, escalation timers.
--
-- alerts gains its lifecycle columns. alert_changes is the history of every alert: one row
-- per creation, repeat, acknowledgement, resolution, reopening, escalation, written in the
-- same transaction as the change itself and then as an event of the chain (event id
-- 'vigil:alert:<id>'; chain_seq is its seq once written, NULL until then, and the server
-- writes any NULL ones at start). notifications is the outbox: a row per message owed to a
-- receiver, written in the same transaction as the alert change that owes it.
ALTER TABLE alerts ADD COLUMN disposition TEXT;
ALTER TABLE alerts ADD COLUMN acked_by TEXT;
ALTER TABLE alerts ADD COLUMN acked_at INTEGER;
ALTER TABLE alerts ADD COLUMN resolved_by TEXT;
ALTER TABLE alerts ADD COLUMN resolved_at INTEGER;
ALTER TABLE alerts ADD COLUMN silenced_by TEXT;
ALTER TABLE alerts ADD COLUMN notified_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN last_notified_at INTEGER;
ALTER TABLE alerts ADD COLUMN receivers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE alerts ADD COLUMN escalation_policy TEXT;
CREATE INDEX alerts_dedup_key ON alerts (dedup_key, id);

CREATE TABLE alert_changes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id  INTEGER NOT NULL,
    action    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    at        INTEGER NOT NULL,
    details   TEXT NOT NULL,
    chain_seq INTEGER
);
CREATE INDEX alert_changes_alert ON alert_changes (alert_id, id);
CREATE INDEX alert_changes_unchained ON alert_changes (id) WHERE chain_seq IS NULL;

CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id        INTEGER,
    receiver        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dead', 'folded', 'digest', 'digested')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_error      TEXT
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_alert ON notifications (alert_id, id);
CREATE INDEX notifications_receiver ON notifications (receiver, status, id);

CREATE TABLE silences (
    id         TEXT PRIMARY KEY,
    matchers   TEXT NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    comment    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expired_at INTEGER,
    matched    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE escalations (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL,
    policy   TEXT NOT NULL,
    level    INTEGER NOT NULL,
    round    INTEGER NOT NULL,
    due_at   INTEGER NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('pending', 'done', 'cancelled'))
);
CREATE INDEX escalations_due ON escalations (status, due_at);
CREATE INDEX escalations_alert ON escalations (alert_id, status);
