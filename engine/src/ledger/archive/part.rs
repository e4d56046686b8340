//! Reading one archive part (or any export) as a stream of byte chunks: lines are split
//! out in bounded memory and checked by the [`OfflineVerifier`], the bytes are hashed
//! (SHA-256) and counted, and the events' time range and the server's purge and expiry
//! records are collected on the way, for the manifest and for [`super::chain`].

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ledger::export::{FileEnds, Line, MAX_LINE_BYTES, OfflineReport, OfflineVerifier, parse_line};
use crate::ledger::keys::Verifier;

/// A chain event of the server about the archive, seen inside a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRecord {
    /// The record's own seq.
    pub seq: i64,
    /// `retention_purge` (a part written, then its rows purged) or `archive_part_expired`.
    pub action: String,
    /// The part it names: first and last seq.
    pub from_seq: i64,
    /// ...
    pub to_seq: i64,
    /// The part's SHA-256 as recorded (purge records only).
    pub sha256: Option<String>,
    /// The part's object key.
    pub object: Option<String>,
}

/// What reading one part found.
#[derive(Debug, Clone)]
pub struct PartOutcome {
    /// Where it came from (a file name or an object key).
    pub source: String,
    /// The offline verification of the part on its own.
    pub report: OfflineReport,
    /// Where it joins the chain.
    pub ends: FileEnds,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// Smallest and largest event `timestamp` (epoch ms) in it.
    pub times: Option<(i64, i64)>,
    /// The server's archive records inside it.
    pub records: Vec<ArchiveRecord>,
}

/// The fields of a canon peeked at for the time range and the archive records.
#[derive(Deserialize)]
struct CanonPeek {
    timestamp: Option<i64>,
    action: Option<String>,
    event_id: Option<String>,
    ingest_key: Option<Value>,
}

/// Streaming reader of one part: feed chunks in order, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct PartVerifier {
    source: String,
    verifier: OfflineVerifier,
    sha: Sha256,
    bytes: u64,
    line: Vec<u8>,
    overlong: bool,
    times: Option<(i64, i64)>,
    records: Vec<ArchiveRecord>,
}

impl PartVerifier {
    /// A reader of `source` trusting `keys`.
    pub fn new(source: impl Into<String>, keys: Verifier) -> Self {
        Self {
            source: source.into(),
            verifier: OfflineVerifier::new(keys),
            sha: Sha256::new(),
            bytes: 0,
            line: Vec::with_capacity(4096),
            overlong: false,
            times: None,
            records: Vec::new(),
        }
    }

    /// Events checked so far.
    pub fn verified(&self) -> u64 {
        self.verifier.verified()
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The next chunk of the part's bytes.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        self.sha.update(chunk);
        self.bytes += chunk.len() as u64;
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    self.take(&chunk[..i]);
                    self.end_line();
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.take(chunk);
                    chunk = &[];
                }
            }
        }
    }

    fn take(&mut self, piece: &[u8]) {
        if self.overlong {
            return;
        }
        if self.line.len() + piece.len() > MAX_LINE_BYTES {
            self.overlong = true;
            self.line.clear();
            return;
        }
        self.line.extend_from_slice(piece);
    }

    fn end_line(&mut self) {
        if std::mem::take(&mut self.overlong) {
            // The verifier names the seq where the over-long line stood.
            self.verifier.feed_overlong();
            return;
        }
        let line = std::mem::take(&mut self.line);
        self.verifier.feed(&line);
        self.peek(&line);
        self.line = line;
        self.line.clear();
    }

    /// Collects the time range and the archive records (the verifier already checked the line).
    fn peek(&mut self, line: &[u8]) {
        if memchr::memmem::find(line, b"\"type\":\"event\"").is_none() {
            return;
        }
        let Ok(Line::Event { seq, canon, .. }) = parse_line(line) else { return };
        let Ok(peek) = serde_json::from_str::<CanonPeek>(&canon) else { return };
        if let Some(ts) = peek.timestamp {
            self.times = Some(self.times.map_or((ts, ts), |(lo, hi)| (lo.min(ts), hi.max(ts))));
        }
        // Only the server's own events (no ingest key) with its reserved ids count.
        let ours = peek.ingest_key.as_ref().is_none_or(Value::is_null);
        let (Some(action), Some(id)) = (peek.action, peek.event_id) else { return };
        let wanted = match action.as_str() {
            "retention_purge" => id.starts_with("vigil:retention:"),
            "archive_part_expired" => id.starts_with("vigil:archive-expired:"),
            _ => false,
        };
        if !ours || !wanted {
            return;
        }
        let Ok(event) = serde_json::from_str::<Value>(&canon) else { return };
        let part = &event["details"]["archive"];
        let (Some(from_seq), Some(to_seq)) = (part["from_seq"].as_i64(), part["to_seq"].as_i64()) else { return };
        self.records.push(ArchiveRecord {
            seq,
            action,
            from_seq,
            to_seq,
            sha256: part["sha256"].as_str().map(str::to_owned),
            object: part["object"].as_str().map(str::to_owned),
        });
    }

    /// Ends the part.
    pub fn finish(mut self) -> PartOutcome {
        if !self.line.is_empty() || self.overlong {
            self.end_line();
        }
        let ends = self.verifier.ends();
        PartOutcome {
            source: self.source,
            report: self.verifier.finish(),
            ends,
            sha256: hex::encode(self.sha.finalize()),
            bytes: self.bytes,
            times: self.times,
            records: self.records,
        }
    }
}
