-- Deployed rule modules, so a rule deployed over the API (or from the rules directory)
-- comes back at start with the same SHA-256 and status, quarantine included. One row per
-- rule name: the version that is active or quarantined. The history of deploys, deletes and
-- quarantines is in the chain (configuration events carrying each module's SHA-256).
CREATE TABLE rules (
    name        TEXT    PRIMARY KEY,
    sha256      TEXT    NOT NULL,
    module      BLOB    NOT NULL,
    config      TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    deployed_at INTEGER NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('active', 'quarantined')),
    reason      TEXT,
    status_at   INTEGER NOT NULL
);
