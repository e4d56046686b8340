//! Lookups by a posting field (`user_id`, `ip`, `organization_id`, `request_id`,
//! `ingest_key`), the same on both backends: the value's per-block filters
//! (store/block_filters.rs) name the blocks that may hold it, and those blocks are probed
//! newest first, in windows (4 blocks, then as many as the rows still missing need at the
//! rows per block found so far, see `next_window`), until `limit` rows are found. A rare
//! value costs one read of its filter rows plus a probe of the few blocks that hold it; a
//! frequent one stops after the newest window that fills the page. Neither walks the whole
//! log (before, a lookup probed every block: 8 ms for a user at 1M events on SQLite).

use sqlx::QueryBuilder;

use super::query::EventFilter;
use super::{Store, StoreError, StoredRow, block_filters, dispatch, postings};

/// Blocks of the first window; each next window is four times wider, up to [`MAX_WINDOW`].
const FIRST_WINDOW: usize = 4;
/// Sealed spans whose block rows a lookup's first query reads directly (the newest ones).
const NEWEST_SPANS: i64 = 8;
/// Block ranges past which a read of the spans' block rows becomes one covering range...
const MAX_RANGES: usize = 4;
/// ...when that range holds at most this many more rows than the ranges.
const COVER_SLACK: i64 = 1024;
/// Most blocks one query names (its `IN` list).
const MAX_WINDOW: usize = 1024;
/// Most block ranges one filter query reads (two compound terms each; SQLite allows 500).
pub(super) const RANGES_PER_QUERY: usize = 64;

