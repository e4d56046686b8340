//! The SHA-256 hash chain and the `ChainVerifier` that walks stored rows.
//!
//! `hash = SHA-256("vigil-chain-v1" || prev_hash || SHA-256(0x00 || canon))`, with the
//! `prev_hash` of seq 1 being 32 zero bytes. The verifier never rebuilds `canon` from the
//! indexed columns: it hashes the stored bytes and then checks that every indexed column
//! still equals its value inside `canon` (see `StoredRow::column_mismatches`).

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::StoredRow;

/// Domain separation tag of the chain.
pub const CHAIN_TAG: &[u8] = b"vigil-chain-v1";
/// `prev_hash` of seq 1.
pub const GENESIS: [u8; 32] = [0u8; 32];
/// Verify stops collecting failures past this many (it keeps counting rows).
pub const MAX_REPORTED_FAILURES: usize = 1000;

/// Chain hash of one event given its predecessor's hash.
pub fn chain_hash(prev_hash: &[u8; 32], canon: &[u8]) -> [u8; 32] {
    let mut leaf = Sha256::new();
    leaf.update([0u8]);
    leaf.update(canon);
    let leaf = leaf.finalize();
    let mut h = Sha256::new();
    h.update(CHAIN_TAG);
    h.update(prev_hash);
    h.update(leaf);
    h.finalize().into()
}

/// What kind of integrity failure was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The stored hash is not the hash of the stored canon and prev_hash.
    HashMismatch,
    /// The row's prev_hash is not the previous row's hash.
    ChainBreak,
    /// A seq is absent from the log.
    MissingSeq,
    /// An indexed column differs from the value inside canon.
    ColumnMismatch,
    /// A signed checkpoint does not match the log or its signature is wrong.
    BadCheckpoint,
    /// The log ends before what was signed or anchored (rows deleted from its end).
    Truncated,
}

/// One integrity failure, located by seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The seq at fault.
    pub seq: i64,
    /// What is wrong.
    pub kind: FailureKind,
    /// What verify expected (lowercase hex for hashes).
    pub expected: String,
    /// What is stored.
    pub actual: String,
}

/// Incremental verifier: feed rows in ascending seq order.
pub struct ChainVerifier {
    next_seq: i64,
    prev_hash: [u8; 32],
    /// Number of rows checked.
    pub verified: u64,
    /// Failures found (capped at [`MAX_REPORTED_FAILURES`]).
    pub failures: Vec<Failure>,
    /// Total failures, including those not reported.
    pub failure_count: u64,
    /// Hash of the last row seen (stored value).
    pub last: Option<(i64, [u8; 32])>,
}

impl ChainVerifier {
    /// Starts verifying at `from_seq`, whose predecessor has hash `prev_hash`.
    pub fn new(from_seq: i64, prev_hash: [u8; 32]) -> Self {
        Self { next_seq: from_seq, prev_hash, verified: 0, failures: Vec::new(), failure_count: 0, last: None }
    }

    /// Records a failure.
    pub fn fail(&mut self, seq: i64, kind: FailureKind, expected: String, actual: String) {
        self.failure_count += 1;
        if self.failures.len() < MAX_REPORTED_FAILURES {
            self.failures.push(Failure { seq, kind, expected, actual });
        }
    }

