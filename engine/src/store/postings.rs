//! The posting table of the SQLite backend: how `user_id`, `ip`, `organization_id` and
//! `request_id` lookups stay fast at millions of rows without a random-key B-tree per column.
//!
//! Per-column indexes on high-cardinality values put every insert at a random place in a
//! large tree: each commit dirties (and writes to the WAL) a page per indexed value. Instead
//! every event contributes one row `(block, term, seq)` per present field to a
//! `WITHOUT ROWID` table keyed in that order, where `block = seq >> BLOCK_SHIFT` and `term`
//! is a 64-bit FNV-1a hash of the field's tag and value. New rows land in the newest block
//! only, so a commit touches a handful of pages at the right edge of the tree. A lookup
//! probes each block once for its term (`(block, term)` is a key prefix): a few
//! microseconds per block, ~250 blocks per million events.
//!
//! The table only narrows the search: a query also compares the column itself, so a hash
//! collision (or a forged posting) cannot put a wrong event in a result, and results are
//! decoded from `canon`. Verify recomputes every event's postings from its columns (which it
//! checks against `canon`) and names the seq of any posting missing or extra.

use super::IndexedColumns;

/// `block = seq >> BLOCK_SHIFT`: 4096 events per block.
pub const BLOCK_SHIFT: u32 = 12;

/// The fields served by postings, with their one-byte tags (part of the hashed term, so the
/// same value in two fields gives two terms). Never renumber: stored terms depend on them.
pub const FIELDS: [(&str, u8); 5] =
    [("organization_id", 1), ("user_id", 2), ("ip", 3), ("request_id", 4), ("ingest_key", 5)];

/// The block of a seq.
pub fn block(seq: i64) -> i64 {
    seq >> BLOCK_SHIFT
}

/// The term of `value` in the field tagged `tag`: FNV-1a 64 over the tag and the bytes.
pub fn term(tag: u8, value: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(tag).chain(value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

/// The tag of a field served by postings.
pub fn tag(field: &str) -> Option<u8> {
    FIELDS.iter().find(|(f, _)| *f == field).map(|&(_, t)| t)
}

/// The `(field, term)` postings of one event's columns.
pub fn terms(c: &IndexedColumns) -> impl Iterator<Item = (&'static str, i64)> + '_ {
    let values = [&c.organization_id, &c.user_id, &c.ip, &c.request_id, &c.ingest_key];
    FIELDS.iter().zip(values).filter_map(|(&(field, tag), v)| v.as_deref().map(|v| (field, term(tag, v))))
}

/// The posting columns of the row `seq`, each read by `text(column)` (a backfill reads
/// stored rows back this way on either backend).
pub fn columns_of(seq: i64, text: impl Fn(&str) -> Option<String>) -> (i64, IndexedColumns) {
    let c = IndexedColumns {
        organization_id: text("organization_id"),
        user_id: text("user_id"),
        ip: text("ip"),
        request_id: text("request_id"),
        ingest_key: text("ingest_key"),
        ..IndexedColumns::default()
    };
    (seq, c)
}

/// The `(block, term, seq)` keys of `rows`' postings, sorted (so they go in as runs at the
/// tree's edge) and unique (two fields of one event could hash alike).
pub fn sorted_keys<'a>(rows: impl Iterator<Item = (i64, &'a IndexedColumns)>) -> Vec<(i64, i64, i64)> {
    let mut keys: Vec<(i64, i64, i64)> =
        rows.flat_map(|(seq, c)| terms(c).map(move |(_, term)| (block(seq), term, seq))).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_stable_and_field_specific() {
        // Stored terms must never change between versions: pin a value.
        assert_eq!(term(2, "alice"), term(2, "alice"));
        assert_ne!(term(2, "alice"), term(3, "alice"));
        assert_eq!(term(1, ""), {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            h ^= 1;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            h as i64
        });
        assert_eq!(block(4095), 0);
        assert_eq!(block(4096), 1);
        let c = IndexedColumns { user_id: Some("u".into()), ip: Some("1.2.3.4".into()), ..Default::default() };
        let t: Vec<_> = terms(&c).collect();
        assert_eq!(t, vec![("user_id", term(2, "u")), ("ip", term(3, "1.2.3.4"))]);
    }
}
