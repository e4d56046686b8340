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
ALTER TABLE alerts ADD COLUMN acked_at BIGINT;
ALTER TABLE alerts ADD COLUMN resolved_by TEXT;
ALTER TABLE alerts ADD COLUMN resolved_at BIGINT;
ALTER TABLE alerts ADD COLUMN silenced_by TEXT;
ALTER TABLE alerts ADD COLUMN notified_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN last_notified_at BIGINT;
ALTER TABLE alerts ADD COLUMN receivers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE alerts ADD COLUMN escalation_policy TEXT;
CREATE INDEX alerts_dedup_key ON alerts (dedup_key, id);

CREATE TABLE alert_changes (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id  BIGINT NOT NULL,
    action    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    at        BIGINT NOT NULL,
    details   TEXT NOT NULL,
    chain_seq BIGINT
);
CREATE INDEX alert_changes_alert ON alert_changes (alert_id, id);
CREATE INDEX alert_changes_unchained ON alert_changes (id) WHERE chain_seq IS NULL;

CREATE TABLE notifications (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        BIGINT,
    receiver        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dead', 'folded', 'digest', 'digested')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_alert ON notifications (alert_id, id);
CREATE INDEX notifications_receiver ON notifications (receiver, status, id);

CREATE TABLE silences (
    id         TEXT PRIMARY KEY,
    matchers   TEXT NOT NULL,
    starts_at  BIGINT NOT NULL,
    ends_at    BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    comment    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expired_at BIGINT,
    matched    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE escalations (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id BIGINT NOT NULL,
    policy   TEXT NOT NULL,
    level    BIGINT NOT NULL,
    round    BIGINT NOT NULL,
    due_at   BIGINT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('pending', 'done', 'cancelled'))
);
CREATE INDEX escalations_due ON escalations (status, due_at);
CREATE INDEX escalations_alert ON escalations (alert_id, status);
GRANT SELECT, INSERT, UPDATE ON alert_changes, notifications, silences, escalations TO vigil_app;
