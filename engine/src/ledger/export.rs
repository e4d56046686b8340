//! Exports and their offline verification.
//!
//! `GET /v1/events/export?format=ndjson` streams format `vigil-export-v1`, one JSON object
//! per line, each with a `type`:
//! - `header`: `format`, `from`, `to` (the seq range), `prev_hash` (hash of seq `from - 1`,
//!   zeros for seq 1), `exported_at`;
//! - `event`: `seq`, `prev_hash`, `hash`, and `canon`, the exact canonical bytes that were
//!   hashed, as a JSON string (they are UTF-8 JSON text);
//! - `checkpoint`: a signed checkpoint (fields of `CheckpointJson`), right after the event
//!   at its seq (and one at `from - 1` before the first event, when there is one);
//! - `end`: `events` (lines of type event written) and `last_seq`.
//!
//! [`OfflineVerifier`] (behind `vigil verify --file`) reads such a file line by line in
//! constant memory with nothing but the public key(s): every event's hash is recomputed
//! from its canon, every link checked, every checkpoint's signature and hash checked, and
//! every failure reported with its seq and kind. Rows after the last valid checkpoint are
//! reported as `unsigned` (status `unsigned`, not `ok`): nothing proves they were not
//! rewritten. CSV exports (`format=csv`) are for people, not for verification.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::CheckpointJson;
use super::keys::Verifier;
use crate::ledger::chain::{Failure, FailureKind, GENESIS, MAX_REPORTED_FAILURES, chain_hash, to_hash};
use crate::ledger::verify::SeqRange;

/// The export format name.
pub const FORMAT: &str = "vigil-export-v1";
/// Longest line the offline verifier reads (an event is at most ~70 KiB of canon).
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    /// First line.
    Header {
        /// Always [`FORMAT`].
        format: String,
        /// First seq.
        from: i64,
        /// Last seq.
        to: i64,
        /// Hash of seq `from - 1`, hex.
        prev_hash: String,
        /// When exported, epoch ms.
        exported_at: i64,
        /// Cluster mode: the partition this section of the file holds (absent on a single node).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition: Option<u32>,
        /// Cluster mode, an export of every partition: how many the cluster has (each has
        /// a section; absent when the export holds one partition only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partitions: Option<u32>,
    },
    /// A stored event.
    Event {
        seq: i64,
        /// Hash of its predecessor, hex.
        prev_hash: String,
        /// Its chain hash, hex.
        hash: String,
        /// The canonical bytes.
        canon: String,
    },
    /// A signed checkpoint.
    Checkpoint(CheckpointJson),
    /// Last line.
    End {
        /// Event lines written.
        events: u64,
        /// Seq of the last event written.
        last_seq: i64,
    },
}

impl Line {
    /// The line as NDJSON bytes (with the newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("export lines serialize");
        out.push(b'\n');
        out
    }
}

/// Parses one export line (without its newline).
pub fn parse_line(bytes: &[u8]) -> Result<Line, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Result of an offline verification.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineReport {
    /// `ok`, `failed`, or `unsigned` (no failure, but rows after the last checkpoint).
    pub status: &'static str,
    /// The range the header declares.
    pub from: i64,
    /// ...
    pub to: i64,
    /// Event lines checked.
    pub verified: u64,
    /// Checkpoints whose signature and hash held.
    pub checkpoints_checked: u64,
    /// Last seq covered by a valid checkpoint.
    pub signed_to: i64,
    /// Rows no valid checkpoint covers.
    pub unsigned: Option<SeqRange>,
    /// Every failure (up to 1000), in file order.
    pub failures: Vec<Failure>,
    /// Total failures.
    pub failure_count: u64,
}

/// Where an export joins the chain ([`OfflineVerifier::ends`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileEnds {
    /// The header's first seq.
    pub from: Option<i64>,
    /// The header's prev_hash (hash of seq `from - 1`).
    pub prev_hash: Option<[u8; 32]>,
    /// Seq and stored hash of the last event line.
    pub last: Option<(i64, [u8; 32])>,
}

