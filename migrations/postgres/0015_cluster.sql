-- Cluster mode (issue 24, docs/cluster.md): membership, partition leases, and one schema per
-- partition. Nothing here changes the single-node log: partition 0 is the log in this schema
-- (its tables, hashes and checkpoints exactly as before); partition p >= 1 is a schema of its
-- own, `<this schema>_p<p>`, holding its own events, checkpoints and retention floor, made by
-- vigil_create_partition() when a cluster is created.

-- The cluster's fixed shape: written once by the first node, checked by every other.
CREATE TABLE cluster_meta (
    id         INT PRIMARY KEY CHECK (id = 1),
    partitions INT NOT NULL CHECK (partitions BETWEEN 1 AND 256),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Nodes and their heartbeat (PostgreSQL's clock).
CREATE TABLE cluster_nodes (
    node_id    TEXT PRIMARY KEY,
    address    TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One writer per partition: the lease and its fencing token (epoch). The epoch only grows;
-- every append transaction of a partition checks (and share-locks) its lease row, so a
-- writer whose lease was taken over can never commit again.
CREATE TABLE cluster_leases (
    partition   INT PRIMARY KEY,
    owner       TEXT,
    epoch       BIGINT NOT NULL DEFAULT 0,
    expires_at  TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    acquired_at TIMESTAMPTZ
);

CREATE FUNCTION vigil_lease_epoch_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.partition <> OLD.partition OR NEW.epoch < OLD.epoch
       OR (NEW.epoch = OLD.epoch AND NEW.owner IS DISTINCT FROM OLD.owner) THEN
        RAISE EXCEPTION 'vigil: a lease changes owner only with a higher epoch'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER cluster_leases_epoch BEFORE UPDATE ON cluster_leases FOR EACH ROW EXECUTE FUNCTION vigil_lease_epoch_grows();
CREATE TRIGGER cluster_leases_no_delete BEFORE DELETE ON cluster_leases FOR EACH ROW EXECUTE FUNCTION vigil_refuse();
CREATE TRIGGER cluster_meta_no_change BEFORE UPDATE OR DELETE ON cluster_meta FOR EACH ROW EXECUTE FUNCTION vigil_refuse();
ALTER TABLE cluster_leases ENABLE ALWAYS TRIGGER cluster_leases_epoch;
ALTER TABLE cluster_leases ENABLE ALWAYS TRIGGER cluster_leases_no_delete;
ALTER TABLE cluster_meta ENABLE ALWAYS TRIGGER cluster_meta_no_change;

REVOKE ALL ON cluster_meta, cluster_nodes, cluster_leases FROM vigil_app;
GRANT SELECT ON cluster_meta TO vigil_app;
GRANT SELECT, INSERT, UPDATE ON cluster_nodes, cluster_leases TO vigil_app;

-- Creates partition p's schema (run by the migrating login, not the app role): the log
-- tables copied from this schema's (columns, indexes, constraints), the same append-only
-- triggers (ENABLE ALWAYS), a guard and a purge function reading the partition's own
-- retention floor, and the same least-privilege grants. Idempotent.
CREATE FUNCTION vigil_create_partition(p INT) RETURNS TEXT LANGUAGE plpgsql AS $fn$
DECLARE
    base TEXT := current_schema();
    s    TEXT := current_schema() || '_p' || p;
BEGIN
    IF p < 1 THEN
        RAISE EXCEPTION 'vigil: partition 0 is the log of schema %', base;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s) THEN
        RETURN s;
    END IF;
    EXECUTE format('CREATE SCHEMA %I', s);
    EXECUTE format('CREATE TABLE %I.events (LIKE %I.events INCLUDING ALL)', s, base);
    EXECUTE format('CREATE TABLE %I.checkpoints (LIKE %I.checkpoints INCLUDING ALL)', s, base);
    EXECUTE format('CREATE TABLE %I.retention_floor (LIKE %I.retention_floor INCLUDING ALL)', s, base);
    EXECUTE format('INSERT INTO %I.retention_floor (id, floor) VALUES (1, 0)', s);
    EXECUTE format($f$
        CREATE FUNCTION %1$I.vigil_events_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
            IF OLD.seq > (SELECT floor FROM %1$I.retention_floor WHERE id = 1) THEN
                RAISE EXCEPTION 'vigil: DELETE on events refused: the table is append-only'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN OLD;
        END $b$$f$, s);
    EXECUTE format($f$
        CREATE FUNCTION %1$I.vigil_purge(new_floor BIGINT) RETURNS BIGINT
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = %1$I, %2$I AS $b$
        DECLARE
            deleted BIGINT;
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM %1$I.checkpoints WHERE seq = new_floor) THEN
                RAISE EXCEPTION 'vigil: a purge must end at a checkpoint (seq %%)', new_floor
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            UPDATE %1$I.retention_floor SET floor = new_floor WHERE id = 1 AND floor < new_floor;
            DELETE FROM %1$I.events WHERE seq <= new_floor;
            GET DIAGNOSTICS deleted = ROW_COUNT;
            RETURN deleted;
        END $b$$f$, s, base);
    EXECUTE format('CREATE TRIGGER events_no_update BEFORE UPDATE ON %1$I.events FOR EACH ROW EXECUTE FUNCTION %2$I.vigil_refuse()', s, base);
    EXECUTE format('CREATE TRIGGER events_no_delete BEFORE DELETE ON %1$I.events FOR EACH ROW EXECUTE FUNCTION %1$I.vigil_events_guard_delete()', s);
    EXECUTE format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON %1$I.events FOR EACH STATEMENT EXECUTE FUNCTION %2$I.vigil_refuse()', s, base);
    EXECUTE format('CREATE TRIGGER checkpoints_no_update BEFORE UPDATE OR DELETE ON %1$I.checkpoints FOR EACH ROW EXECUTE FUNCTION %2$I.vigil_refuse()', s, base);
    EXECUTE format('CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON %1$I.checkpoints FOR EACH STATEMENT EXECUTE FUNCTION %2$I.vigil_refuse()', s, base);
    EXECUTE format('CREATE TRIGGER retention_floor_guard BEFORE UPDATE ON %1$I.retention_floor FOR EACH ROW EXECUTE FUNCTION %2$I.vigil_floor_only_rises()', s, base);
    EXECUTE format('CREATE TRIGGER retention_floor_no_delete BEFORE DELETE ON %1$I.retention_floor FOR EACH ROW EXECUTE FUNCTION %2$I.vigil_refuse()', s, base);
    EXECUTE format('CREATE TRIGGER retention_floor_no_truncate BEFORE TRUNCATE ON %1$I.retention_floor FOR EACH STATEMENT EXECUTE FUNCTION %2$I.vigil_refuse()', s, base);
    EXECUTE format('ALTER TABLE %I.events ENABLE ALWAYS TRIGGER events_no_update', s);
    EXECUTE format('ALTER TABLE %I.events ENABLE ALWAYS TRIGGER events_no_delete', s);
    EXECUTE format('ALTER TABLE %I.events ENABLE ALWAYS TRIGGER events_no_truncate', s);
    EXECUTE format('ALTER TABLE %I.checkpoints ENABLE ALWAYS TRIGGER checkpoints_no_update', s);
    EXECUTE format('ALTER TABLE %I.checkpoints ENABLE ALWAYS TRIGGER checkpoints_no_truncate', s);
    EXECUTE format('ALTER TABLE %I.retention_floor ENABLE ALWAYS TRIGGER retention_floor_guard', s);
    EXECUTE format('ALTER TABLE %I.retention_floor ENABLE ALWAYS TRIGGER retention_floor_no_delete', s);
    EXECUTE format('ALTER TABLE %I.retention_floor ENABLE ALWAYS TRIGGER retention_floor_no_truncate', s);
    EXECUTE format('REVOKE ALL ON %1$I.events, %1$I.checkpoints, %1$I.retention_floor FROM vigil_app', s);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO vigil_app', s);
    EXECUTE format('GRANT SELECT, INSERT ON %1$I.events, %1$I.checkpoints TO vigil_app', s);
    EXECUTE format('GRANT SELECT ON %I.retention_floor TO vigil_app', s);
    EXECUTE format('REVOKE ALL ON FUNCTION %I.vigil_purge(BIGINT) FROM PUBLIC', s);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %I.vigil_purge(BIGINT) TO vigil_app', s);
    RETURN s;
END $fn$;
REVOKE ALL ON FUNCTION vigil_create_partition(INT) FROM PUBLIC;
