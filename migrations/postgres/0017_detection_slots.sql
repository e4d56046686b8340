-- Detection placed by rule (issue 24, docs/cluster.md "Detection"): the rules are spread
-- over a fixed number of detection slots; each rule belongs to one slot (a hash of its
-- name), each slot has its own lease (the `cluster_leases` row of partition -1 - slot, so
-- slot 0 keeps the row -1 of migration 0016) placed over the live nodes like a partition,
-- and its own cursor per partition here. The number of slots is fixed when a cluster first
-- runs with slots (recorded here once, checked by every node).
CREATE TABLE cluster_detection (
    id         INT PRIMARY KEY CHECK (id = 1),
    slots      INT NOT NULL CHECK (slots BETWEEN 1 AND 256),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER cluster_detection_no_change BEFORE UPDATE OR DELETE ON cluster_detection FOR EACH ROW EXECUTE FUNCTION vigil_refuse();
ALTER TABLE cluster_detection ENABLE ALWAYS TRIGGER cluster_detection_no_change;

-- A cursor per (slot, partition). The cursors of a cluster that ran before this migration
-- (one holder ran every rule) become slot 0's; when the number of slots is recorded, every
-- other slot starts from a copy of them (every rule had evaluated up to there).
ALTER TABLE cluster_detect_cursors ADD COLUMN slot INT NOT NULL DEFAULT 0 CHECK (slot >= 0);
ALTER TABLE cluster_detect_cursors ALTER COLUMN slot DROP DEFAULT;
ALTER TABLE cluster_detect_cursors DROP CONSTRAINT cluster_detect_cursors_pkey;
ALTER TABLE cluster_detect_cursors ADD PRIMARY KEY (slot, partition);

CREATE OR REPLACE FUNCTION vigil_detect_cursor_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.slot <> OLD.slot OR NEW.partition <> OLD.partition OR NEW.seq < OLD.seq OR NEW.epoch < OLD.epoch THEN
        RAISE EXCEPTION 'vigil: a detection cursor only moves forward'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

REVOKE ALL ON cluster_detection FROM vigil_app;
GRANT SELECT ON cluster_detection TO vigil_app;
