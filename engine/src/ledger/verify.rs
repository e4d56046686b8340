//! Integrity verification of a stored range: walks the log in chunks through the
//! `ChainVerifier` and checks every signed checkpoint in the range (Ed25519 signature, link
//! to the previous checkpoint, and that the log still has the signed hash at its seq, which
//! catches a rewrite that keeps the chain consistent). It also reports truncation (a head
//! behind the newest checkpoint in the database or the one this server signed last), a
//! retention floor without its purge record, and the unsigned tail. A damaged row is a
//! located failure, never an error.

use std::collections::HashMap;

use serde::Serialize;

use super::chain::{ChainVerifier, Failure, FailureKind, GENESIS, to_hash};
use crate::ledger::CheckpointJson;
use crate::ledger::keys::Verifier;
use crate::store::{Checkpoint, Store, StoreError, block_filters, postings};

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
    /// The newest signed checkpoint in the database.
    pub last_checkpoint: Option<CheckpointJson>,
    /// Rows after the newest checkpoint (not yet signed; signed within the timer period).
    pub unsigned: Option<SeqRange>,
    /// Rows below this seq were purged by retention (0: none).
    pub retention_floor: i64,
    /// Every failure (up to 1000), ascending by seq.
    pub failures: Vec<Failure>,
    /// Total failures found.
    pub failure_count: u64,
}

/// An inclusive seq range.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct SeqRange {
    /// First seq.
    pub from: i64,
    /// Last seq.
    pub to: i64,
}

fn join_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io(std::io::Error::other(format!("verify task failed: {e}")))
}

/// A chunk: its last seq, its rows, the postings of their seqs and the stored filters
/// `(block, bucket, fps)` of the blocks wholly inside it, where the backend keeps them.
struct Chunk {
    end: i64,
    /// The head read after the filters: a block full by then may have its filter.
    head_after: i64,
    rows: Vec<crate::store::StoredRow>,
    postings: Option<Vec<(i64, i64)>>,
    filters: Option<Vec<(i64, i64, Vec<u8>)>>,
}

/// The last seq of the chunk starting at `from`: about [`CHUNK`] seqs, ending at a block's
/// end (so each block's filter is checked in one chunk) or at `to`.
fn chunk_end(from: i64, to: i64) -> i64 {
    (block_filters::first_seq(postings::block(from + CHUNK)) - 1).min(to)
}

/// The blocks whose filters the chunk `from..=end` of a walk ending at `to` checks: those
/// wholly inside it (seqs start at 1: block 0 is seqs 1..=4095), and the last chunk's
/// last block, which a filter must not name when it is not full.
fn blocks_within(from: i64, end: i64, to: i64) -> std::ops::RangeInclusive<i64> {
    let from = if from <= 1 { 0 } else { from };
    let last = if end == to { postings::block(end) } else { block_filters::last_full_block(end) };
    postings::block(from + block_filters::BLOCK_LEN - 1)..=last
}

fn fetch(store: &Store, from: i64, to: i64) -> tokio::task::JoinHandle<Result<Chunk, StoreError>> {
    let store = store.clone();
    tokio::spawn(async move {
        let end = chunk_end(from, to);
        let rows = store.scan(from, end, end - from + 1).await?;
        let postings = match rows.last() {
            Some(last) => store.postings(from, last.seq).await?,
            None => None,
        };
        let blocks = blocks_within(from, end, to);
        let filters = match (&postings, blocks.is_empty()) {
            (Some(_), false) => store.block_filters(*blocks.start(), *blocks.end()).await?,
            _ => None,
        };
        // Under write load an append may fill a block (and write its filter) after the
        // walk read its head: a filter is out of place only for a block not full even now.
        let head_after = if filters.is_some() { store.head().await?.seq } else { to };
        Ok(Chunk { end, head_after, rows, postings, filters })
    })
}

/// Filter rows `(bucket, fps)` of one block.
type FilterRows = Vec<(i64, Vec<u8>)>;

/// The span filter (store/block_filters.rs) the walk expects: the block filters its rows
/// gave, block by block, for the span being walked.
#[derive(Default)]
struct SpanCheck {
    span: i64,
    blocks: i64,
    rows: FilterRows,
}

