-- Vigil event log, API keys and signed checkpoints (SQLite).
-- Append-only: triggers refuse UPDATE and DELETE on events and checkpoints, and refuse any
-- INSERT whose seq or event_id already exists (which is what INSERT OR REPLACE would need),
-- and any INSERT that is not exactly the next seq (gap-free log).
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL,
    ts              INTEGER NOT NULL,
    category        TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    organization_id TEXT,
    user_id         TEXT,
    ip              TEXT,
    request_id      TEXT,
    canon           BLOB    NOT NULL,
    prev_hash       BLOB    NOT NULL,
    hash            BLOB    NOT NULL
);
CREATE UNIQUE INDEX events_event_id ON events (event_id);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_category ON events (category, seq);
CREATE INDEX events_action ON events (action, seq);
CREATE INDEX events_user ON events (user_id, seq) WHERE user_id IS NOT NULL;
CREATE INDEX events_ip ON events (ip, seq) WHERE ip IS NOT NULL;
CREATE INDEX events_org ON events (organization_id, seq) WHERE organization_id IS NOT NULL;
CREATE INDEX events_request ON events (request_id) WHERE request_id IS NOT NULL;

-- Rows with seq <= floor may be deleted by a retention purge; nothing else may be.
CREATE TABLE retention_floor (id INTEGER PRIMARY KEY CHECK (id = 1), floor INTEGER NOT NULL);
INSERT INTO retention_floor (id, floor) VALUES (1, 0);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'vigil: events are append-only (UPDATE refused)');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
WHEN OLD.seq > (SELECT floor FROM retention_floor WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'vigil: events are append-only (DELETE refused)');
END;
CREATE TRIGGER events_insert_next_only BEFORE INSERT ON events
WHEN NEW.seq <> (SELECT COALESCE(MAX(seq), 0) + 1 FROM events)
  OR EXISTS (SELECT 1 FROM events WHERE event_id = NEW.event_id)
BEGIN
    SELECT RAISE(ABORT, 'vigil: events are append-only (insert must be the next seq with a new event_id)');
END;
CREATE TRIGGER retention_floor_only_rises BEFORE UPDATE ON retention_floor
WHEN NEW.floor < OLD.floor
BEGIN
    SELECT RAISE(ABORT, 'vigil: the retention floor never goes down');
END;
CREATE TRIGGER retention_floor_no_delete BEFORE DELETE ON retention_floor
BEGIN
    SELECT RAISE(ABORT, 'vigil: the retention floor cannot be deleted');
END;

CREATE TABLE checkpoints (
    id         INTEGER PRIMARY KEY,
    seq        INTEGER NOT NULL,
    hash       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    prev_id    INTEGER NOT NULL,
    signature  BLOB    NOT NULL
);
CREATE INDEX checkpoints_seq ON checkpoints (seq);
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'vigil: checkpoints are append-only (UPDATE refused)');
END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'vigil: checkpoints are append-only (DELETE refused)');
END;
CREATE TRIGGER checkpoints_no_replace BEFORE INSERT ON checkpoints
WHEN EXISTS (SELECT 1 FROM checkpoints WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'vigil: checkpoints are append-only (replace refused)');
END;

CREATE TABLE api_keys (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    key_hash   BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
-- A key may only ever be revoked, once; nothing else about it changes and it is never deleted.
CREATE TRIGGER api_keys_revoke_only BEFORE UPDATE ON api_keys
WHEN OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL OR NEW.id <> OLD.id OR NEW.name <> OLD.name
  OR NEW.role <> OLD.role OR NEW.key_hash <> OLD.key_hash OR NEW.created_at <> OLD.created_at
BEGIN
    SELECT RAISE(ABORT, 'vigil: api keys can only be revoked');
END;
CREATE TRIGGER api_keys_no_delete BEFORE DELETE ON api_keys
BEGIN
    SELECT RAISE(ABORT, 'vigil: api keys are never deleted, only revoked');
END;
