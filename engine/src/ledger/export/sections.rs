//! A cluster's export (`GET /v1/events/export` in cluster mode): one section per partition,
//! each a complete `vigil-export-v1` file of that partition's chain (header naming
//! `partition` and `partitions`, events, checkpoints, end line), in ascending partition
//! order. [`SectionVerifier`] checks each section as its own chain with an
//! [`OfflineVerifier`] (checkpoints signed for its partition), and the file as a whole:
//! every partition the header declares has exactly one section. A file without partition
//! headers (a single node's) is one section, reported exactly as before.

use serde::Serialize;

use super::{Line, OfflineReport, OfflineVerifier, offline_status, parse_line};
use crate::ledger::chain::{Failure, FailureKind, MAX_REPORTED_FAILURES};
use crate::ledger::keys::Verifier;

/// What `vigil verify --file` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ExportReport {
    /// A single node's export (one log).
    Log(OfflineReport),
    /// A cluster's export (a section per partition).
    Partitioned(PartitionedReport),
}

impl ExportReport {
    /// `ok`, `failed` or `unsigned`.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Log(r) => r.status,
            Self::Partitioned(r) => r.status,
        }
    }
}

/// The report of a cluster's export.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionedReport {
    /// `failed` when any section failed (or one is missing), else `unsigned` when any
    /// section has rows no checkpoint covers, else `ok`.
    pub status: &'static str,
    /// The cluster's partitions, as the headers declare.
    pub partitions_declared: Option<u32>,
    /// Event lines checked, every section.
    pub verified: u64,
    /// Checkpoints whose signature and hash held, every section.
    pub checkpoints_checked: u64,
    /// Every failure (up to 1000), each naming its partition.
    pub failures: Vec<PartitionFailure>,
    /// Total failures.
    pub failure_count: u64,
    /// Each section's report, in file order.
    pub partitions: Vec<PartitionSection>,
}

/// One section's report.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionSection {
    /// The partition its header names (None: lines before any partition header).
    pub partition: Option<u32>,
    /// The section's own report.
    #[serde(flatten)]
    pub report: OfflineReport,
}

/// A failure and the partition it is in.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionFailure {
    /// The partition (None: outside any partition's section).
    pub partition: Option<u32>,
    /// The failure (seq of that partition).
    #[serde(flatten)]
    pub failure: Failure,
}

/// Streaming verifier of an export of one or more sections.
#[derive(Debug)]
pub(super) struct SectionVerifier {
    keys: Verifier,
    /// The section being read: its partition and verifier.
    current: Option<(Option<u32>, OfflineVerifier)>,
    done: Vec<(Option<u32>, OfflineReport)>,
    /// Whether any header named a partition.
    partitioned: bool,
    declared: Option<u32>,
    verified_before: u64,
}

impl SectionVerifier {
    pub(super) fn new(keys: Verifier) -> Self {
        Self { keys, current: None, done: Vec::new(), partitioned: false, declared: None, verified_before: 0 }
    }

    /// Events checked so far.
    pub(super) fn verified(&self) -> u64 {
        self.verified_before + self.current.as_ref().map_or(0, |c| c.1.verified())
    }

    pub(super) fn feed_overlong(&mut self) {
        self.section(None).feed_overlong();
    }

    pub(super) fn feed(&mut self, bytes: &[u8]) {
        // A partition's header starts a new section (the writer puts `type` first).
        let header = if bytes.starts_with(br#"{"type":"header""#) { parse_line(bytes).ok() } else { None };
        if let Some(Line::Header { partition: Some(p), partitions, .. }) = header {
            self.partitioned = true;
            self.declared = self.declared.or(partitions);
            self.close();
            self.current = Some((Some(p), OfflineVerifier::new(self.keys.clone())));
        }
        self.section(None).feed(bytes);
    }

    fn section(&mut self, partition: Option<u32>) -> &mut OfflineVerifier {
        let keys = &self.keys;
        &mut self.current.get_or_insert_with(|| (partition, OfflineVerifier::new(keys.clone()))).1
    }

    fn close(&mut self) {
        if let Some((p, v)) = self.current.take() {
            self.verified_before += v.verified();
            self.done.push((p, v.finish()));
        }
    }

    pub(super) fn finish(mut self) -> ExportReport {
        self.close();
        if !self.partitioned {
            let report = self.done.pop().map_or_else(|| OfflineVerifier::new(self.keys.clone()).finish(), |d| d.1);
            return ExportReport::Log(report);
        }
        let mut sections: Vec<PartitionSection> =
            self.done.into_iter().map(|(partition, report)| PartitionSection { partition, report }).collect();
        // Every declared partition exactly once.
        let mut seen = std::collections::BTreeSet::new();
        for s in &mut sections {
            let Some(p) = s.partition else { continue };
            let duplicate = !seen.insert(p);
            let outside = self.declared.is_some_and(|n| p >= n);
            if duplicate || outside {
                let why = if duplicate {
                    format!("partition {p}'s section again")
                } else {
                    format!("a section of partition {p}, past the {} partitions declared", self.declared.unwrap_or(0))
                };
                fail(&mut s.report, 0, FailureKind::ChainBreak, "one section per partition", why);
            }
        }
        for p in 0..self.declared.unwrap_or(0) {
            if !seen.contains(&p) {
                let mut report = OfflineVerifier::new(Verifier::default()).finish();
                report.failures.clear();
                report.failure_count = 0;
                fail(&mut report, 1, FailureKind::Truncated, format!("the section of partition {p}"), "absent");
                sections.push(PartitionSection { partition: Some(p), report });
            }
        }
        let mut failures = Vec::new();
        let (mut verified, mut checked, mut count, mut unsigned) = (0, 0, 0, false);
        for s in &sections {
            verified += s.report.verified;
            checked += s.report.checkpoints_checked;
            count += s.report.failure_count;
            unsigned |= s.report.unsigned.is_some();
            for f in &s.report.failures {
                if failures.len() < MAX_REPORTED_FAILURES {
                    failures.push(PartitionFailure { partition: s.partition, failure: f.clone() });
                }
            }
        }
        ExportReport::Partitioned(PartitionedReport {
            status: offline_status(count, unsigned),
            partitions_declared: self.declared,
            verified,
            checkpoints_checked: checked,
            failures,
            failure_count: count,
            partitions: sections,
        })
    }
}

fn fail(
    report: &mut OfflineReport,
    seq: i64,
    kind: FailureKind,
    expected: impl Into<String>,
    actual: impl Into<String>,
) {
    report.failure_count += 1;
    report.failures.insert(0, Failure { seq, kind, expected: expected.into(), actual: actual.into() });
    report.status = "failed";
}