/// Every stored filter of a full block must be what its rows' columns give
/// (store/block_filters.rs): a filter that leaves out a value would hide the block's events
/// from lookups by it. A block without filter rows is probed by every lookup (nothing
/// hidden); a block whose rows are not all present and consistent is named by those rows'
/// failures already (or, under write load, was filled after the walk read its rows). A
/// filter of a block that is not full (at `head`, read after the filters) is named too
/// (lookups ignore it). The same for each span's filter, stored at its last block and
/// checked against the union of its 16 blocks' (when the walk saw all 16 whole).
fn check_filters(
    verifier: &mut ChainVerifier,
    spans: &mut SpanCheck,
    chunk: (i64, i64, i64),
    head: i64,
    rows: &[crate::store::StoredRow],
    consistent: &[bool],
    stored: Vec<(i64, i64, Vec<u8>)>,
) {
    let mut by_block: std::collections::BTreeMap<i64, (FilterRows, FilterRows)> = Default::default();
    for (block, bucket, fps) in stored {
        let (own, span) = by_block.entry(block).or_default();
        if bucket < block_filters::BUCKETS { own.push((bucket, fps)) } else { span.push((bucket, fps)) }
    }
    let last_full = block_filters::last_full_block(head);
    let none = Default::default();
    for block in blocks_within(chunk.0, chunk.1, chunk.2) {
        let (stored, span_rows) = by_block.get(&block).unwrap_or(&none);
        let first = block_filters::first_seq(block);
        let at = first.max(1);
        if block > last_full {
            if !stored.is_empty() || !span_rows.is_empty() {
                let what = format!("{} filter rows", stored.len() + span_rows.len());
                let expected = format!("no posting filter for block {block} (it is not full)");
                verifier.fail(at, FailureKind::ColumnMismatch, expected, what);
            }
            continue;
        }
        if block_filters::span_of(block) != spans.span {
            *spans = SpanCheck { span: block_filters::span_of(block), ..Default::default() };
        }
        let in_block: Vec<(&crate::store::StoredRow, &bool)> =
            rows.iter().zip(consistent).filter(|(r, _)| postings::block(r.seq) == block).collect();
        let seqs = first + block_filters::BLOCK_LEN - first.max(1);
        if in_block.len() as i64 != seqs || in_block.iter().any(|(_, ok)| !**ok) {
            continue;
        }
        let expected = block_filters::build(
            in_block.iter().flat_map(|(r, _)| postings::terms(&r.columns).map(|(_, term)| term)).collect::<Vec<_>>(),
        );
        let differences = block_filters::differences(stored, &expected);
        if let Some((bucket, what)) = differences.first() {
            verifier.fail(
                at,
                FailureKind::ColumnMismatch,
                format!("the posting filter of block {block} (seqs {at}..={}) its rows give", first + 4095),
                format!("{} bucket(s) differ; bucket {bucket}: {what}", differences.len()),
            );
        }
        spans.blocks += 1;
        spans.rows.extend(expected);
        if block != block_filters::span_end(spans.span) {
            if !span_rows.is_empty() {
                let what = format!("{} span filter rows", span_rows.len());
                let expected = format!("no span filter at block {block} (it does not end a span)");
                verifier.fail(at, FailureKind::ColumnMismatch, expected, what);
            }
            continue;
        }
        // A span the walk did not see whole (it started inside it) is not checked.
        let Some(expected) =
            (spans.blocks == block_filters::SPAN_BLOCKS).then(|| block_filters::build_span(&spans.rows)).flatten()
        else {
            continue;
        };
        let differences = block_filters::differences(span_rows, &expected);
        if let Some((bucket, what)) = differences.first() {
            let span_first = block_filters::first_seq(block + 1 - block_filters::SPAN_BLOCKS).max(1);
            verifier.fail(
                span_first,
                FailureKind::ColumnMismatch,
                format!("the span filter of seqs {span_first}..={} its rows give", first + 4095),
                format!("{} bucket(s) differ; bucket {bucket}: {what}", differences.len()),
            );
        }
    }
}

/// Every posting must be what the row's columns (checked against canon) give, and every
/// row must have its postings: a lookup served by the posting table could otherwise miss
/// an event, or a forged posting go unnoticed. Each difference is named at its seq.
/// Rows whose columns already failed (`consistent` false) and seqs with no row are named
/// already; their postings are not reported again.
fn check_postings(
    verifier: &mut ChainVerifier,
    rows: &[crate::store::StoredRow],
    consistent: &[bool],
    stored: Vec<(i64, i64)>,
) {
    use std::collections::HashSet;
    let checked: HashSet<i64> = rows.iter().zip(consistent).filter(|(_, ok)| **ok).map(|(r, _)| r.seq).collect();
    let mut actual: HashSet<(i64, i64)> = stored.into_iter().filter(|(_, seq)| checked.contains(seq)).collect();
    for row in rows.iter().filter(|r| checked.contains(&r.seq)) {
        for (field, term) in crate::store::postings::terms(&row.columns) {
            if !actual.remove(&(term, row.seq)) {
                verifier.fail(
                    row.seq,
                    FailureKind::ColumnMismatch,
                    format!("a posting for {field} (term {term}) naming seq {}", row.seq),
                    "missing from the postings table".into(),
                );
            }
        }
    }
    let mut extra: Vec<(i64, i64)> = actual.into_iter().collect();
    extra.sort_by_key(|&(term, seq)| (seq, term));
    for (term, seq) in extra {
        verifier.fail(
            seq,
            FailureKind::ColumnMismatch,
            format!("only the postings of seq {seq}'s own columns"),
            format!("a posting (term {term}) naming seq {seq} that its columns do not give"),
        );
    }
}

