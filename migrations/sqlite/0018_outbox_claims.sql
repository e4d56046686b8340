-- Claims of the outbox (docs/cluster.md "Timers and the outbox"): on a single SQLite node
-- the one delivery worker claims its rows the same way as cluster nodes do on PostgreSQL
-- (one code path); a claim lasts until `claim_until` (epoch ms, wall clock).
ALTER TABLE notifications ADD COLUMN claimed_by TEXT;
ALTER TABLE notifications ADD COLUMN claim_until INTEGER;