/// Streaming verifier of an export; feed lines in file order, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct OfflineVerifier {
    keys: Verifier,
    /// The partition the header names (0 on a single node): checkpoints are checked for it.
    partition: u32,
    line_no: u64,
    header: Option<(i64, i64)>,
    /// The header's prev_hash (what the first event chains on).
    header_prev: Option<[u8; 32]>,
    /// Next seq expected.
    next: i64,
    /// Stored hash of the last event line (what the next prev_hash must be).
    prev: [u8; 32],
    /// Seq and stored hash of the last event line.
    last: Option<(i64, [u8; 32])>,
    last_checkpoint_id: Option<i64>,
    signed_to: i64,
    verified: u64,
    checkpoints_checked: u64,
    ended: bool,
    end_claim: Option<(u64, i64)>,
    failures: Vec<Failure>,
    failure_count: u64,
}

impl OfflineVerifier {
    /// A verifier trusting `keys`.
    pub fn new(keys: Verifier) -> Self {
        Self {
            keys,
            partition: 0,
            line_no: 0,
            header: None,
            header_prev: None,
            next: 1,
            prev: GENESIS,
            last: None,
            last_checkpoint_id: None,
            signed_to: 0,
            verified: 0,
            checkpoints_checked: 0,
            ended: false,
            end_claim: None,
            failures: Vec::new(),
            failure_count: 0,
        }
    }

    fn fail(&mut self, seq: i64, kind: FailureKind, expected: impl Into<String>, actual: impl Into<String>) {
        self.failure_count += 1;
        if self.failures.len() < MAX_REPORTED_FAILURES {
            self.failures.push(Failure { seq, kind, expected: expected.into(), actual: actual.into() });
        }
    }

    /// Events checked so far.
    pub fn verified(&self) -> u64 {
        self.verified
    }

    /// An over-long line (past [`MAX_LINE_BYTES`]) stood here: a failure at the seq expected next.
    pub fn feed_overlong(&mut self) {
        self.line_no += 1;
        let seq = self.next;
        self.fail(seq, FailureKind::HashMismatch, format!("lines of at most {MAX_LINE_BYTES} bytes"), "a longer line");
    }

    /// Where the file joins the chain: its header's first seq and prev_hash, and the seq and
    /// stored hash of its last event line (what a following file must chain on).
    pub fn ends(&self) -> FileEnds {
        FileEnds { from: self.header.map(|h| h.0), prev_hash: self.header_prev, last: self.last }
    }

