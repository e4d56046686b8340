-- High-cardinality lookups (user_id, ip, organization_id, request_id) move from per-column
-- B-trees to a posting table (see engine/src/store/postings.rs): one row per event and
-- present field, keyed (block, term, seq) with block = seq >> 12 and term a 64-bit hash of
-- the field and value. New rows land at the right edge of the tree, so ingest no longer
-- dirties a random index page per field and event. The server fills it for existing rows
-- in the same transaction as this migration. Verify recomputes it from the columns.
CREATE TABLE postings (
    block INTEGER NOT NULL,
    term  INTEGER NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (block, term, seq)
) WITHOUT ROWID;
DROP INDEX events_user;
DROP INDEX events_ip;
DROP INDEX events_org;
DROP INDEX events_request;
-- Like the log it indexes: never updated, deleted only below the retention floor or when
-- the event it names is gone (after a truncation the operator accepted, the server drops
-- the postings of the vanished rows before writing new rows at those seqs).
CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings
BEGIN
    SELECT RAISE(ABORT, 'vigil: postings are append-only (UPDATE refused)');
END;
CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings
WHEN OLD.seq > (SELECT floor FROM retention_floor WHERE id = 1)
  AND EXISTS (SELECT 1 FROM events WHERE seq = OLD.seq)
BEGIN
    SELECT RAISE(ABORT, 'vigil: postings are append-only (DELETE refused)');
END;
