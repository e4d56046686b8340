//! Archive parts and live exports checked as ONE chain (`vigil verify --archive ... --file
//! ...`, `vigil verify --file A --file B ...`). Each file is verified on its own by
//! [`super::PartVerifier`]; [`PartsVerifier`] then joins them in seq order: each file's
//! header must chain on the previous file's last hash (`chain_break` at its first seq
//! otherwise), a hole between two files is `missing_seq` naming the absent seqs, an
//! overlap is `chain_break`. The server's own purge records (`retention_purge`, each
//! naming the part it wrote with its SHA-256) are checked too: a part they name must be
//! present with those bytes (`missing_seq` / `hash_mismatch` at the part's first seq),
//! unless an `archive_part_expired` record says it was deleted past `keep_days`.

use serde::Serialize;

use super::part::PartOutcome;
use crate::ledger::chain::{Failure, FailureKind, MAX_REPORTED_FAILURES};
use crate::ledger::verify::SeqRange;

/// A failure and the file it was found in.
#[derive(Debug, Clone, Serialize)]
pub struct SourcedFailure {
    /// The failure.
    #[serde(flatten)]
    pub failure: Failure,
    /// The file or object (or `chain` for what lies between files).
    pub source: String,
}

/// One file of the chain.
#[derive(Debug, Clone, Serialize)]
pub struct PartSummary {
    /// File name or object key.
    pub source: String,
    /// Its header's range.
    pub from: i64,
    /// ...
    pub to: i64,
    /// Its own verification: ok, failed, unsigned.
    pub status: &'static str,
    /// Events checked.
    pub verified: u64,
    /// Its failures.
    pub failure_count: u64,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// The seq of the purge record naming this part with the same SHA-256, when seen.
    pub purge_record: Option<i64>,
}

/// The joined report.
#[derive(Debug, Clone, Serialize)]
pub struct PartsReport {
    /// `ok`, `failed`, or `unsigned` (no failure, but rows no checkpoint covers).
    pub status: &'static str,
    /// First seq of the first file.
    pub from: i64,
    /// Last seq of the last file.
    pub to: i64,
    /// Events checked in all.
    pub verified: u64,
    /// Valid checkpoints in all.
    pub checkpoints_checked: u64,
    /// Rows after the last valid checkpoint of the last file.
    pub unsigned: Option<SeqRange>,
    /// The files, in chain order.
    pub parts: Vec<PartSummary>,
    /// Ranges whose part was deleted from the archive past keep_days (by a chain record).
    pub expired: Vec<SeqRange>,
    /// Every failure (up to 1000), by seq.
    pub failures: Vec<SourcedFailure>,
    /// Total failures.
    pub failure_count: u64,
}

/// Joins verified files into one chain.
#[derive(Debug, Default)]
pub struct PartsVerifier {
    outcomes: Vec<PartOutcome>,
    unreadable: Vec<SourcedFailure>,
}

impl PartsVerifier {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one file's outcome (any order; they are joined by their first seq).
    pub fn add(&mut self, outcome: PartOutcome) {
        self.outcomes.push(outcome);
    }

    /// A part the archive lists but that cannot be read (its object is gone or refused).
    pub fn unreadable(&mut self, source: &str, from: i64, to: i64, why: &str) {
        self.unreadable.push(SourcedFailure {
            failure: Failure {
                seq: from,
                kind: FailureKind::MissingSeq,
                expected: format!("archive part {source} (seqs {from}..={to}, listed by its manifest)"),
                actual: format!("unreadable: {why}"),
            },
            source: source.to_owned(),
        });
    }

    /// Joins them.
    /// A part whose bytes are not what its manifest says (its SHA-256, size or range): a
    /// manifest that lies, or a part swapped under it; `hash_mismatch` at the manifest's
    /// first seq.
    pub fn manifest_mismatch(&mut self, source: &str, seq: i64, expected: String, actual: String) {
        self.unreadable.push(SourcedFailure {
            failure: Failure { seq, kind: FailureKind::HashMismatch, expected, actual },
            source: source.to_owned(),
        });
    }

