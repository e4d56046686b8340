-- Automated response: decisions (block, throttle, require_mfa, lock an ip, user, api_key,
-- session or organization until a time) issued by detection rules or by people.
--
-- decisions holds one row per decision; status moves active -> expired | lifted once.
-- decision_changes is their history (issued, expired, lifted), written in the same
-- transaction as the change and then as an event of the chain (event id
-- 'vigil:decision:<change id>'; chain_seq NULL until written, the server writes any NULL
-- ones at start). Its id is the cursor of GET /v1/decisions/stream.
CREATE TABLE IF NOT EXISTS decisions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope       TEXT NOT NULL CHECK (scope IN ('ip', 'user', 'api_key', 'session', 'organization')),
    value       TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('block', 'throttle', 'require_mfa', 'lock')),
    reason      TEXT NOT NULL,
    origin      TEXT NOT NULL CHECK (origin IN ('rule', 'manual')),
    actor       TEXT NOT NULL,
    rule        TEXT,
    rule_sha256 TEXT,
    alert_id    BIGINT,
    event_seqs  TEXT NOT NULL DEFAULT '[]',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'expired', 'lifted')),
    ended_at    BIGINT,
    ended_by    TEXT,
    end_reason  TEXT
);
CREATE INDEX IF NOT EXISTS decisions_status ON decisions (status, expires_at);
CREATE INDEX IF NOT EXISTS decisions_alert ON decisions (alert_id);

CREATE TABLE IF NOT EXISTS decision_changes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id BIGINT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('issued', 'expired', 'lifted')),
    actor       TEXT NOT NULL,
    reason      TEXT,
    at          BIGINT NOT NULL,
    chain_seq   BIGINT
);
CREATE INDEX IF NOT EXISTS decision_changes_unchained ON decision_changes (id) WHERE chain_seq IS NULL;
GRANT SELECT, INSERT, UPDATE ON decisions, decision_changes TO vigil_app;
