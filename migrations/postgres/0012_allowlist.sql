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
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    removed_at  BIGINT,
    removed_by  TEXT
);
CREATE INDEX IF NOT EXISTS allowlist_live ON allowlist (created_at) WHERE removed_at IS NULL;
GRANT SELECT, INSERT, UPDATE ON allowlist TO vigil_app;

-- Simulate mode ([decisions] mode = "simulate"): a rule's decision is stored with status
-- 'simulated' and its change 'simulated', and is never enforced.
ALTER TABLE decisions DROP CONSTRAINT IF EXISTS decisions_status_check;
ALTER TABLE decisions ADD CONSTRAINT decisions_status_check
    CHECK (status IN ('active', 'expired', 'lifted', 'simulated'));
ALTER TABLE decision_changes DROP CONSTRAINT IF EXISTS decision_changes_action_check;
ALTER TABLE decision_changes ADD CONSTRAINT decision_changes_action_check
    CHECK (action IN ('issued', 'expired', 'lifted', 'simulated'));