    pub fn finish(mut self) -> PartsReport {
        self.outcomes.sort_by_key(|o| (o.report.from, o.report.to));
        let mut found = Found::default();
        for u in std::mem::take(&mut self.unreadable) {
            found.add(u.failure.seq, u.failure.kind, u.failure.expected, u.failure.actual, &u.source);
        }
        let mut parts = Vec::new();
        let mut covered: Vec<(i64, i64)> = Vec::new();
        let mut prev: Option<(i64, [u8; 32], String)> = None;
        let mut unsigned = None;
        for o in &self.outcomes {
            let r = &o.report;
            found.count += r.failure_count.saturating_sub(r.failures.len() as u64);
            for f in &r.failures {
                found.add(f.seq, f.kind, f.expected.clone(), f.actual.clone(), &o.source);
            }
            let first = r.from.max(1);
            if let Some((last, hash, source)) = &prev {
                if first == last + 1 {
                    if o.ends.prev_hash != Some(*hash) {
                        found.add(
                            first,
                            FailureKind::ChainBreak,
                            format!("prev_hash {} (hash of seq {last}, the last of {source})", hex::encode(hash)),
                            format!("prev_hash {}", o.ends.prev_hash.map(hex::encode).unwrap_or_default()),
                            &o.source,
                        );
                    }
                } else if first > last + 1 {
                    found.add(
                        last + 1,
                        FailureKind::MissingSeq,
                        format!("seqs {}..={} (between {source} and {})", last + 1, first - 1, o.source),
                        "absent: no file holds them".into(),
                        "chain",
                    );
                } else {
                    found.add(
                        first,
                        FailureKind::ChainBreak,
                        format!("seq {} next, after {source}", last + 1),
                        format!("{} starts at seq {first}: seqs {first}..={last} appear twice", o.source),
                        &o.source,
                    );
                }
            }
            if let Some((last, hash)) = o.ends.last {
                covered.push((first, last));
                prev = Some((last, hash, o.source.clone()));
            }
            if r.unsigned.is_some() {
                unsigned = r.unsigned;
            }
            parts.push(PartSummary {
                source: o.source.clone(),
                from: r.from,
                to: r.to,
                status: r.status,
                verified: r.verified,
                failure_count: r.failure_count,
                sha256: o.sha256.clone(),
                bytes: o.bytes,
                purge_record: None,
            });
        }
        // The server's purge records name every part it wrote.
        let records: Vec<_> = self.outcomes.iter().flat_map(|o| o.records.iter()).collect();
        let expired: Vec<SeqRange> = records
            .iter()
            .filter(|r| r.action == "archive_part_expired")
            .map(|r| SeqRange { from: r.from_seq, to: r.to_seq })
            .collect();
        for rec in records.iter().filter(|r| r.action == "retention_purge") {
            let named = rec.object.clone().unwrap_or_else(|| format!("seqs {}..={}", rec.from_seq, rec.to_seq));
            let matching =
                self.outcomes.iter().position(|o| (o.report.from, o.report.to) == (rec.from_seq, rec.to_seq));
            match matching {
                Some(i) => match &rec.sha256 {
                    Some(sha) if *sha != self.outcomes[i].sha256 => found.add(
                        rec.from_seq,
                        FailureKind::HashMismatch,
                        format!(
                            "archive part {named} with SHA-256 {sha} (named by the purge record at seq {})",
                            rec.seq
                        ),
                        format!("SHA-256 {} in {}", self.outcomes[i].sha256, self.outcomes[i].source),
                        &self.outcomes[i].source,
                    ),
                    _ => parts[i].purge_record = Some(rec.seq),
                },
                None if expired.iter().any(|e| (e.from, e.to) == (rec.from_seq, rec.to_seq)) => {}
                None if covers(&covered, rec.from_seq, rec.to_seq) => {}
                None => found.add(
                    rec.from_seq,
                    FailureKind::MissingSeq,
                    format!(
                        "archive part {named} (seqs {}..={}, named by the purge record at seq {})",
                        rec.from_seq, rec.to_seq, rec.seq
                    ),
                    "absent".into(),
                    "chain",
                ),
            }
        }
        let Found { mut list, count: failure_count } = found;
        list.sort_by_key(|f| f.failure.seq);
        let failures = list;
        let from = self.outcomes.first().map_or(1, |o| o.report.from);
        let to = prev.as_ref().map_or(from - 1, |p| p.0);
        PartsReport {
            status: crate::ledger::export::offline_status(failure_count, unsigned.is_some()),
            from,
            to,
            verified: self.outcomes.iter().map(|o| o.report.verified).sum(),
            checkpoints_checked: self.outcomes.iter().map(|o| o.report.checkpoints_checked).sum(),
            unsigned,
            parts,
            expired,
            failures,
            failure_count,
        }
    }
}

/// Failures found, the first [`MAX_REPORTED_FAILURES`] kept.
#[derive(Default)]
struct Found {
    list: Vec<SourcedFailure>,
    count: u64,
}

impl Found {
    fn add(&mut self, seq: i64, kind: FailureKind, expected: String, actual: String, source: &str) {
        self.count += 1;
        if self.list.len() < MAX_REPORTED_FAILURES {
            self.list
                .push(SourcedFailure { failure: Failure { seq, kind, expected, actual }, source: source.to_owned() });
        }
    }
}

/// Whether the ranges (sorted by start) cover every seq of `from..=to`.
fn covers(ranges: &[(i64, i64)], from: i64, to: i64) -> bool {
    let mut next = from;
    for (a, b) in ranges {
        if *a > next {
            break;
        }
        next = next.max(b.saturating_add(1));
        if next > to {
            return true;
        }
    }
    next > to
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn a_range_is_covered_only_when_every_seq_is_in_some_file() {
        let files = [(1, 10), (11, 20), (25, 30)];
        assert!(covers(&files, 1, 20));
        assert!(covers(&files, 5, 12));
        assert!(covers(&files, 25, 30));
        assert!(!covers(&files, 15, 26), "21..=24 are in no file");
        assert!(!covers(&files, 31, 31));
        assert!(!covers(&[], 1, 1));
        assert!(covers(&[(1, 5), (3, 9)], 2, 9), "overlapping files still cover");
    }
}