impl Store {
    /// `GET /v1/events` (and every caller of [`Store::query`]) by a posting field, newest first.
    pub(super) async fn query_by_postings(&self, filter: &EventFilter) -> Result<Vec<StoredRow>, StoreError> {
        let Some((field, value)) = filter.posting_field() else { return dispatch!(self, s => s.query(filter).await) };
        let Some(tag) = postings::tag(field) else { return dispatch!(self, s => s.query(filter).await) };
        let term = postings::term(tag, value);
        let limit = filter.limit.max(0);
        let head = self.head().await?.seq;
        let hi = [filter.before_seq.map(|b| b - 1), filter.seq_range.map(|r| r.1), Some(head)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(head);
        let lo = filter.seq_range.map_or(0, |r| r.0).max(0);
        let Some(oldest) = dispatch!(self, s => s.oldest_posting_block().await)? else { return Ok(Vec::new()) };
        if hi < lo || limit == 0 {
            return Ok(Vec::new());
        }
        let (lo_block, hi_block) = (postings::block(lo).max(oldest), postings::block(hi));
        if hi_block < lo_block {
            return Ok(Vec::new());
        }
        let last_full = block_filters::last_full_block(head);
        let filtered_hi = hi_block.min(last_full);
        let (hits, unfiltered, mut spans) =
            if lo_block <= filtered_hi { self.filter(term, lo_block, filtered_hi).await? } else { Default::default() };
        // Newest first: the blocks not full yet, those after the last sealed span that may
        // hold the value, then the blocks of the candidate spans, read (in one query) only
        // when the probes need more blocks than the newest spans gave.
        let mut pending: std::collections::VecDeque<i64> =
            block_filters::candidates(lo_block, hi_block, last_full, &hits, &unfiltered).into();
        spans.sort_unstable_by(|a, b| b.cmp(a));
        spans.dedup();
        let mut spans = spans.as_slice();
        let mut out = Vec::new();
        let (mut width, mut probed) = (FIRST_WINDOW, 0);
        while (out.len() as i64) < limit {
            if pending.len() < width && !spans.is_empty() {
                pending.extend(self.span_blocks(term, lo_block, spans).await?);
                spans = &[];
            }
            if pending.is_empty() {
                break;
            }
            let window: Vec<i64> = pending.drain(..width.min(pending.len())).collect();
            probed += window.len();
            let (newest, oldest) = (window[0], window[window.len() - 1]);
            let range = (block_filters::first_seq(oldest).max(lo), (block_filters::first_seq(newest + 1) - 1).min(hi));
            let probe = EventFilter {
                seq_range: Some(range),
                posting_blocks: Some(window),
                limit: limit - out.len() as i64,
                ..filter.clone()
            };
            out.extend(dispatch!(self, s => s.query(&probe).await)?);
            width = next_window(width, probed, out.len(), limit as usize);
        }
        Ok(out)
    }

    /// What a lookup of `term` over the full blocks `lo..=hi` reads first, in one query: the
    /// term's span row over the sealed spans (block_filters.rs), and its block row over the
    /// blocks of the newest [`NEWEST_SPANS`] and those after the last sealed span. Gives
    /// those blocks that may hold it, those without a row (damaged, or sealed before a crash
    /// the filters survived differently), and the older spans whose row may hold it or that
    /// have none (their blocks are read by [`Store::span_blocks`] when the probes get to
    /// them).
    async fn filter(&self, term: i64, lo: i64, hi: i64) -> Result<(Vec<i64>, Vec<i64>, Vec<i64>), StoreError> {
        let (bucket, fp) = block_filters::key(term);
        let span_bucket = block_filters::span_bucket(bucket, fp);
        // The newest spans' block rows are read in the same query: a frequent value usually
        // fills its page there, and reading ~128 more rows costs less than another
        // statement. Their blocks still count only where their span's row may hold it.
        let (first, last) = (block_filters::span_of(lo), block_filters::span_of(hi + 1) - 1);
        let direct = ((last + 1 - NEWEST_SPANS) * block_filters::SPAN_BLOCKS).max(lo);
        let mut reads = vec![(bucket, direct, hi)];
        if first <= last {
            reads.push((span_bucket, block_filters::span_end(first), block_filters::span_end(last)));
        }
        let found = dispatch!(self, s => s.filter_hits(fp, &reads).await)?;
        let mut spans = Vec::new();
        if let Some((span_hits, rows)) = found.get(1) {
            spans.extend(span_hits.iter().map(|end| block_filters::span_of(*end)));
            // A span without its row: its blocks are read one by one.
            if *rows < last - first + 1 {
                let ends = [(block_filters::span_end(first), block_filters::span_end(last))];
                let with_rows: std::collections::HashSet<i64> =
                    dispatch!(self, s => s.filter_blocks(span_bucket, &ends).await)?.into_iter().collect();
                spans.extend((first..=last).filter(|s| !with_rows.contains(&block_filters::span_end(*s))));
            }
        }
        let (mut hits, rows) = found.into_iter().next().unwrap_or_default();
        let mut unfiltered =
            if rows < hi - direct + 1 { self.unfiltered(bucket, &[(direct, hi)]).await? } else { Vec::new() };
        let candidate: std::collections::HashSet<i64> = spans.iter().copied().collect();
        let keep = |b: &i64| *b > block_filters::span_end(last) || candidate.contains(&block_filters::span_of(*b));
        hits.retain(keep);
        unfiltered.retain(keep);
        // The spans whose blocks are still to read.
        spans.retain(|s| block_filters::span_end(*s) < direct);
        Ok((hits, unfiltered, spans))
    }

    /// The blocks (`lo` on) of `spans` whose row of `term` may hold it or that have none,
    /// newest first. Their blocks' rows are read as ranges of adjacent spans; past
    /// [`MAX_RANGES`] ranges, as one range from the oldest span's first block to the
    /// newest's last when that reads at most [`COVER_SLACK`] more rows (a compound term
    /// costs more to prepare than the rows it skips), dropping the blocks of the spans in
    /// between that are not candidates; else as ranges, many to a statement (scattered
    /// spans in a long log: a chance match in ~1% of the spans).
    async fn span_blocks(&self, term: i64, lo: i64, spans: &[i64]) -> Result<Vec<i64>, StoreError> {
        let (bucket, fp) = block_filters::key(term);
        let (Some(oldest), Some(newest)) = (spans.iter().min(), spans.iter().max()) else { return Ok(Vec::new()) };
        let mut ranges = block_filters::block_ranges(lo, block_filters::span_end(*newest), spans);
        let cover = ((oldest * block_filters::SPAN_BLOCKS).max(lo), block_filters::span_end(*newest));
        let exact: i64 = ranges.iter().map(|(a, b)| b - a + 1).sum();
        if ranges.len() > MAX_RANGES && cover.1 - cover.0 < exact + COVER_SLACK {
            ranges = vec![cover];
        }
        let reads: Vec<(i64, i64, i64)> = ranges.iter().map(|(from, to)| (bucket, *from, *to)).collect();
        let (mut blocks, mut missing) = (Vec::new(), Vec::new());
        for ((_, from, to), (found, rows)) in reads.iter().zip(dispatch!(self, s => s.filter_hits(fp, &reads).await)?) {
            blocks.extend(found);
            if rows < to - from + 1 {
                missing.push((*from, *to));
            }
        }
        blocks.extend(self.unfiltered(bucket, &missing).await?);
        let spans: std::collections::HashSet<i64> = spans.iter().copied().collect();
        blocks.retain(|b| spans.contains(&block_filters::span_of(*b)));
        blocks.sort_unstable_by(|a, b| b.cmp(a));
        blocks.dedup();
        Ok(blocks)
    }

    /// The blocks in `ranges` without a row of `bucket`.
    async fn unfiltered(&self, bucket: i64, ranges: &[(i64, i64)]) -> Result<Vec<i64>, StoreError> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let with_rows: std::collections::HashSet<i64> =
            dispatch!(self, s => s.filter_blocks(bucket, ranges).await)?.into_iter().collect();
        Ok(ranges.iter().flat_map(|(a, b)| *a..=*b).filter(|b| !with_rows.contains(b)).collect())
    }

