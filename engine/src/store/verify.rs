//! Integrity verification of a stored range: walks the log in chunks through the
//! `ChainVerifier` and checks every signed checkpoint in the range (signature, link to the
//! previous checkpoint, and that the log still has the checkpointed hash at its seq).

use std::collections::HashMap;

use serde::Serialize;

use super::chain::{ChainVerifier, Failure, FailureKind, GENESIS, to_hash};
use super::sequencer::checkpoint_signature_ok;
use super::{Store, StoreError};

/// Rows fetched per round trip.
const CHUNK: i64 = 10_000;

/// The head as reported by the API.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HeadView {
    /// Last seq.
    pub seq: i64,
    /// Its hash, lowercase hex.
    pub hash: String,
}

/// Result of `GET /v1/integrity/verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// `ok` or `failed`.
    pub status: &'static str,
    /// First seq checked.
    pub from: i64,
    /// Last seq checked.
    pub to: i64,
    /// Rows checked.
    pub verified: u64,
    /// Signed checkpoints checked.
    pub checkpoints_checked: u64,
    /// Current head of the log.
    pub head: HeadView,
    /// Every failure (up to 1000), ascending by seq.
    pub failures: Vec<Failure>,
    /// Total failures found.
    pub failure_count: u64,
}

fn join_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io(std::io::Error::other(format!("verify task failed: {e}")))
}

fn fetch(store: &Store, from: i64, to: i64) -> tokio::task::JoinHandle<Result<Vec<super::StoredRow>, StoreError>> {
    let store = store.clone();
    tokio::spawn(async move { store.scan(from, to, CHUNK).await })
}

/// Verifies `[from, to]` (defaults: the whole log).
pub async fn verify(
    store: &Store,
    from: Option<i64>,
    to: Option<i64>,
    checkpoint_key: &[u8],
) -> Result<VerifyReport, StoreError> {
    let head = store.head().await?;
    let from = from.unwrap_or(1).max(1);
    let to = to.unwrap_or(head.seq).min(head.seq);
    let prev_hash = if from == 1 {
        GENESIS
    } else {
        match store.row(from - 1).await? {
            Some(prev) => to_hash(&prev.hash).unwrap_or(GENESIS),
            None => store.row(from).await?.and_then(|r| to_hash(&r.prev_hash)).unwrap_or(GENESIS),
        }
    };
    let mut verifier = ChainVerifier::new(from, prev_hash);
    let checkpoints = if from <= to { store.checkpoints(from, to).await? } else { Vec::new() };
    let mut by_seq: HashMap<i64, Vec<usize>> = HashMap::new();
    let mut checkpoint_failures = Vec::new();
    for (i, cp) in checkpoints.iter().enumerate() {
        by_seq.entry(cp.seq).or_default().push(i);
        if !checkpoint_signature_ok(checkpoint_key, cp) {
            checkpoint_failures.push((
                cp.seq,
                format!("checkpoint {} signature valid", cp.id),
                "signature invalid".to_owned(),
            ));
        }
        if i > 0 && cp.prev_id != checkpoints[i - 1].id {
            checkpoint_failures.push((
                cp.seq,
                format!("checkpoint {} prev_checkpoint={}", cp.id, checkpoints[i - 1].id),
                format!("prev_checkpoint={}", cp.prev_id),
            ));
        }
    }
    // Fetch the next chunk while the current one is hashed on a blocking thread, so the
    // database read and the hashing overlap.
    let mut pending = (from <= to).then(|| fetch(store, from, to));
    while let Some(fetching) = pending.take() {
        let rows = fetching.await.map_err(join_failed)??;
        let Some(last) = rows.last() else { break };
        if last.seq < to {
            pending = Some(fetch(store, last.seq + 1, to));
        }
        let (back, found) = tokio::task::spawn_blocking(move || {
            let mut verifier = verifier;
            let mut found = Vec::new();
            for row in &rows {
                verifier.check(row);
                found.push((row.seq, row.hash.clone()));
            }
            (verifier, found)
        })
        .await
        .map_err(join_failed)?;
        verifier = back;
        for (seq, hash) in found.iter().filter(|(seq, _)| by_seq.contains_key(seq)) {
            for &i in &by_seq[seq] {
                let cp = &checkpoints[i];
                if &cp.hash != hash {
                    checkpoint_failures.push((
                        cp.seq,
                        format!("checkpoint {} hash={}", cp.id, hex::encode(&cp.hash)),
                        format!("hash={}", hex::encode(hash)),
                    ));
                }
            }
        }
    }
    verifier.finish(to);
    for (seq, expected, actual) in checkpoint_failures {
        verifier.fail(seq, FailureKind::BadCheckpoint, expected, actual);
    }
    let mut failures = verifier.failures;
    failures.sort_by_key(|f| f.seq);
    Ok(VerifyReport {
        status: if verifier.failure_count == 0 { "ok" } else { "failed" },
        from,
        to,
        verified: verifier.verified,
        checkpoints_checked: checkpoints.len() as u64,
        head: HeadView { seq: head.seq, hash: hex::encode(head.hash) },
        failures,
        failure_count: verifier.failure_count,
    })
}
