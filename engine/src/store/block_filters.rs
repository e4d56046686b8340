//! Per-block filters of the posting table: how a lookup skips the blocks that do not hold
//! its value, so its cost stops growing with the number of blocks probed (issue 23's growth
//! item; measured in BENCHMARKS.md, "Lookups as the log grows").
//!
//! Without them a lookup probed `(block, term)` in every block of the log: ~10 us per block
//! on SQLite, 245 blocks at 1M events, 2,450 at 10M. When a block is full (all 4,096 seqs
//! stored) the append that fills it also writes its filter, in the same transaction: the
//! block's distinct terms split into [`BUCKETS`] buckets by their mixed hash, each bucket one
//! row `(bucket, block, fps)` of the `posting_filters` table, `fps` the sorted 16-bit
//! fingerprints of the bucket's terms (two bytes each, little-endian). A lookup reads one
//! row per block (its value's bucket: a contiguous range of the `(bucket, block)` key, ~100
//! bytes a row at W1's ~11,000 distinct terms per block), the database testing each row
//! for the fingerprint's two bytes so only the blocks that may hold it come back, and
//! probes those, plus the newest block, which is not full yet. A fingerprint
//! present by chance costs one useless probe (~1 block in 1,000 at W1), never a wrong result:
//! the query compares the column itself.
//!
//! What a damaged row can and cannot do: a missing row, or one of odd length, makes the
//! lookup probe that block (correct, slower); a row for a block that is not full is
//! ignored; an even-length row that leaves out a fingerprint would hide that
//! block's events from lookups, so verify rebuilds every full block's filter from its
//! postings (which it checks against the columns) and names the block's first seq when
//! they differ. Rows are never updated; a purge drops those of blocks wholly below the floor
//! (a block partly purged keeps a filter that is a superset: still correct), and an accepted
//! truncation drops those of the blocks it left unfull.

use super::postings;

/// Buckets per block; part of the stored format (never change it).
pub const BUCKETS: i64 = 256;

/// Seqs per block.
pub const BLOCK_LEN: i64 = 1 << postings::BLOCK_SHIFT;

/// The bucket and 16-bit fingerprint of a posting term: the top 8 and next 16 bits of the
/// term through the SplitMix64 finalizer (FNV-1a's high bits alone are not mixed enough).
pub fn key(term: i64) -> (i64, u16) {
    let mut z = term as u64;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 56) as i64, (z >> 40) as u16)
}

/// The first seq of `block`.
pub fn first_seq(block: i64) -> i64 {
    block << postings::BLOCK_SHIFT
}

/// The newest block whose seqs are all at or below `head` (-1 when none is).
pub fn last_full_block(head: i64) -> i64 {
    postings::block(head.max(-1) + 1) - 1
}

/// The filter rows `(bucket, fps)` of one full block from its terms: every bucket, empty ones
/// too (a row per bucket marks the block as filtered).
pub fn build(terms: impl IntoIterator<Item = i64>) -> Vec<(i64, Vec<u8>)> {
    let mut keys: Vec<(i64, u16)> = terms.into_iter().map(key).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut rows: Vec<(i64, Vec<u8>)> = (0..BUCKETS).map(|b| (b, Vec::new())).collect();
    for (bucket, fp) in keys {
        rows[bucket as usize].1.extend_from_slice(&fp.to_le_bytes());
    }
    rows
}

/// Blocks per span: the second level of filters. When the block that ends a span is
/// sealed, its span's filter is written too, [`SPAN_BUCKETS`] rows of the union of the 16
/// blocks' rows (stored at the span's last block, so the guards and the purge treat a span
/// row as the block it ends), and a lookup reads one span row where it read 16 block rows:
/// 156 rows at 10M events instead of 2,490.
pub const SPAN_BLOCKS: i64 = 16;

/// Buckets of a span filter, numbered after the blocks' ([`BUCKETS`]..[`BUCKETS`] +
/// `SPAN_BUCKETS`): a block bucket split by its fingerprint's top 4 bits, so a span row
/// holds about as many fingerprints as a block row and is built from the blocks' rows
/// alone (a false positive costs a scan of the span's 16 block rows: ~1 span in 100).
pub const SPAN_BUCKETS: i64 = BUCKETS << 4;

/// The span bucket of a block bucket and fingerprint.
pub fn span_bucket(bucket: i64, fp: u16) -> i64 {
    BUCKETS + ((bucket << 4) | i64::from(fp >> 12))
}

/// The span of a block, and the last block of span `span`.
pub fn span_of(block: i64) -> i64 {
    block.div_euclid(SPAN_BLOCKS)
}

/// The last block of span `span` (where its rows are stored).
pub fn span_end(span: i64) -> i64 {
    span * SPAN_BLOCKS + SPAN_BLOCKS - 1
}

