-- Nothing to change on SQLite; kept so both backends share migration numbers (see the
-- PostgreSQL 0005: autovacuum settings for the append-only log).
SELECT 1;
