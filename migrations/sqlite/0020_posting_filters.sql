-- Per-block filters of the posting table (issue 23's growth item; engine/src/store/
-- block_filters.rs): when a block of 4,096 seqs is full, the append that fills it writes
-- one row per bucket of its distinct posting terms, the sorted 16-bit fingerprints of the
-- bucket's terms. A lookup reads its value's bucket over the blocks (one contiguous key
-- range) and probes only the blocks that may hold the value, instead of every block. The
-- server fills the filters of the full blocks stored before this migration in the same
-- transaction. Verify rebuilds each full block's filter from its postings.
CREATE TABLE posting_filters (
    bucket INTEGER NOT NULL,
    block  INTEGER NOT NULL,
    fps    BLOB NOT NULL,
    PRIMARY KEY (bucket, block)
) WITHOUT ROWID;
-- Never updated; deleted only for a block wholly below the retention floor, or one a
-- truncation the operator accepted left without its last row.
CREATE TRIGGER posting_filters_no_update BEFORE UPDATE ON posting_filters
BEGIN
    SELECT RAISE(ABORT, 'vigil: posting filters are append-only (UPDATE refused)');
END;
CREATE TRIGGER posting_filters_no_delete BEFORE DELETE ON posting_filters
WHEN OLD.block * 4096 + 4095 > (SELECT floor FROM retention_floor WHERE id = 1)
  AND EXISTS (SELECT 1 FROM events WHERE seq = OLD.block * 4096 + 4095)
BEGIN
    SELECT RAISE(ABORT, 'vigil: posting filters are append-only (DELETE refused)');
END;
