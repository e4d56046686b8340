-- Cluster mode (docs/cluster.md) needs PostgreSQL: its tables (cluster_meta, cluster_nodes,
-- cluster_leases, one schema per partition) exist only there. Nothing to change on SQLite;
-- kept so both backends share migration numbers. A single SQLite node is partition 0.
SELECT 1;
