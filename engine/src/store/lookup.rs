//! Lookups by a posting field (`user_id`, `ip`, `organization_id`, `request_id`,
//! `ingest_key`), the same on both backends: the value's per-block filters
//! (store/block_filters.rs) name the blocks that may hold it, and those blocks are probed
//! newest first, in windows four times wider each time (4, 16, 64... blocks), until `limit`
//! rows are found. A rare value costs one read of its filter rows plus a probe of the few
//! blocks that hold it; a frequent one stops after the newest window that fills the page.
//! Neither walks the whole log (before, a lookup probed every block: 8 ms for a user at 1M
//! events on SQLite).

use sqlx::QueryBuilder;

use super::query::EventFilter;
use super::{Store, StoreError, StoredRow, block_filters, dispatch, postings};

/// Blocks of the first window; each next window is four times wider, up to [`MAX_WINDOW`].
const FIRST_WINDOW: usize = 4;
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
        let (bucket, fp) = block_filters::key(term);
        let (mut hits, mut unfiltered) = (Vec::new(), Vec::new());
        let filtered_hi = hi_block.min(last_full);
        if lo_block <= filtered_hi {
            let ranges = self.block_ranges(bucket, fp, lo_block, filtered_hi).await?;
            let rows;
            (hits, rows) = dispatch!(self, s => s.filter_hits(bucket, fp, &ranges).await)?;
            // A full block without its row (damaged, or sealed before a crash the filters
            // survived differently) is probed: find which, only when some are missing.
            if rows < ranges.iter().map(|(a, b)| b - a + 1).sum::<i64>() {
                let with_rows: std::collections::HashSet<i64> =
                    dispatch!(self, s => s.filter_blocks(bucket, &ranges).await)?.into_iter().collect();
                unfiltered = ranges.iter().flat_map(|(a, b)| *a..=*b).filter(|b| !with_rows.contains(b)).collect();
            }
        }
        let candidates = block_filters::candidates(lo_block, hi_block, last_full, &hits, &unfiltered);
        let mut out = Vec::new();
        let (mut at, mut width) = (0, FIRST_WINDOW);
        while at < candidates.len() && (out.len() as i64) < limit {
            let window = &candidates[at..(at + width).min(candidates.len())];
            let (newest, oldest) = (window[0], window[window.len() - 1]);
            let range = (block_filters::first_seq(oldest).max(lo), (block_filters::first_seq(newest + 1) - 1).min(hi));
            let probe = EventFilter {
                seq_range: Some(range),
                posting_blocks: Some(window.to_vec()),
                limit: limit - out.len() as i64,
                ..filter.clone()
            };
            out.extend(dispatch!(self, s => s.query(&probe).await)?);
            at += window.len();
            width = (width * 4).min(MAX_WINDOW);
        }
        Ok(out)
    }

    /// The ranges of full blocks in `lo..=hi` whose block rows a lookup of `(bucket, fp)`
    /// reads: the span rows (block_filters.rs) rule out the spans that cannot hold it; a
    /// span without its row, and the blocks after the last sealed span, are read block by
    /// block.
    async fn block_ranges(&self, bucket: i64, fp: u16, lo: i64, hi: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let (first, last) = (block_filters::span_of(lo), block_filters::span_of(hi + 1) - 1);
        let mut to_read = Vec::new();
        if first <= last {
            let span_bucket = block_filters::span_bucket(bucket, fp);
            let ends = [(block_filters::span_end(first), block_filters::span_end(last))];
            let (hits, rows) = dispatch!(self, s => s.filter_hits(span_bucket, fp, &ends).await)?;
            to_read.extend(hits.iter().map(|b| block_filters::span_of(*b)));
            if rows < last - first + 1 {
                let with_rows: std::collections::HashSet<i64> =
                    dispatch!(self, s => s.filter_blocks(span_bucket, &ends).await)?.into_iter().collect();
                to_read.extend((first..=last).filter(|s| !with_rows.contains(&block_filters::span_end(*s))));
            }
        }
        Ok(block_filters::block_ranges(lo, hi, &to_read))
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

            /// The blocks in `ranges` whose row of `bucket` may hold `fp` (as
            /// [`block_filters::may_hold`]: the database tests each row, only hits come
            /// back), and how many rows the ranges have.
            pub(super) async fn filter_hits(
                &self,
                bucket: i64,
                fp: u16,
                ranges: &[(i64, i64)],
            ) -> Result<(Vec<i64>, i64), StoreError> {
                let (mut hits, mut count) = (Vec::new(), 0);
                for ranges in ranges.chunks(super::lookup::RANGES_PER_QUERY) {
                    let range = |qb: &mut QueryBuilder<$db>, (lo, hi): (i64, i64)| {
                        qb.push(" FROM posting_filters WHERE bucket = ").push_bind(bucket);
                        qb.push(" AND block >= ").push_bind(lo).push(" AND block <= ").push_bind(hi);
                    };
                    let mut qb = QueryBuilder::<$db>::new("");
                    for (i, r) in ranges.iter().enumerate() {
                        qb.push(if i == 0 {
                            "SELECT -1 AS block, COUNT(*) AS n"
                        } else {
                            " UNION ALL SELECT -1, COUNT(*)"
                        });
                        range(&mut qb, *r);
                    }
                    let fp = fp.to_le_bytes().to_vec();
                    for r in ranges {
                        qb.push(" UNION ALL SELECT block, 0");
                        range(&mut qb, *r);
                        if <$db as sqlx::Database>::NAME == "SQLite" {
                            qb.push(" AND (length(fps) % 2 = 1 OR instr(fps, ").push_bind(fp.clone()).push(") > 0)");
                        } else {
                            qb.push(" AND (length(fps) % 2 = 1 OR position(")
                                .push_bind(fp.clone())
                                .push(" in fps) > 0)");
                        }
                    }
                    for r in &qb.build().persistent(false).fetch_all(&self.$reader).await? {
                        match r.try_get::<i64, _>(0usize)? {
                            -1 => count += r.try_get::<i64, _>(1usize)?,
                            block => hits.push(block),
                        }
                    }
                }
                Ok((hits, count))
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
            pub(super) async fn prune_filters_after(&self, head: i64) -> Result<u64, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("DELETE FROM posting_filters WHERE block >= ");
                qb.push_bind(super::block_filters::last_full_block(head) + 1);
                Ok(qb.build().execute(&self.$writer).await?.rows_affected())
            }
        }
    };
}
pub(crate) use filter_queries;
