-- Vigil event log, API keys and signed checkpoints (PostgreSQL).
-- Append-only: ENABLE ALWAYS triggers refuse UPDATE, DELETE (above the retention floor) and
-- TRUNCATE, and the application role `vigil_app` is granted only SELECT and INSERT on the
-- log tables (plus revoking a key).
CREATE TABLE events (
    seq             BIGINT PRIMARY KEY,
    event_id        TEXT   NOT NULL UNIQUE,
    ts              BIGINT NOT NULL,
    category        TEXT   NOT NULL,
    action          TEXT   NOT NULL,
    severity        TEXT   NOT NULL,
    outcome         TEXT   NOT NULL,
    organization_id TEXT,
    user_id         TEXT,
    ip              TEXT,
    request_id      TEXT,
    canon           BYTEA  NOT NULL,
    prev_hash       BYTEA  NOT NULL,
    hash            BYTEA  NOT NULL
);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_category ON events (category, seq);
CREATE INDEX events_action ON events (action, seq);
CREATE INDEX events_user ON events (user_id, seq) WHERE user_id IS NOT NULL;
CREATE INDEX events_ip ON events (ip, seq) WHERE ip IS NOT NULL;
CREATE INDEX events_org ON events (organization_id, seq) WHERE organization_id IS NOT NULL;
CREATE INDEX events_request ON events (request_id) WHERE request_id IS NOT NULL;

CREATE TABLE retention_floor (id INT PRIMARY KEY CHECK (id = 1), floor BIGINT NOT NULL);
INSERT INTO retention_floor (id, floor) VALUES (1, 0);

CREATE TABLE checkpoints (
    id         BIGINT PRIMARY KEY,
    seq        BIGINT NOT NULL,
    hash       BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    prev_id    BIGINT NOT NULL,
    signature  BYTEA  NOT NULL
);
CREATE INDEX checkpoints_seq ON checkpoints (seq);

CREATE TABLE api_keys (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    key_hash   BYTEA  NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE FUNCTION vigil_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'vigil: % on % refused: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE FUNCTION vigil_events_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq > (SELECT floor FROM retention_floor WHERE id = 1) THEN
        RAISE EXCEPTION 'vigil: DELETE on events refused: the table is append-only'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END $$;

CREATE FUNCTION vigil_floor_only_rises() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.floor < OLD.floor THEN
        RAISE EXCEPTION 'vigil: the retention floor never goes down' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION vigil_keys_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL OR NEW.id <> OLD.id OR NEW.name <> OLD.name
       OR NEW.role <> OLD.role OR NEW.key_hash <> OLD.key_hash OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'vigil: api keys can only be revoked' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events FOR EACH ROW EXECUTE FUNCTION vigil_refuse();
CREATE TRIGGER events_no_delete BEFORE DELETE ON events FOR EACH ROW EXECUTE FUNCTION vigil_events_guard_delete();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events FOR EACH STATEMENT EXECUTE FUNCTION vigil_refuse();
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE OR DELETE ON checkpoints FOR EACH ROW EXECUTE FUNCTION vigil_refuse();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints FOR EACH STATEMENT EXECUTE FUNCTION vigil_refuse();
CREATE TRIGGER retention_floor_guard BEFORE UPDATE ON retention_floor FOR EACH ROW EXECUTE FUNCTION vigil_floor_only_rises();
CREATE TRIGGER retention_floor_no_delete BEFORE DELETE ON retention_floor FOR EACH ROW EXECUTE FUNCTION vigil_refuse();
CREATE TRIGGER retention_floor_no_truncate BEFORE TRUNCATE ON retention_floor FOR EACH STATEMENT EXECUTE FUNCTION vigil_refuse();
CREATE TRIGGER api_keys_revoke_only BEFORE UPDATE ON api_keys FOR EACH ROW EXECUTE FUNCTION vigil_keys_revoke_only();
CREATE TRIGGER api_keys_no_delete BEFORE DELETE ON api_keys FOR EACH ROW EXECUTE FUNCTION vigil_refuse();
CREATE TRIGGER api_keys_no_truncate BEFORE TRUNCATE ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION vigil_refuse();
-- ALWAYS: the triggers fire even with session_replication_role = replica.
ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update;
ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_delete;
ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_truncate;
ALTER TABLE checkpoints ENABLE ALWAYS TRIGGER checkpoints_no_update;
ALTER TABLE checkpoints ENABLE ALWAYS TRIGGER checkpoints_no_truncate;
ALTER TABLE retention_floor ENABLE ALWAYS TRIGGER retention_floor_guard;
ALTER TABLE retention_floor ENABLE ALWAYS TRIGGER retention_floor_no_delete;
ALTER TABLE retention_floor ENABLE ALWAYS TRIGGER retention_floor_no_truncate;
ALTER TABLE api_keys ENABLE ALWAYS TRIGGER api_keys_revoke_only;
ALTER TABLE api_keys ENABLE ALWAYS TRIGGER api_keys_no_delete;
ALTER TABLE api_keys ENABLE ALWAYS TRIGGER api_keys_no_truncate;

-- Least privilege: the server runs as (SET ROLE) vigil_app, which may read and append.
DO $$
BEGIN
    CREATE ROLE vigil_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
REVOKE ALL ON events, checkpoints, retention_floor, api_keys FROM vigil_app;
GRANT SELECT, INSERT ON events, checkpoints TO vigil_app;
GRANT SELECT ON retention_floor TO vigil_app;
GRANT SELECT, INSERT ON api_keys TO vigil_app;
GRANT UPDATE (revoked_at) ON api_keys TO vigil_app;
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO vigil_app', current_schema());
END $$;