/// The span filter of 16 sealed blocks from their block rows `(bucket, fps)`; None unless
/// every block bucket has exactly 16 well-formed rows (a block without its filter, or a
/// damaged one, leaves the span without one: its blocks are then read row by row).
pub fn build_span(rows: &[(i64, Vec<u8>)]) -> Option<Vec<(i64, Vec<u8>)>> {
    let mut per_bucket = vec![0usize; BUCKETS as usize];
    let mut spans: Vec<Vec<u16>> = vec![Vec::new(); SPAN_BUCKETS as usize];
    for (bucket, fps) in rows {
        if !(0..BUCKETS).contains(bucket) || !fps.len().is_multiple_of(2) {
            return None;
        }
        per_bucket[*bucket as usize] += 1;
        for pair in fps.chunks_exact(2) {
            let fp = u16::from_le_bytes([pair[0], pair[1]]);
            spans[(span_bucket(*bucket, fp) - BUCKETS) as usize].push(fp);
        }
    }
    if per_bucket.iter().any(|n| *n as i64 != SPAN_BLOCKS) {
        return None;
    }
    Some(
        spans
            .into_iter()
            .enumerate()
            .map(|(i, mut fps)| {
                fps.sort_unstable();
                fps.dedup();
                (BUCKETS + i as i64, fps.iter().flat_map(|fp| fp.to_le_bytes()).collect())
            })
            .collect(),
    )
}

/// The block ranges a lookup reads block rows of, in `lo..=hi` (full blocks only): the
/// blocks of the spans `to_read` (spans whose row may hold the value, or that have none)
/// and those after the last span that ends by `hi` (its span is not sealed yet), merged
/// where they touch.
pub fn block_ranges(lo: i64, hi: i64, to_read: &[i64]) -> Vec<(i64, i64)> {
    let sealed_hi = span_of(hi + 1) - 1;
    let mut spans: Vec<i64> = to_read.iter().copied().filter(|s| (span_of(lo)..=sealed_hi).contains(s)).collect();
    spans.sort_unstable();
    spans.dedup();
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    let tail = (sealed_hi + 1) * SPAN_BLOCKS;
    let clipped = spans.iter().map(|s| (s * SPAN_BLOCKS, span_end(*s))).chain((tail <= hi).then_some((tail, hi)));
    for (a, b) in clipped.map(|(a, b)| (a.max(lo), b.min(hi))) {
        match ranges.last_mut() {
            Some(last) if last.1 + 1 >= a => last.1 = last.1.max(b),
            _ => ranges.push((a, b)),
        }
    }
    ranges
}

/// Whether a stored row may hold `fp`: unless it is an even-length list with no two
/// bytes equal to `fp`'s (at any offset). The lookup asks the database the same question
/// (`instr` on SQLite, `position` on PostgreSQL), so only the rows that may hold the value
/// come back; a row of odd length (damaged) always may.
pub fn may_hold(fps: &[u8], fp: u16) -> bool {
    !fps.len().is_multiple_of(2) || fps.windows(2).any(|w| w == fp.to_le_bytes())
}

/// The blocks a lookup must probe in `lo..=hi`, newest first: every block past `last_full`
/// (not full: no filter applies), the full blocks whose row may hold the value (`hits`),
/// and the full blocks without a row (`unfiltered`: damaged or never written).
pub fn candidates(lo: i64, hi: i64, last_full: i64, hits: &[i64], unfiltered: &[i64]) -> Vec<i64> {
    let mut out: Vec<i64> = ((last_full + 1).max(lo)..=hi).rev().collect();
    let mut full: Vec<i64> =
        hits.iter().chain(unfiltered).copied().filter(|b| (lo..=hi.min(last_full)).contains(b)).collect();
    full.sort_unstable_by(|a, b| b.cmp(a));
    full.dedup();
    out.extend(full);
    out
}