    /// The stored filter rows `(block, bucket, fps)` of blocks `lo..=hi` (verify compares
    /// them with the postings); None where the store has no posting table.
    pub async fn block_filters(&self, lo: i64, hi: i64) -> Result<Option<Vec<(i64, i64, Vec<u8>)>>, StoreError> {
        match self {
            Store::Postgres(s) if !s.uses_postings() => Ok(None),
            _ => dispatch!(self, s => s.block_filters(lo, hi).await).map(Some),
        }
    }
}

/// Blocks of the next probe window: as many as the rows still missing need at the rows per
/// block found so far, half again as many for margin (a medium-frequency value then takes
/// two probes, not four or five); four times the last window while nothing was found.
fn next_window(last: usize, probed: usize, found: usize, limit: usize) -> usize {
    let wanted = if found == 0 || probed == 0 {
        last * 4
    } else {
        (limit.saturating_sub(found) * probed * 3).div_ceil(found * 2)
    };
    wanted.clamp(FIRST_WINDOW, MAX_WINDOW)
}

/// Appends ` AND seq IN (...)`: the seqs the posting table holds for `term` in `blocks`.
pub(super) fn push_block_probe<DB: sqlx::Database>(qb: &mut QueryBuilder<DB>, term: i64, blocks: &[i64])
where
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    qb.push(" AND seq IN (SELECT seq FROM postings WHERE term = ").push_bind(term).push(" AND block IN (");
    let mut list = qb.separated(", ");
    for block in blocks {
        list.push_bind(*block);
    }
    qb.push("))");
}