    /// Checks the next line of the file (without its newline).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.line_no += 1;
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let line = match parse_line(bytes) {
            Ok(line) => line,
            Err(e) => {
                let (seq, line_no) = (self.next, self.line_no);
                self.fail(seq, FailureKind::HashMismatch, "an export line", format!("line {line_no}: {e}"));
                return;
            }
        };
        if self.ended {
            let line_no = self.line_no;
            self.fail(self.next, FailureKind::ChainBreak, "nothing after the end line", format!("line {line_no}"));
            return;
        }
        match line {
            Line::Header { format, from, to, prev_hash, partition, .. } => {
                self.partition = partition.unwrap_or(0);
                self.header(format, from, to, &prev_hash)
            }
            Line::Event { seq, prev_hash, hash, canon } => self.event(seq, &prev_hash, &hash, canon.as_bytes()),
            Line::Checkpoint(cp) => self.checkpoint(&cp),
            Line::End { events, last_seq } => {
                self.ended = true;
                self.end_claim = Some((events, last_seq));
            }
        }
    }

    fn header(&mut self, format: String, from: i64, to: i64, prev_hash: &str) {
        if self.header.is_some() || self.line_no != 1 {
            self.fail(
                self.next,
                FailureKind::ChainBreak,
                "one header, on line 1",
                format!("a header on line {}", self.line_no),
            );
            return;
        }
        if format != FORMAT {
            self.fail(from, FailureKind::HashMismatch, format!("format {FORMAT}"), format!("format {format:?}"));
        }
        let prev = hex::decode(prev_hash).ok().and_then(|b| to_hash(&b));
        match prev {
            Some(p) if from > 1 || p == GENESIS => self.prev = p,
            _ => self.fail(
                from,
                FailureKind::ChainBreak,
                "prev_hash of seq 1 is zeros",
                format!("prev_hash {prev_hash}"),
            ),
        }
        self.header = Some((from, to));
        self.header_prev = prev;
        self.next = from.max(1);
        self.signed_to = self.next - 1;
    }

    fn event(&mut self, seq: i64, prev_hex: &str, hash_hex: &str, canon: &[u8]) {
        if self.header.is_none() {
            self.header = Some((seq, seq));
            self.fail(
                seq,
                FailureKind::ChainBreak,
                "a header line first",
                format!("line {} is an event", self.line_no),
            );
            self.next = seq;
        }
        if seq < self.next {
            // Reordered or inserted: name this line's seq and the one it follows.
            let after = self.last.map_or(0, |l| l.0);
            self.fail(
                after,
                FailureKind::ChainBreak,
                format!("seq {} after seq {after}", after.saturating_add(1)),
                format!("seq {seq} after seq {after}"),
            );
            self.fail(
                seq,
                FailureKind::ChainBreak,
                format!("seq {} next", self.next),
                format!("seq {seq} again, after seq {after} (reordered or inserted)"),
            );
            return;
        }
        let gap = seq > self.next;
        if gap {
            let (first, last) = (self.next, seq.saturating_sub(1));
            for missing in first..=last.min(first.saturating_add(MAX_REPORTED_FAILURES as i64)) {
                self.fail(missing, FailureKind::MissingSeq, format!("seq {missing}"), "absent");
            }
            self.failure_count += last.saturating_sub(first).saturating_sub(MAX_REPORTED_FAILURES as i64).max(0) as u64;
        }
        let prev = hex::decode(prev_hex).ok().and_then(|b| to_hash(&b));
        let stored = hex::decode(hash_hex).ok().and_then(|b| to_hash(&b));
        if !gap && prev != Some(self.prev) {
            if let Some((last_seq, _)) = self.last {
                self.fail(
                    last_seq,
                    FailureKind::ChainBreak,
                    format!("hash {prev_hex} (prev_hash of seq {seq})"),
                    format!("hash {}", hex::encode(self.prev)),
                );
            }
            self.fail(
                seq,
                FailureKind::ChainBreak,
                hex::encode(self.prev),
                prev_hex.chars().take(64).collect::<String>(),
            );
        }
        let recomputed = chain_hash(&prev.unwrap_or(self.prev), canon);
        if stored != Some(recomputed) {
            self.fail(
                seq,
                FailureKind::HashMismatch,
                hex::encode(recomputed),
                hash_hex.chars().take(64).collect::<String>(),
            );
        }
        match serde_json::from_slice::<Value>(canon) {
            Ok(Value::Object(obj)) => {
                let in_canon = obj.get("seq").and_then(Value::as_i64);
                if in_canon != Some(seq) {
                    self.fail(
                        seq,
                        FailureKind::ColumnMismatch,
                        format!("seq={in_canon:?} in canon"),
                        format!("seq={seq}"),
                    );
                }
            }
            _ => self.fail(seq, FailureKind::HashMismatch, "canon is a JSON object", "undecodable canon"),
        }
        let hash = stored.unwrap_or(recomputed);
        self.prev = hash;
        self.last = Some((seq, hash));
        self.next = seq.saturating_add(1);
        self.verified += 1;
    }

    fn checkpoint(&mut self, json: &CheckpointJson) {
        let cp = json.to_checkpoint();
        let mut ok = true;
        if let Err(why) = self.keys.check_in(&cp, self.partition) {
            self.fail(cp.seq, FailureKind::BadCheckpoint, format!("checkpoint {} with a valid signature", cp.id), why);
            ok = false;
        }
        if let Some(prev_id) = self.last_checkpoint_id
            && (cp.prev_id != prev_id || cp.id != prev_id.saturating_add(1))
        {
            self.fail(
                cp.seq,
                FailureKind::BadCheckpoint,
                format!("checkpoint {} right after checkpoint {prev_id}", prev_id.saturating_add(1)),
                format!("checkpoint {} naming prev_checkpoint {}", cp.id, cp.prev_id),
            );
            ok = false;
        }
        self.last_checkpoint_id = Some(cp.id);
        // Its hash must be the stored hash at its seq: the last event line, or, before the
        // first event, the header's prev_hash.
        let here = match self.last {
            Some((seq, hash)) => Some((seq, hash)),
            None => self.header.map(|(from, _)| (from.max(1) - 1, self.prev)),
        };
        match here {
            Some((seq, hash)) if seq == cp.seq => {
                if cp.hash != hash {
                    self.fail(
                        cp.seq,
                        FailureKind::BadCheckpoint,
                        format!("hash {} signed by checkpoint {} (rows before it were rewritten)", json.hash, cp.id),
                        format!("hash {}", hex::encode(hash)),
                    );
                    ok = false;
                }
            }
            _ => {
                self.fail(
                    cp.seq,
                    FailureKind::BadCheckpoint,
                    format!("checkpoint {} right after the event at seq {}", cp.id, cp.seq),
                    format!("after seq {}", here.map_or(0, |h| h.0)),
                );
                ok = false;
            }
        }
        if ok {
            self.checkpoints_checked += 1;
            self.signed_to = self.signed_to.max(cp.seq);
        }
    }

    /// Ends the file; returns the report.
    pub fn finish(mut self) -> OfflineReport {
        let (from, to) = self.header.unwrap_or((1, 0));
        if self.header.is_none() {
            self.fail(1, FailureKind::Truncated, "a header line", "an empty file");
        }
        let last_seq = self.last.map_or(from.max(1) - 1, |l| l.0);
        match self.end_claim {
            None if self.header.is_some() => self.fail(
                last_seq.saturating_add(1),
                FailureKind::Truncated,
                "an end line",
                format!("the file ends after seq {last_seq} (cut short)"),
            ),
            Some((events, claimed)) if events != self.verified || claimed != last_seq => self.fail(
                last_seq.saturating_add(1),
                FailureKind::Truncated,
                format!("{events} events up to seq {claimed} (end line)"),
                format!("{} events up to seq {last_seq}", self.verified),
            ),
            _ => {}
        }
        if self.header.is_some() && last_seq < to {
            self.fail(
                last_seq.saturating_add(1),
                FailureKind::Truncated,
                format!("events up to seq {to} (header)"),
                format!("the last is seq {last_seq}"),
            );
        }
        self.failures.sort_by_key(|f| f.seq);
        let unsigned =
            (last_seq > self.signed_to).then_some(SeqRange { from: self.signed_to.saturating_add(1), to: last_seq });
        OfflineReport {
            status: offline_status(self.failure_count, unsigned.is_some()),
            from,
            to,
            verified: self.verified,
            checkpoints_checked: self.checkpoints_checked,
            signed_to: self.signed_to,
            unsigned,
            failures: self.failures,
            failure_count: self.failure_count,
        }
    }
}

