-- Cluster mode's detection cursors (docs/cluster.md) exist only on PostgreSQL. Nothing to
-- change on SQLite; kept so both backends share migration numbers.
SELECT 1;