/// The differences between the stored filter rows of one full block (or span) and those
/// its postings give, as `(bucket, what)`; empty when they agree or when the block has no
/// rows at all (an unfiltered block is probed, so nothing is hidden).
pub fn differences(stored: &[(i64, Vec<u8>)], expected: &[(i64, Vec<u8>)]) -> Vec<(i64, String)> {
    if stored.is_empty() {
        return Vec::new();
    }
    let stored: std::collections::BTreeMap<i64, &Vec<u8>> = stored.iter().map(|(b, f)| (*b, f)).collect();
    let mut out = Vec::new();
    for (bucket, fps) in expected {
        match stored.get(bucket) {
            None => out.push((*bucket, "no row".to_string())),
            Some(s) if *s != fps => {
                out.push((*bucket, format!("{} fingerprints where {} were expected", s.len() / 2, fps.len() / 2)))
            }
            Some(_) => {}
        }
    }
    let valid: std::collections::BTreeSet<i64> = expected.iter().map(|(b, _)| *b).collect();
    for bucket in stored.keys().filter(|b| !valid.contains(*b)) {
        out.push((*bucket, "a row for a bucket that does not exist".to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_filter_holds_every_term_and_rules_out_most_others() {
        let terms: Vec<i64> = (0..12_000).map(|i| postings::term(2, &format!("user-{i}"))).collect();
        let rows = build(terms.iter().copied());
        assert_eq!(rows.len(), BUCKETS as usize);
        for t in &terms {
            let (bucket, fp) = key(*t);
            assert!(may_hold(&rows[bucket as usize].1, fp));
        }
        let absent = (0..10_000)
            .filter(|i| {
                let (bucket, fp) = key(postings::term(2, &format!("other-{i}")));
                may_hold(&rows[bucket as usize].1, fp)
            })
            .count();
        // ~47 fingerprints per bucket out of 65,536: ~0.07% expected.
        assert!(absent < 50, "{absent} of 10,000 absent values passed the filter");
    }

    #[test]
    fn damaged_rows_never_hide_a_block_and_unfull_blocks_are_always_probed() {
        let (_, fp) = key(42);
        let [lo_byte, hi_byte] = fp.to_le_bytes();
        assert!(may_hold(&[1, 2, 3], fp), "odd length");
        assert!(may_hold(&[9, lo_byte, hi_byte, 9], fp), "at any offset (a false positive at worst)");
        assert!(!may_hold(&[], fp));
        // Blocks 0..=5, 4 the last full: 5 is probed whatever its row says; 2 holds the
        // value, 0 has no row; 1 and 3 rule it out.
        assert_eq!(candidates(0, 5, 4, &[2], &[0]), vec![5, 2, 0]);
        assert_eq!(candidates(0, 5, 4, &[2, 5, 9], &[0, 2]), vec![5, 2, 0]);
        assert_eq!(candidates(3, 3, 4, &[2], &[0]), Vec::<i64>::new());
        assert_eq!(last_full_block(4095), 0);
        assert_eq!(last_full_block(4094), -1);
        assert_eq!(last_full_block(0), -1);
    }

    #[test]
    fn a_span_filter_holds_every_term_of_its_blocks_and_needs_all_of_them() {
        let blocks: Vec<Vec<i64>> = (0..SPAN_BLOCKS)
            .map(|b| (0..3_000).map(|i| postings::term(2, &format!("user-{}", b * 1_000 + i))).collect())
            .collect();
        let rows: Vec<(i64, Vec<u8>)> = blocks.iter().flat_map(|terms| build(terms.iter().copied())).collect();
        let span = build_span(&rows).expect("16 whole blocks");
        assert_eq!(span.len(), SPAN_BUCKETS as usize);
        assert!(span.iter().enumerate().all(|(i, (b, _))| *b == BUCKETS + i as i64));
        for t in blocks.iter().flatten() {
            let (bucket, fp) = key(*t);
            assert!(may_hold(&span[(span_bucket(bucket, fp) - BUCKETS) as usize].1, fp));
        }
        let absent = (0..10_000)
            .filter(|i| {
                let (bucket, fp) = key(postings::term(2, &format!("other-{i}")));
                may_hold(&span[(span_bucket(bucket, fp) - BUCKETS) as usize].1, fp)
            })
            .count();
        // 48,000 distinct terms in 4,096 rows, 12 bits each: ~0.3% of absent values pass.
        assert!(absent < 60, "{absent} of 10,000 absent values passed the span filter");
        // A block row missing, or one damaged, leaves the span without a filter.
        assert!(build_span(&rows[1..]).is_none());
        let mut damaged = rows.clone();
        damaged[5].1.push(0);
        assert!(build_span(&damaged).is_none());
        assert_eq!(span_of(15), 0);
        assert_eq!(span_of(16), 1);
        assert_eq!(span_end(1), 31);
    }

    #[test]
    fn block_ranges_read_only_the_spans_that_may_hold_a_value_and_the_unsealed_tail() {
        // Blocks 0..=40: spans 0 and 1 sealed, blocks 32..=40 after them.
        assert_eq!(block_ranges(0, 40, &[]), vec![(32, 40)]);
        assert_eq!(block_ranges(0, 40, &[1]), vec![(16, 40)]);
        assert_eq!(block_ranges(0, 40, &[0]), vec![(0, 15), (32, 40)]);
        assert_eq!(block_ranges(5, 40, &[0, 0, 7]), vec![(5, 15), (32, 40)]);
        // Ending on a span's last block: no tail.
        assert_eq!(block_ranges(0, 31, &[1]), vec![(16, 31)]);
        assert_eq!(block_ranges(0, 31, &[]), Vec::<(i64, i64)>::new());
        assert_eq!(block_ranges(3, 9, &[]), vec![(3, 9)]);
    }

    #[test]
    fn differences_name_each_bucket_and_accept_an_unfiltered_block() {
        let expected = build([1, 2, 3]);
        assert!(differences(&[], &expected).is_empty());
        assert!(differences(&expected, &expected).is_empty());
        let mut forged = expected.clone();
        let (bucket, _) = key(2);
        forged[bucket as usize].1.clear();
        let diff = differences(&forged, &expected);
        assert_eq!(diff.len(), 1);
        assert_eq!(diff[0].0, bucket);
    }
}