/// Verifies `[from, to]` (defaults: the whole log). `known` is the newest checkpoint this
/// server signed or anchored: a database behind it is truncated. Read `known` before the
/// call: the head it is compared with is read inside, after every checkpoint it is compared
/// with (under write load, the other order reports a truncation that did not happen).
// Long by design: one walk of a range (rows, postings, checkpoints, truncation, floor) whose
// steps share the running chain state; each step is a commented paragraph.
pub async fn verify(
    store: &Store,
    from: Option<i64>,
    to: Option<i64>,
    keys: &Verifier,
    known: Option<&Checkpoint>,
) -> Result<VerifyReport, StoreError> {
    verify_against(store, (from, to), keys, known, "the newest checkpoint this server signed").await
}

/// [`verify`] with `known` named `known_as` in the failures (cluster mode: a partition's
/// anchor).
pub async fn verify_against(
    store: &Store,
    (from, to): (Option<i64>, Option<i64>),
    keys: &Verifier,
    known: Option<&Checkpoint>,
    known_as: &str,
) -> Result<VerifyReport, StoreError> {
    // The newest checkpoint before the head: a checkpoint commits with or after the rows it
    // signs, so a head read after it is never behind it unless rows were taken away. Read
    // the other way round under write load, a checkpoint committed in between looked like a
    // truncation (a false `truncated` report).
    let last_checkpoint = store.last_checkpoint().await?;
    let head = store.head().await?;
    let floor = store.retention_floor().await?;
    let from = from.unwrap_or(1).max(1).max(floor + 1);
    let to = to.unwrap_or(head.seq).min(head.seq);
    let mut verifier_failures: Vec<Failure> = Vec::new();
    let prev_hash = if from == 1 {
        GENESIS
    } else if from == floor + 1 {
        // After a purge the chain starts at the checkpoint the purge ended at (signed).
        match store.checkpoint_at_or_before(floor).await? {
            Some(cp) if cp.seq == floor => to_hash(&cp.hash).unwrap_or(GENESIS),
            _ => {
                verifier_failures.push(Failure {
                    seq: floor,
                    kind: FailureKind::BadCheckpoint,
                    expected: format!("a checkpoint at the retention floor (seq {floor})"),
                    actual: "none".into(),
                });
                store.row(from).await?.and_then(|r| to_hash(&r.prev_hash)).unwrap_or(GENESIS)
            }
        }
    } else {
        match store.row(from - 1).await? {
            Some(prev) => to_hash(&prev.hash).unwrap_or(GENESIS),
            None => store.row(from).await?.and_then(|r| to_hash(&r.prev_hash)).unwrap_or(GENESIS),
        }
    };
    if floor > 0 {
        let record = format!("vigil:retention:{floor}");
        if store.find_event_ids(&[(None, record.clone())]).await?.is_empty() {
            verifier_failures.push(Failure {
                seq: floor,
                kind: FailureKind::MissingSeq,
                expected: format!("rows 1..={floor} purged by retention, recorded as event {record}"),
                actual: "no purge record: the rows were deleted some other way".into(),
            });
        }
    }
    let mut verifier = ChainVerifier::new(from, prev_hash);
    let mut spans = SpanCheck { span: -1, ..Default::default() };
    truncation(store, &head, last_checkpoint.as_ref(), known, known_as, &mut verifier_failures).await?;
    let checkpoints = if from <= to { store.checkpoints(from, to).await? } else { Vec::new() };
    let mut by_seq: HashMap<i64, Vec<usize>> = HashMap::new();
    let mut checkpoint_failures = Vec::new();
    for (i, cp) in checkpoints.iter().enumerate() {
        by_seq.entry(cp.seq).or_default().push(i);
        if let Err(why) = keys.check_in(cp, store.partition()) {
            checkpoint_failures.push((cp.seq, format!("checkpoint {} with a valid signature", cp.id), why));
        }
        if i > 0 && (cp.prev_id != checkpoints[i - 1].id || cp.id != checkpoints[i - 1].id + 1) {
            checkpoint_failures.push((
                cp.seq,
                format!("checkpoint {} right after checkpoint {}", checkpoints[i - 1].id + 1, checkpoints[i - 1].id),
                format!("checkpoint {} naming prev_checkpoint {}", cp.id, cp.prev_id),
            ));
        }
    }
    // Fetch the next chunk while the current one is hashed on a blocking thread, so the
    // database read and the hashing overlap.
    let mut pending = (from <= to).then(|| fetch(store, from, to));
    let mut pending_from = from;
    while let Some(fetching) = pending.take() {
        let Chunk { end, head_after, rows, postings, filters } = fetching.await.map_err(join_failed)??;
        if end < to {
            pending = Some(fetch(store, end + 1, to));
        }
        let chunk = (pending_from, end, to);
        pending_from = end + 1;
        if rows.is_empty() {
            continue;
        }
        let (back, back_spans, found) = tokio::task::spawn_blocking(move || {
            let (mut verifier, mut spans) = (verifier, spans);
            let mut found = Vec::new();
            let mut consistent = Vec::with_capacity(rows.len());
            for row in &rows {
                consistent.push(verifier.check(row));
                found.push((row.seq, row.hash.clone()));
            }
            if let Some(postings) = postings {
                check_postings(&mut verifier, &rows, &consistent, postings);
            }
            if let Some(filters) = filters {
                check_filters(&mut verifier, &mut spans, chunk, head_after, &rows, &consistent, filters);
            }
            (verifier, spans, found)
        })
        .await
        .map_err(join_failed)?;
        (verifier, spans) = (back, back_spans);
        for (seq, hash) in found.iter().filter(|(seq, _)| by_seq.contains_key(seq)) {
            for &i in &by_seq[seq] {
                let cp = &checkpoints[i];
                if &cp.hash != hash {
                    checkpoint_failures.push((
                        cp.seq,
                        format!(
                            "hash {} signed by checkpoint {} (rows after the previous checkpoint were rewritten)",
                            hex::encode(&cp.hash),
                            cp.id
                        ),
                        format!("hash {}", hex::encode(hash)),
                    ));
                }
            }
        }
    }
    verifier.finish(to);
    for (seq, expected, actual) in checkpoint_failures {
        verifier.fail(seq, FailureKind::BadCheckpoint, expected, actual);
    }
    for f in verifier_failures {
        verifier.fail(f.seq, f.kind, f.expected, f.actual);
    }
    let mut failures = verifier.failures;
    failures.sort_by_key(|f| f.seq);
    let signed_to = last_checkpoint.as_ref().map_or(floor, |c| c.seq);
    Ok(VerifyReport {
        status: if verifier.failure_count == 0 { "ok" } else { "failed" },
        from,
        to,
        verified: verifier.verified,
        checkpoints_checked: checkpoints.len() as u64,
        head: HeadView { seq: head.seq, hash: hex::encode(head.hash) },
        last_checkpoint: last_checkpoint.as_ref().map(CheckpointJson::from),
        unsigned: (head.seq > signed_to).then_some(SeqRange { from: signed_to + 1, to: head.seq }),
        retention_floor: floor,
        failures,
        failure_count: verifier.failure_count,
    })
}