/// CSV columns of `format=csv`.
pub const CSV_COLUMNS: &[&str] = &[
    "seq",
    "event_id",
    "timestamp",
    "received_at",
    "category",
    "action",
    "severity",
    "outcome",
    "organization_id",
    "user_id",
    "session_id",
    "api_key_id",
    "request_id",
    "source",
    "resource",
    "resource_type",
    "reason",
    "error_code",
    "ip",
    "user_agent",
    "geo",
    "details",
    "mask_policy",
    "ingest_key",
    "prev_hash",
    "hash",
];

/// One CSV field, quoted when needed (RFC 4180). A value a spreadsheet would run as a
/// formula (starting with `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`.
pub fn csv_field(value: &str, out: &mut String) {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let needs_quotes = formula || value.contains([',', '"', '\n', '\r']);
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    if formula {
        out.push('\'');
    }
    out.push_str(&value.replace('"', "\"\""));
    out.push('"');
}

/// One CSV record of a stored event (decoded from canon), with the newline.
pub fn csv_record(event: &Value) -> String {
    let mut out = String::with_capacity(512);
    for (i, col) in CSV_COLUMNS.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let text = match event.get(*col) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        csv_field(&text, &mut out);
    }
    out.push_str("\r\n");
    out
}

mod read;
mod sections;
#[cfg(test)]
mod tests;
mod write;

pub use read::{verify_export, verify_reader};
pub use sections::{ExportReport, PartitionFailure, PartitionSection, PartitionedReport};
pub use write::{ExportSink, Section, write_ndjson};

/// The status of an offline verification: `failed` when anything failed, else `unsigned`
/// when rows past the last signed checkpoint remain, else `ok` (`vigil verify` exits 1 / 3 / 0).
pub(crate) fn offline_status(failures: u64, unsigned: bool) -> &'static str {
    if failures > 0 {
        "failed"
    } else if unsigned {
        "unsigned"
    } else {
        "ok"
    }
}