    /// Checks one row. After a failure the verifier resynchronises on the stored hash, so
    /// one altered row yields failures at that row only, not at every row after it.
    ///
    /// Returns whether the row's indexed columns are readable and equal their values in
    /// canon (what the indexes built from them may be compared with).
    pub fn check(&mut self, row: &StoredRow) -> bool {
        if row.seq > self.next_seq {
            for missing in self.next_seq..row.seq {
                self.fail(missing, FailureKind::MissingSeq, format!("seq {missing}"), "absent".into());
            }
        }
        let prev = to_hash(&row.prev_hash);
        let stored = to_hash(&row.hash);
        // A row whose predecessor is missing cannot be chain-checked against it.
        let predecessor_present = row.seq == self.next_seq;
        if predecessor_present && prev != Some(self.prev_hash) {
            // Both ends of the broken link: the row before (rewritten with a hash its
            // successor does not name) and this one.
            if row.seq > 1 {
                self.fail(
                    row.seq - 1,
                    FailureKind::ChainBreak,
                    format!("hash {} (prev_hash of seq {})", hex::encode(&row.prev_hash), row.seq),
                    format!("hash {}", hex::encode(self.prev_hash)),
                );
            }
            self.fail(row.seq, FailureKind::ChainBreak, hex::encode(self.prev_hash), hex::encode(&row.prev_hash));
        }
        let mut columns_ok = row.unreadable.is_empty();
        for (column, what) in &row.unreadable {
            self.fail(
                row.seq,
                FailureKind::ColumnMismatch,
                format!("{column} of its type"),
                format!("{column}: {what}"),
            );
        }
        let recomputed = chain_hash(&prev.unwrap_or(self.prev_hash), &row.canon);
        if stored != Some(recomputed) {
            self.fail(row.seq, FailureKind::HashMismatch, hex::encode(recomputed), hex::encode(&row.hash));
        }
        for (column, expected, actual) in
            row.column_mismatches().into_iter().filter(|(c, _, _)| !row.unreadable.iter().any(|(u, _)| u == c))
        {
            columns_ok = false;
            self.fail(
                row.seq,
                FailureKind::ColumnMismatch,
                format!("{column}={expected}"),
                format!("{column}={actual}"),
            );
        }
        self.prev_hash = stored.unwrap_or(recomputed);
        self.next_seq = row.seq + 1;
        self.verified += 1;
        self.last = Some((row.seq, self.prev_hash));
        columns_ok
    }

    /// Reports seqs missing at the end of the range (rows up to `to` were expected).
    pub fn finish(&mut self, to: i64) {
        if self.next_seq <= to {
            for missing in self.next_seq..=to {
                self.fail(missing, FailureKind::MissingSeq, format!("seq {missing}"), "absent".into());
            }
        }
    }
}

/// Converts a stored hash column to a fixed array (None when the length is wrong).
pub fn to_hash(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev: [u8; 32], canon: &str) -> StoredRow {
        let canon = canon.as_bytes().to_vec();
        let hash = chain_hash(&prev, &canon);
        StoredRow::from_canon(seq, canon, prev.to_vec(), hash.to_vec()).unwrap()
    }

    fn log(n: i64) -> Vec<StoredRow> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let r = row(seq, prev, &format!(
                    r#"{{"action":"login","category":"authentication","event_id":"e{seq}","mask_policy":1,"outcome":"success","received_at":1,"seq":{seq},"severity":"low","timestamp":1}}"#
                ));
                prev = to_hash(&r.hash).unwrap();
                r
            })
            .collect()
    }

    fn verify(rows: &[StoredRow], to: i64) -> ChainVerifier {
        let mut v = ChainVerifier::new(1, GENESIS);
        rows.iter().for_each(|r| {
            v.check(r);
        });
        v.finish(to);
        v
    }

    #[test]
    fn intact_log_verifies() {
        let v = verify(&log(5), 5);
        assert_eq!(v.verified, 5);
        assert!(v.failures.is_empty(), "{:?}", v.failures);
    }

    #[test]
    fn edited_canon_is_a_hash_mismatch_at_that_seq_only() {
        let mut rows = log(5);
        rows[2].canon = rows[2].canon.replace_bytes("login", "logout");
        let v = verify(&rows, 5);
        let kinds: Vec<_> = v.failures.iter().map(|f| (f.seq, f.kind)).collect();
        assert!(kinds.contains(&(3, FailureKind::HashMismatch)), "{kinds:?}");
        assert!(kinds.iter().all(|(s, _)| *s == 3), "{kinds:?}");
    }

    #[test]
    fn deleted_row_is_missing_seq() {
        let mut rows = log(5);
        rows.remove(1);
        let v = verify(&rows, 5);
        assert_eq!(v.failures.len(), 1, "{:?}", v.failures);
        assert_eq!((v.failures[0].seq, v.failures[0].kind), (2, FailureKind::MissingSeq));
    }

    #[test]
    fn truncated_tail_is_missing_seq() {
        let rows = log(5);
        let v = verify(&rows[..3], 5);
        let seqs: Vec<_> = v.failures.iter().map(|f| (f.seq, f.kind)).collect();
        assert_eq!(seqs, vec![(4, FailureKind::MissingSeq), (5, FailureKind::MissingSeq)]);
    }

    trait ReplaceBytes {
        fn replace_bytes(&self, from: &str, to: &str) -> Vec<u8>;
    }
    impl ReplaceBytes for Vec<u8> {
        fn replace_bytes(&self, from: &str, to: &str) -> Vec<u8> {
            String::from_utf8(self.clone()).unwrap().replacen(from, to, 1).into_bytes()
        }
    }
}
