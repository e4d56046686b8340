-- The SQLite posting design on PostgreSQL (issue 23; engine/src/store/postings.rs): lookups
-- by user_id, ip, organization_id, request_id and ingest_key are served by one table of
-- (block, term, seq) rows, block = seq >> 12 and term a 64-bit hash of the field and value,
-- instead of a B-tree per column. New rows land in the newest block, at the right edge of
-- one bigint key, so an append no longer descends five text B-trees per event (~24 us of
-- PostgreSQL CPU per event was spent on the log's eleven B-trees). The server writes the
-- postings with the events (one binary COPY each, in the append's transaction) and fills
-- them for the rows stored before this migration, in the same transaction as it (Rust:
-- store/postgres/postings.rs). The unique (event_id, COALESCE(ingest_key, '')) index stays:
-- it is the idempotency guarantee. Verify recomputes the postings from the columns.
CREATE TABLE postings (
    block BIGINT NOT NULL,
    term  BIGINT NOT NULL,
    seq   BIGINT NOT NULL,
    PRIMARY KEY (block, term, seq)
);
-- Insert-only (a dead tuple only after a purge or an accepted truncation): vacuum for the
-- visibility map like the log (migration 0005).
ALTER TABLE postings SET (autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_vacuum_insert_threshold = 10000,
                          autovacuum_analyze_scale_factor = 0.02);

-- Like the log it indexes: never updated, deleted only below the retention floor or when
-- the event it names is gone (after a truncation the operator accepted, the server drops
-- the postings of the vanished rows before writing new rows at those seqs).
CREATE FUNCTION vigil_postings_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq > (SELECT floor FROM retention_floor WHERE id = 1)
       AND EXISTS (SELECT 1 FROM events WHERE seq = OLD.seq) THEN
        RAISE EXCEPTION 'vigil: DELETE on postings refused: the table is append-only'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings FOR EACH ROW EXECUTE FUNCTION vigil_refuse();
CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings FOR EACH ROW EXECUTE FUNCTION vigil_postings_guard_delete();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings FOR EACH STATEMENT EXECUTE FUNCTION vigil_refuse();
ALTER TABLE postings ENABLE ALWAYS TRIGGER postings_no_update;
ALTER TABLE postings ENABLE ALWAYS TRIGGER postings_no_delete;
ALTER TABLE postings ENABLE ALWAYS TRIGGER postings_no_truncate;
REVOKE ALL ON postings FROM vigil_app;
GRANT SELECT, INSERT, DELETE ON postings TO vigil_app;

-- The per-value B-trees the postings replace.
DROP INDEX events_user;
DROP INDEX events_ip;
DROP INDEX events_org;
DROP INDEX events_request;
DROP INDEX events_ingest_key;

-- A purge drops the postings of the purged rows with them.
CREATE OR REPLACE FUNCTION vigil_purge(new_floor BIGINT) RETURNS BIGINT
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    deleted BIGINT;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM checkpoints WHERE seq = new_floor) THEN
        RAISE EXCEPTION 'vigil: a purge must end at a checkpoint (seq %)', new_floor
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE retention_floor SET floor = new_floor WHERE id = 1 AND floor < new_floor;
    DELETE FROM events WHERE seq <= new_floor;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    DELETE FROM postings WHERE block <= (new_floor >> 12) AND seq <= new_floor;
    RETURN deleted;
END $$;
REVOKE ALL ON FUNCTION vigil_purge(BIGINT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vigil_purge(BIGINT) TO vigil_app;

-- The same for partition schema s (cluster mode): its postings table, guard and purge
-- (qualified with s, as migration 0015's are), and the per-value indexes its events table
-- copied from this schema's before this migration dropped. Idempotent.
CREATE FUNCTION vigil_partition_postings(s TEXT) RETURNS VOID LANGUAGE plpgsql AS $fn$
DECLARE
    base TEXT := current_schema();
    idx  TEXT;
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS %1$I.postings (LIKE %2$I.postings INCLUDING ALL)', s, base);
    EXECUTE format('ALTER TABLE %I.postings SET (autovacuum_vacuum_insert_scale_factor = 0.01, '
                   'autovacuum_vacuum_insert_threshold = 10000, autovacuum_analyze_scale_factor = 0.02)', s);
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION %1$I.vigil_postings_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
            IF OLD.seq > (SELECT floor FROM %1$I.retention_floor WHERE id = 1)
               AND EXISTS (SELECT 1 FROM %1$I.events WHERE seq = OLD.seq) THEN
                RAISE EXCEPTION 'vigil: DELETE on postings refused: the table is append-only'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN OLD;
        END $b$$f$, s);
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION %1$I.vigil_purge(new_floor BIGINT) RETURNS BIGINT
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
            DELETE FROM %1$I.postings WHERE block <= (new_floor >> 12) AND seq <= new_floor;
            RETURN deleted;
        END $b$$f$, s, base);
    EXECUTE format('DROP TRIGGER IF EXISTS postings_no_update ON %I.postings', s);
    EXECUTE format('DROP TRIGGER IF EXISTS postings_no_delete ON %I.postings', s);
    EXECUTE format('DROP TRIGGER IF EXISTS postings_no_truncate ON %I.postings', s);
    EXECUTE format('CREATE TRIGGER postings_no_update BEFORE UPDATE ON %1$I.postings FOR EACH ROW EXECUTE FUNCTION %2$I.vigil_refuse()', s, base);
    EXECUTE format('CREATE TRIGGER postings_no_delete BEFORE DELETE ON %1$I.postings FOR EACH ROW EXECUTE FUNCTION %1$I.vigil_postings_guard_delete()', s);
    EXECUTE format('CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON %1$I.postings FOR EACH STATEMENT EXECUTE FUNCTION %2$I.vigil_refuse()', s, base);
    EXECUTE format('ALTER TABLE %I.postings ENABLE ALWAYS TRIGGER postings_no_update', s);
    EXECUTE format('ALTER TABLE %I.postings ENABLE ALWAYS TRIGGER postings_no_delete', s);
    EXECUTE format('ALTER TABLE %I.postings ENABLE ALWAYS TRIGGER postings_no_truncate', s);
    EXECUTE format('REVOKE ALL ON %I.postings FROM vigil_app', s);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON %I.postings TO vigil_app', s);
    EXECUTE format('REVOKE ALL ON FUNCTION %I.vigil_purge(BIGINT) FROM PUBLIC', s);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %I.vigil_purge(BIGINT) TO vigil_app', s);
    -- The non-unique indexes led by a field the postings serve (named by PostgreSQL when
    -- migration 0015's LIKE copied them).
    FOR idx IN
        SELECT format('%I.%I', s, c.relname)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = format('%I.events', s)::regclass AND NOT i.indisunique
          AND a.attname IN ('organization_id', 'user_id', 'ip', 'request_id', 'ingest_key')
    LOOP
        EXECUTE 'DROP INDEX ' || idx;
    END LOOP;
END $fn$;
REVOKE ALL ON FUNCTION vigil_partition_postings(TEXT) FROM PUBLIC;

-- The partitions that exist already.
DO $$
DECLARE
    p INT;
BEGIN
    FOR p IN SELECT generate_series(1, COALESCE((SELECT partitions FROM cluster_meta WHERE id = 1), 1) - 1) LOOP
        IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = current_schema() || '_p' || p) THEN
            PERFORM vigil_partition_postings(current_schema() || '_p' || p);
        END IF;
    END LOOP;
END $$;

-- Partitions created from now on get theirs too (migration 0015's function, plus the call).
CREATE OR REPLACE FUNCTION vigil_create_partition(p INT) RETURNS TEXT LANGUAGE plpgsql AS $fn$
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
    -- The postings table, its guard and the partition's purge (which drops both).
    PERFORM vigil_partition_postings(s);
    RETURN s;
END $fn$;
REVOKE ALL ON FUNCTION vigil_create_partition(INT) FROM PUBLIC;