/// A head behind the newest checkpoint (in the database, or `known`: signed by this server
/// or anchored, named by `known_as`) is truncation; so is a known checkpoint the database no
/// longer has, and one it holds differently is a bad checkpoint. Verify and the anchor
/// check at start both use it.
pub(crate) async fn truncation(
    store: &Store,
    head: &crate::store::Head,
    last: Option<&Checkpoint>,
    known: Option<&Checkpoint>,
    known_as: &str,
    out: &mut Vec<Failure>,
) -> Result<(), StoreError> {
    for (what, cp) in [("the newest checkpoint in the database", last), (known_as, known)] {
        let Some(cp) = cp else { continue };
        if head.seq < cp.seq {
            out.push(Failure {
                seq: head.seq + 1,
                kind: FailureKind::Truncated,
                expected: format!("a log up to at least seq {} ({what}, id {})", cp.seq, cp.id),
                actual: format!("the log ends at seq {}", head.seq),
            });
            break;
        }
    }
    let Some(known) = known else { return Ok(()) };
    match store.checkpoint_by_id(known.id).await? {
        Some(stored) if stored == *known => {}
        Some(stored) => out.push(Failure {
            seq: known.seq,
            kind: FailureKind::BadCheckpoint,
            expected: format!(
                "checkpoint {} as {known_as} (seq {}, hash {})",
                known.id,
                known.seq,
                hex::encode(&known.hash)
            ),
            actual: format!("seq {}, hash {}", stored.seq, hex::encode(&stored.hash)),
        }),
        None => out.push(Failure {
            seq: known.seq,
            kind: FailureKind::Truncated,
            expected: format!("checkpoint {} ({known_as})", known.id),
            actual: last.map_or("no checkpoint".into(), |l| format!("the newest checkpoint is {}", l.id)),
        }),
    }
    Ok(())
}
