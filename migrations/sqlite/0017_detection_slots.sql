-- Cluster mode's detection slots (docs/cluster.md, "Detection") exist only on PostgreSQL.
-- Nothing to change on SQLite; kept so both backends share migration numbers.
SELECT 1;
