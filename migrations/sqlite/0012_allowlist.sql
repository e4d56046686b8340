-- Guardrails on automated response.
--
-- allowlist holds the entries added through the API (POST /v1/allowlist): values no
-- decision may apply to. Config entries ([[decisions.allow]]) and the built-in loopback
-- entries live in the config and the code, not here. An entry is removed by DELETE
-- (removed_at set; the row stays as the record) or stops applying at expires_at. Adding and
-- removing one are events of the chain (event ids 'vigil:allowlist:<id>:added|removed').
CREATE TABLE IF NOT EXISTS allowlist (
    id          TEXT PRIMARY KEY,
    scope       TEXT NOT NULL CHECK (scope IN ('ip', 'user', 'api_key', 'session', 'organization')),
    value       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    expires_at  INTEGER,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    removed_at  INTEGER,
    removed_by  TEXT
);
CREATE INDEX IF NOT EXISTS allowlist_live ON allowlist (created_at) WHERE removed_at IS NULL;

-- Simulate mode ([decisions] mode = "simulate"): a rule's decision is stored with status
-- 'simulated' and its change 'simulated', and is never enforced. SQLite cannot change a
-- CHECK constraint in place: both tables are rebuilt with the new value allowed.
CREATE TABLE decisions_0012 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    scope       TEXT NOT NULL CHECK (scope IN ('ip', 'user', 'api_key', 'session', 'organization')),
    value       TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('block', 'throttle', 'require_mfa', 'lock')),
    reason      TEXT NOT NULL,
    origin      TEXT NOT NULL CHECK (origin IN ('rule', 'manual')),
    actor       TEXT NOT NULL,
    rule        TEXT,
    rule_sha256 TEXT,
    alert_id    INTEGER,
    event_seqs  TEXT NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'expired', 'lifted', 'simulated')),
    ended_at    INTEGER,
    ended_by    TEXT,
    end_reason  TEXT
);
INSERT INTO decisions_0012 SELECT id, scope, value, kind, reason, origin, actor, rule, rule_sha256, alert_id,
    event_seqs, created_at, expires_at, status, ended_at, ended_by, end_reason FROM decisions;
DROP TABLE decisions;
ALTER TABLE decisions_0012 RENAME TO decisions;
CREATE INDEX IF NOT EXISTS decisions_status ON decisions (status, expires_at);
CREATE INDEX IF NOT EXISTS decisions_alert ON decisions (alert_id);

CREATE TABLE decision_changes_0012 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id INTEGER NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('issued', 'expired', 'lifted', 'simulated')),
    actor       TEXT NOT NULL,
    reason      TEXT,
    at          INTEGER NOT NULL,
    chain_seq   INTEGER
);
INSERT INTO decision_changes_0012 SELECT id, decision_id, action, actor, reason, at, chain_seq FROM decision_changes;
DROP TABLE decision_changes;
ALTER TABLE decision_changes_0012 RENAME TO decision_changes;
CREATE INDEX IF NOT EXISTS decision_changes_unchained ON decision_changes (id) WHERE chain_seq IS NULL;