/// The queries of the filters, the same SQL on both backends (placeholders by QueryBuilder).
macro_rules! filter_queries {
    ($store:ty, $db:ty, reader: $reader:ident, writer: $writer:ident) => {
        impl $store {
            /// The oldest block with postings (none when the log is empty or purged).
            pub(super) async fn oldest_posting_block(&self) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::query_scalar("SELECT MIN(block) FROM postings").fetch_one(&self.$reader).await?)
            }

            /// For each read `(bucket, lo, hi)`: the blocks in `lo..=hi` whose row of
            /// `bucket` may hold `fp` (as [`block_filters::may_hold`]: the database tests
            /// each row, only hits come back), and how many rows the range has.
            pub(super) async fn filter_hits(
                &self,
                fp: u16,
                reads: &[(i64, i64, i64)],
            ) -> Result<Vec<(Vec<i64>, i64)>, StoreError> {
                let mut out: Vec<(Vec<i64>, i64)> = vec![Default::default(); reads.len()];
                let fp = fp.to_le_bytes().to_vec();
                for (group, reads) in reads.chunks(super::lookup::RANGES_PER_QUERY).enumerate() {
                    let base = group * super::lookup::RANGES_PER_QUERY;
                    let mut qb = QueryBuilder::<$db>::new("");
                    for (i, (bucket, lo, hi)) in reads.iter().enumerate() {
                        let read = (base + i) as i64;
                        for hit in [false, true] {
                            qb.push(if i == 0 && !hit { "SELECT " } else { " UNION ALL SELECT " });
                            qb.push_bind(read).push(if i == 0 && !hit { " AS r, " } else { ", " });
                            qb.push_bind(i64::from(hit)).push(if hit { ", block" } else { " AS k, COUNT(*) AS v" });
                            qb.push(" FROM posting_filters WHERE bucket = ").push_bind(*bucket);
                            qb.push(" AND block >= ").push_bind(*lo).push(" AND block <= ").push_bind(*hi);
                            if !hit {
                                continue;
                            }
                            if <$db as sqlx::Database>::NAME == "SQLite" {
                                qb.push(" AND (length(fps) % 2 = 1 OR instr(fps, ")
                                    .push_bind(fp.clone())
                                    .push(") > 0)");
                            } else {
                                qb.push(" AND (length(fps) % 2 = 1 OR position(")
                                    .push_bind(fp.clone())
                                    .push(" in fps) > 0)");
                            }
                        }
                    }
                    for r in &qb.build().persistent(false).fetch_all(&self.$reader).await? {
                        let (read, hit, value) =
                            (r.try_get::<i64, _>(0usize)?, r.try_get::<i64, _>(1usize)?, r.try_get::<i64, _>(2usize)?);
                        let Some(slot) = usize::try_from(read).ok().and_then(|i| out.get_mut(i)) else { continue };
                        if hit == 1 { slot.0.push(value) } else { slot.1 = value }
                    }
                }
                Ok(out)
            }

            /// The blocks in `ranges` that have a row of `bucket`.
            pub(super) async fn filter_blocks(
                &self,
                bucket: i64,
                ranges: &[(i64, i64)],
            ) -> Result<Vec<i64>, StoreError> {
                let mut out = Vec::new();
                for ranges in ranges.chunks(super::lookup::RANGES_PER_QUERY) {
                    let mut qb = QueryBuilder::<$db>::new("");
                    for (i, (lo, hi)) in ranges.iter().enumerate() {
                        qb.push(if i == 0 { "" } else { " UNION ALL " });
                        qb.push("SELECT block FROM posting_filters WHERE bucket = ").push_bind(bucket);
                        qb.push(" AND block >= ").push_bind(*lo).push(" AND block <= ").push_bind(*hi);
                    }
                    out.extend(qb.build_query_scalar::<i64>().persistent(false).fetch_all(&self.$reader).await?);
                }
                Ok(out)
            }

            /// `(block, bucket, fps)` of blocks `lo..=hi`, every bucket.
            pub(super) async fn block_filters(&self, lo: i64, hi: i64) -> Result<Vec<(i64, i64, Vec<u8>)>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT block, bucket, fps FROM posting_filters WHERE block >= ");
                qb.push_bind(lo).push(" AND block <= ").push_bind(hi);
                let rows = qb.build().persistent(false).fetch_all(&self.$reader).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (
                            r.try_get::<i64, _>("block").unwrap_or(i64::MIN),
                            r.try_get::<i64, _>("bucket").unwrap_or(i64::MIN),
                            r.try_get::<Vec<u8>, _>("fps").unwrap_or_default(),
                        )
                    })
                    .collect())
            }

            /// Drops the filters of blocks a truncation left without their last row (from
            /// the block of `head + 1` on): those blocks are refilled and sealed again.
            ///
            /// Runs at every start: one index range per bucket a filter row is written
            /// in (block and span buckets), not a scan of the table keyed by bucket first
            /// (that took 1.1 s at 10M events). A row at another bucket (forged) never
            /// stands in the way of a new filter, and verify names it.
            pub(super) async fn prune_filters_after(&self, head: i64) -> Result<u64, StoreError> {
                let last = super::block_filters::BUCKETS + super::block_filters::SPAN_BUCKETS - 1;
                let mut qb = QueryBuilder::<$db>::new(format!(
                    "WITH RECURSIVE b(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM b WHERE x < {last}) \
                     DELETE FROM posting_filters WHERE bucket IN (SELECT x FROM b) AND block >= "
                ));
                qb.push_bind(super::block_filters::last_full_block(head) + 1);
                Ok(qb.build().execute(&self.$writer).await?.rows_affected())
            }
        }
    };
}
pub(crate) use filter_queries;

#[cfg(test)]
mod tests {
    use super::{FIRST_WINDOW, MAX_WINDOW, next_window};

    #[test]
    fn the_next_window_follows_the_rows_per_block_found() {
        // Nothing found yet (false matches, or none probed): four times wider.
        assert_eq!(next_window(4, 4, 0, 100), 16);
        assert_eq!(next_window(4, 0, 0, 100), 16);
        // One row per block over 20 blocks, 80 missing: 80 blocks and half again.
        assert_eq!(next_window(16, 20, 20, 100), 120);
        // Ten rows per block: 9 blocks would do, never below the first window's size.
        assert_eq!(next_window(4, 4, 40, 100), 9);
        assert_eq!(next_window(4, 4, 99, 100), FIRST_WINDOW);
        // Sparse: one row in 64 blocks, 99 missing, capped at the widest window.
        assert_eq!(next_window(64, 64, 1, 100), MAX_WINDOW);
    }
}
