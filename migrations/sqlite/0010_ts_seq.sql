-- Nothing to change on SQLite (an index on ts already carries the rowid, which is seq);
-- kept so both backends share migration numbers (see the PostgreSQL 0010).
SELECT 1;
