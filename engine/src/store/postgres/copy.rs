//! The event rows of one append as PostgreSQL's binary `COPY` stream: one `COPY events
//! (...) FROM STDIN (FORMAT binary)` per group, inside the append's transaction (after the
//! fencing check, the append lock and the head check), instead of an `INSERT ... SELECT FROM
//! UNNEST(...)` of fifteen arrays. Each value is written once into one buffer, straight from
//! the rows (no per-column copies of every string and of the canonical bytes), and the
//! server reads the tuples without building and unpacking arrays; the table's row triggers
//! and constraints apply to `COPY` as to `INSERT`.

use super::super::StoredRow;

/// The statement; the column order is the order [`encode`] writes the fields in.
pub const COPY_EVENTS: &str = "COPY events (seq, event_id, ts, category, action, severity, outcome, organization_id, \
                               user_id, ip, request_id, ingest_key, canon, prev_hash, hash) FROM STDIN (FORMAT binary)";

/// Fields per tuple in [`COPY_EVENTS`].
const FIELDS: i16 = 15;

/// The binary `COPY` stream of `rows`: the signature, flags and header extension, one
/// tuple per row (field count, then each field as a length and its bytes, -1 for NULL:
/// `int8` big-endian, `text` as UTF-8, `bytea` raw), and the trailer.
pub fn encode(rows: &[StoredRow]) -> Vec<u8> {
    let size: usize = rows
        .iter()
        .map(|r| {
            let c = &r.columns;
            let text = [&c.organization_id, &c.user_id, &c.ip, &c.request_id, &c.ingest_key]
                .iter()
                .map(|v| v.as_deref().map_or(0, str::len))
                .sum::<usize>();
            2 + 4 * FIELDS as usize
                + 16
                + c.event_id.len()
                + c.category.len()
                + c.action.len()
                + c.severity.len()
                + c.outcome.len()
                + text
                + r.canon.len()
                + r.prev_hash.len()
                + r.hash.len()
        })
        .sum();
    let mut out = Vec::with_capacity(19 + size + 2);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    out.extend_from_slice(&0i32.to_be_bytes()); // no header extension
    for r in rows {
        let c = &r.columns;
        out.extend_from_slice(&FIELDS.to_be_bytes());
        int8(&mut out, r.seq);
        bytes(&mut out, c.event_id.as_bytes());
        int8(&mut out, c.ts);
        for v in [&c.category, &c.action, &c.severity, &c.outcome] {
            bytes(&mut out, v.as_bytes());
        }
        for v in [&c.organization_id, &c.user_id, &c.ip, &c.request_id, &c.ingest_key] {
            match v {
                Some(v) => bytes(&mut out, v.as_bytes()),
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        for v in [&r.canon, &r.prev_hash, &r.hash] {
            bytes(&mut out, v);
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// The postings of an append (store/postings.rs), after its event rows.
pub const COPY_POSTINGS: &str = "COPY postings (block, term, seq) FROM STDIN (FORMAT binary)";

/// The binary `COPY` stream of posting keys `(block, term, seq)`, in the order given.
pub fn encode_postings(keys: &[(i64, i64, i64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + keys.len() * (2 + 3 * 12) + 2);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for &(block, term, seq) in keys {
        out.extend_from_slice(&3i16.to_be_bytes());
        int8(&mut out, block);
        int8(&mut out, term);
        int8(&mut out, seq);
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

fn int8(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&v.to_be_bytes());
}

/// One field of `v.len()` bytes. A value longer than PostgreSQL's 1 GB field limit cannot be
/// an event (the request body limit is far below it); its length is clamped so the server
/// refuses the stream rather than misreading it.
fn bytes(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&i32::try_from(v.len()).unwrap_or(i32::MAX).to_be_bytes());
    out.extend_from_slice(v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::IndexedColumns;

    #[test]
    fn one_row_is_laid_out_as_postgresql_reads_binary_copy() {
        let row = StoredRow {
            seq: 7,
            canon: b"{}".to_vec(),
            prev_hash: vec![1; 2],
            hash: vec![2; 2],
            columns: IndexedColumns {
                event_id: "e".into(),
                ts: 258,
                category: "c".into(),
                action: "a".into(),
                severity: "s".into(),
                outcome: "o".into(),
                user_id: Some("u".into()),
                ..Default::default()
            },
            unreadable: Vec::new(),
        };
        let out = encode(std::slice::from_ref(&row));
        let mut want: Vec<u8> = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        want.extend_from_slice(&[0, 15]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend_from_slice(&[0, 0, 0, 1, b'e']);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2]);
        for v in [b'c', b'a', b's', b'o'] {
            want.extend_from_slice(&[0, 0, 0, 1, v]);
        }
        want.extend_from_slice(&[255, 255, 255, 255, 0, 0, 0, 1, b'u']);
        want.extend_from_slice(&[255; 12]);
        want.extend_from_slice(&[0, 0, 0, 2, b'{', b'}', 0, 0, 0, 2, 1, 1, 0, 0, 0, 2, 2, 2]);
        want.extend_from_slice(&[255, 255]);
        assert_eq!(out, want);
        assert_eq!(out.capacity(), out.len(), "the size estimate is exact");
    }

    #[test]
    fn postings_are_three_int8_fields_per_tuple() {
        let out = encode_postings(&[(1, -2, 4097)]);
        let mut want: Vec<u8> = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0, 0, 0, 8, 255, 255, 255, 255, 255, 255, 255, 254]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 16, 1]);
        want.extend_from_slice(&[255, 255]);
        assert_eq!(out, want);
        assert_eq!(out.capacity(), out.len(), "the size estimate is exact");
    }
}
