-- Nothing to change on SQLite, which has had its posting table since 0009; kept so both
-- backends share migration numbers (see the PostgreSQL 0019: the same posting table
-- replaces the per-value B-trees there).
SELECT 1;
