-- Detection in cluster mode (issue 24, docs/cluster.md "Detection"): one node at a time runs
-- the rules over every partition, under the detection lease (the `cluster_leases` row of
-- partition -1, inserted when a cluster is created), and keeps here, per partition, the seq
-- up to which the rules' findings are recorded. A new holder rebuilds rule state by replay
-- up to these cursors and continues after them. The cursor only grows and is never deleted;
-- every advance checks (and share-locks) the detection lease in the same statement, so a
-- node that lost the lease cannot move it.
CREATE TABLE cluster_detect_cursors (
    partition  INT PRIMARY KEY CHECK (partition >= 0),
    seq        BIGINT NOT NULL CHECK (seq >= 0),
    epoch      BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION vigil_detect_cursor_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.partition <> OLD.partition OR NEW.seq < OLD.seq OR NEW.epoch < OLD.epoch THEN
        RAISE EXCEPTION 'vigil: a detection cursor only moves forward'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER cluster_detect_cursors_grow BEFORE UPDATE ON cluster_detect_cursors FOR EACH ROW EXECUTE FUNCTION vigil_detect_cursor_grows();
CREATE TRIGGER cluster_detect_cursors_no_delete BEFORE DELETE ON cluster_detect_cursors FOR EACH ROW EXECUTE FUNCTION vigil_refuse();
ALTER TABLE cluster_detect_cursors ENABLE ALWAYS TRIGGER cluster_detect_cursors_grow;
ALTER TABLE cluster_detect_cursors ENABLE ALWAYS TRIGGER cluster_detect_cursors_no_delete;

REVOKE ALL ON cluster_detect_cursors FROM vigil_app;
GRANT SELECT, INSERT, UPDATE ON cluster_detect_cursors TO vigil_app;
