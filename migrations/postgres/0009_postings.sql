-- Nothing to change on PostgreSQL; kept so both backends share migration numbers (see the
-- SQLite 0009: a posting table replaces the high-cardinality B-trees there).
SELECT 1;
