-- Per-block filters of the posting table (issue 23's growth item; engine/src/store/
-- block_filters.rs): when a block of 4,096 seqs is full, the append that fills it writes
-- one row per bucket of its distinct posting terms, the sorted 16-bit fingerprints of the
-- bucket's terms. A lookup reads its value's bucket over the blocks (one contiguous key
-- range) and probes only the blocks that may hold the value, instead of every block. The
-- server fills the filters of the full blocks stored before this migration in the same
-- transaction, in this schema and in every partition schema of a cluster. Verify rebuilds
-- each full block's filter from its postings.
CREATE TABLE posting_filters (
    bucket BIGINT NOT NULL,
    block  BIGINT NOT NULL,
    fps    BYTEA NOT NULL,
    PRIMARY KEY (bucket, block)
);
-- Never updated; deleted only for a block wholly below the retention floor, or one a
-- truncation the operator accepted left without its last row.
CREATE FUNCTION vigil_posting_filters_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.block * 4096 + 4095 > (SELECT floor FROM retention_floor WHERE id = 1)
       AND EXISTS (SELECT 1 FROM events WHERE seq = OLD.block * 4096 + 4095) THEN
        RAISE EXCEPTION 'vigil: DELETE on posting_filters refused: the table is append-only'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER posting_filters_no_update BEFORE UPDATE ON posting_filters FOR EACH ROW EXECUTE FUNCTION vigil_refuse();
CREATE TRIGGER posting_filters_no_delete BEFORE DELETE ON posting_filters FOR EACH ROW EXECUTE FUNCTION vigil_posting_filters_guard_delete();
CREATE TRIGGER posting_filters_no_truncate BEFORE TRUNCATE ON posting_filters FOR EACH STATEMENT EXECUTE FUNCTION vigil_refuse();
ALTER TABLE posting_filters ENABLE ALWAYS TRIGGER posting_filters_no_update;
ALTER TABLE posting_filters ENABLE ALWAYS TRIGGER posting_filters_no_delete;
ALTER TABLE posting_filters ENABLE ALWAYS TRIGGER posting_filters_no_truncate;
REVOKE ALL ON posting_filters FROM vigil_app;
GRANT SELECT, INSERT, DELETE ON posting_filters TO vigil_app;

-- The same for partition schema s (cluster mode), qualified with s like migration 0019's
-- postings (a partition's search path falls back to this schema: without its own table a
-- partition would read partition 0's filters). Idempotent.
CREATE FUNCTION vigil_partition_posting_filters(s TEXT) RETURNS VOID LANGUAGE plpgsql AS $fn$
DECLARE
    base TEXT := current_schema();
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS %1$I.posting_filters (LIKE %2$I.posting_filters INCLUDING ALL)', s, base);
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION %1$I.vigil_posting_filters_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
            IF OLD.block * 4096 + 4095 > (SELECT floor FROM %1$I.retention_floor WHERE id = 1)
               AND EXISTS (SELECT 1 FROM %1$I.events WHERE seq = OLD.block * 4096 + 4095) THEN
                RAISE EXCEPTION 'vigil: DELETE on posting_filters refused: the table is append-only'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN OLD;
        END $b$$f$, s);
    EXECUTE format('DROP TRIGGER IF EXISTS posting_filters_no_update ON %I.posting_filters', s);
    EXECUTE format('DROP TRIGGER IF EXISTS posting_filters_no_delete ON %I.posting_filters', s);
    EXECUTE format('DROP TRIGGER IF EXISTS posting_filters_no_truncate ON %I.posting_filters', s);
    EXECUTE format('CREATE TRIGGER posting_filters_no_update BEFORE UPDATE ON %1$I.posting_filters FOR EACH ROW EXECUTE FUNCTION %2$I.vigil_refuse()', s, base);
    EXECUTE format('CREATE TRIGGER posting_filters_no_delete BEFORE DELETE ON %1$I.posting_filters FOR EACH ROW EXECUTE FUNCTION %1$I.vigil_posting_filters_guard_delete()', s);
    EXECUTE format('CREATE TRIGGER posting_filters_no_truncate BEFORE TRUNCATE ON %1$I.posting_filters FOR EACH STATEMENT EXECUTE FUNCTION %2$I.vigil_refuse()', s, base);
    EXECUTE format('ALTER TABLE %I.posting_filters ENABLE ALWAYS TRIGGER posting_filters_no_update', s);
    EXECUTE format('ALTER TABLE %I.posting_filters ENABLE ALWAYS TRIGGER posting_filters_no_delete', s);
    EXECUTE format('ALTER TABLE %I.posting_filters ENABLE ALWAYS TRIGGER posting_filters_no_truncate', s);
    EXECUTE format('REVOKE ALL ON %I.posting_filters FROM vigil_app', s);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON %I.posting_filters TO vigil_app', s);
END $fn$;
REVOKE ALL ON FUNCTION vigil_partition_posting_filters(TEXT) FROM PUBLIC;

-- The partitions that exist already.
DO $$
DECLARE
    p INT;
BEGIN
    FOR p IN SELECT generate_series(1, COALESCE((SELECT partitions FROM cluster_meta WHERE id = 1), 1) - 1) LOOP
        IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = current_schema() || '_p' || p) THEN
            PERFORM vigil_partition_posting_filters(current_schema() || '_p' || p);
        END IF;
    END LOOP;
END $$;

-- Partitions created from now on get theirs too: vigil_create_partition (migration 0019)
-- calls vigil_partition_postings last, so that one now creates the filters after the
-- postings (its body as in 0019, plus the call).
ALTER FUNCTION vigil_partition_postings(TEXT) RENAME TO vigil_partition_postings_0019;
CREATE FUNCTION vigil_partition_postings(s TEXT) RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vigil_partition_postings_0019(s);
    PERFORM vigil_partition_posting_filters(s);
END $$;
REVOKE ALL ON FUNCTION vigil_partition_postings(TEXT) FROM PUBLIC;
