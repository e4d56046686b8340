-- Span filters, the second level of the per-block filters (issue 23's growth item;
-- engine/src/store/block_filters.rs): when the append that fills a block also completes a
-- span of 16 blocks, it writes the span's filter into `posting_filters` from the 16 blocks'
-- rows, 4,096 rows in buckets 256..=4351 stored at the span's last block (so migration
-- 0020's guards and the purge treat them as the block they end). A lookup reads one span
-- row where it read 16 block rows. No table changes: the server fills the span filters of
-- the spans already full in the same transaction as this migration, in every partition
-- schema of a cluster too. Verify rebuilds each span's filter from its rows' columns.
SELECT 1;
