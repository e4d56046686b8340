-- The log is insert-only: vacuum it after every ~1% of new rows (instead of the default 20%)
-- so its visibility map stays current and index-only scans (MIN/MAX(seq) over a time window,
-- counts) do not fall back to heap fetches after a burst of ingest.
ALTER TABLE events SET (autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_vacuum_insert_threshold = 10000,
                        autovacuum_analyze_scale_factor = 0.02);
