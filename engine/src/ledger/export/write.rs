//! Writes a seq range of the log as an NDJSON export (`vigil-export-v1`, described in the
//! parent module) in constant memory: rows are read from the store in chunks and handed
//! to `emit` as they are encoded. `GET /v1/events/export` streams them to the client; the
//! retention archive writes them to a part file.

use crate::ledger::CheckpointJson;
use crate::ledger::chain::GENESIS;
use crate::ledger::export::{FORMAT, Line};
use crate::store::{Store, StoreError};

/// Rows read per round trip.
const CHUNK: i64 = 2000;

/// Where the lines of an export go.
pub trait ExportSink: Send {
    /// Takes a chunk of lines; false stops the export (the reader went away or the write failed).
    fn take(&mut self, bytes: Vec<u8>) -> impl Future<Output = bool> + Send;
}

/// Cluster mode: the partition a section of an export holds, and how many the cluster has
/// (both go in the section's header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// The partition.
    pub partition: u32,
    /// The cluster's partitions, when the export holds every one (None: this one only).
    pub partitions: Option<u32>,
}

/// Writes `from..=to` (the retention floor is `floor`) with `exported_at` in the header
/// (and, in cluster mode, the `section` it is); `sink` gets each chunk of lines. Returns the
/// events written.
pub async fn write_ndjson(
    store: &Store,
    (from, to): (i64, i64),
    floor: i64,
    exported_at: i64,
    section: Option<Section>,
    sink: &mut impl ExportSink,
) -> Result<u64, StoreError> {
    let prev_hash = if from <= 1 {
        GENESIS.to_vec()
    } else if let Some(row) = store.row(from - 1).await? {
        row.hash
    } else if from - 1 == floor {
        store.checkpoint_at_or_before(floor).await?.map_or(GENESIS.to_vec(), |c| c.hash)
    } else {
        GENESIS.to_vec()
    };
    let header = Line::Header {
        format: FORMAT.into(),
        from,
        to,
        prev_hash: hex::encode(&prev_hash),
        exported_at,
        partition: section.map(|s| s.partition),
        partitions: section.and_then(|s| s.partitions),
    };
    let mut out = header.to_bytes();
    // A checkpoint at from - 1 anchors the start.
    if from > 1
        && let Some(cp) = store.checkpoint_at_or_before(from - 1).await?
        && cp.seq == from - 1
    {
        out.extend(Line::Checkpoint(CheckpointJson::from(&cp)).to_bytes());
    }
    if !sink.take(out).await {
        return Ok(0);
    }
    let (mut next, mut events, mut last_seq) = (from, 0u64, from - 1);
    while next <= to {
        let rows = store.scan(next, to, CHUNK).await?;
        let Some(last) = rows.last() else { break };
        let hi = last.seq;
        let checkpoints = store.checkpoints(next, hi).await?;
        let mut cps = checkpoints.iter().peekable();
        let mut out = Vec::with_capacity(rows.len() * 700);
        for row in &rows {
            let canon = String::from_utf8_lossy(&row.canon).into_owned();
            let line = Line::Event {
                seq: row.seq,
                prev_hash: hex::encode(&row.prev_hash),
                hash: hex::encode(&row.hash),
                canon,
            };
            out.extend(line.to_bytes());
            while let Some(cp) = cps.next_if(|c| c.seq <= row.seq) {
                out.extend(Line::Checkpoint(CheckpointJson::from(cp)).to_bytes());
            }
            events += 1;
            last_seq = row.seq;
        }
        if !sink.take(out).await {
            return Ok(events);
        }
        next = hi + 1;
    }
    sink.take(Line::End { events, last_seq }.to_bytes()).await;
    Ok(events)
}
