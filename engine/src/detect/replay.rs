//! Replaying stored history through rules: at start, to rebuild rule state over the longest
//! window the active rules declare (alerts discarded, so a restart neither forgets a half-built
//! brute-force window nor re-raises old alerts); and for `vigil rules backtest`, which prints
//! the alerts a rule would have raised. Both read events decoded from `canon`, in seq order.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::Evaluator;
use crate::event::CommittedEvent;
use crate::finding::Evaluated;
use crate::store::{Store, StoreError, decode_canon};

const CHUNK: i64 = 5000;

/// Feeds stored events with `seq in [from, to]` and event time >= `since_ms` to `f`, in
/// chunks, in seq order.
pub async fn for_each_chunk(
    store: &Store,
    from: i64,
    to: i64,
    since_ms: i64,
    mut f: impl FnMut(Vec<CommittedEvent>),
) -> Result<u64, StoreError> {
    let mut next = from;
    let mut total = 0;
    while next <= to {
        let rows = store.scan_canon(next, to, CHUNK).await?;
        let Some(&(last, _)) = rows.last() else { break };
        // (An unreadable seq comes back as i64::MIN: still move on.)
        next = last.max(next) + 1;
        let mut events = Vec::with_capacity(rows.len());
        for (seq, canon) in rows {
            // A damaged row (verify names it) is skipped, not a reason to stop detection.
            let object =
                canon.first() == Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(&canon).is_ok();
            if !object {
                tracing::warn!(seq, "Skipping a stored event whose canon cannot be decoded");
                continue;
            }
            let event = CommittedEvent::from_canon(seq, canon);
            if event.flat().time_ms >= since_ms {
                events.push(event);
            }
        }
        total += events.len() as u64;
        f(events);
    }
    Ok(total)
}

/// Rebuilds rule state from the log up to `head_seq`: every event *received* within the
/// longest window before now is evaluated again (in seq order, with its own event time) and
/// the alerts are discarded. Selecting by receipt time rather than event time means a restart
/// replays what arrived recently even when producers send old or skewed timestamps.
///
/// `pending` follows the events still to replay (`vigil_detection_replay_pending_events`);
/// it is 0 when this returns, whatever the outcome.
pub async fn rebuild_state(
    store: &Store,
    evaluator: &mut Evaluator,
    head_seq: i64,
    window_ms: i64,
    pending: &AtomicU64,
) -> Result<u64, StoreError> {
    let replayed = async {
        if window_ms <= 0 || head_seq == 0 {
            return Ok(0);
        }
        let from = first_seq_received_since(store, crate::event::now_ms() - window_ms, head_seq).await?;
        pending.store((head_seq - from + 1).max(0) as u64, Ordering::Relaxed);
        for_each_chunk(store, from, head_seq, i64::MIN, |mut events| {
            let _discarded: Evaluated = evaluator.evaluate(&mut events);
            if let Some(last) = events.last() {
                pending.store((head_seq - last.seq).max(0) as u64, Ordering::Relaxed);
            }
        })
        .await
    }
    .await;
    pending.store(0, Ordering::Relaxed);
    replayed
}

/// Binary search for the first seq received at or after `since_ms` (`received_at` grows
/// with seq, up to one group commit of jitter). Returns `head_seq + 1` when none is.
async fn first_seq_received_since(store: &Store, since_ms: i64, head_seq: i64) -> Result<i64, StoreError> {
    let (mut lo, mut hi) = (1, head_seq + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let received = match store.row(mid).await? {
            Some(row) => decode_canon(row.seq, &row.canon)
                .ok()
                .and_then(|e| e.get("received_at").and_then(Value::as_i64))
                .unwrap_or(0),
            None => 0, // purged or missing: treat as old
        };
        if received >= since_ms { hi = mid } else { lo = mid + 1 }
    }
    Ok(lo)
}
