//! The detection thread: receives committed batches from the `Sequencer` in commit order,
//! evaluates them with an `Evaluator` (wasm runs here, never on the async runtime, so a slow
//! rule cannot stall ingest), and hands alerts and quarantine notices to the async side.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::{Evaluated, Evaluator};
use crate::rules::RuleRegistry;
use crate::store::sequencer::CommittedEvent;

/// Most events evaluated per pass (smaller batches from the sequencer are coalesced).
const COALESCE_EVENTS: usize = 8192;

/// Counters of the pipeline.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Events evaluated (passed through the rule set).
    pub processed: AtomicU64,
    /// Seq of the last processed event.
    pub last_seq: AtomicU64,
}

/// Starts the detection thread. `before` runs first on the thread (state replay).
pub fn spawn(
    registry: Arc<RuleRegistry>,
    mut committed: mpsc::UnboundedReceiver<Vec<CommittedEvent>>,
    results: mpsc::UnboundedSender<Evaluated>,
    stats: Arc<PipelineStats>,
    before: impl FnOnce(&mut Evaluator) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("vigil-detect".into()).spawn(move || {
        let mut evaluator = Evaluator::new(registry.clone());
        before(&mut evaluator);
        while let Some(mut batch) = committed.blocking_recv() {
            while batch.len() < COALESCE_EVENTS {
                match committed.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            // A bug in host code must not end detection for good: contain a panic, log it,
            // and start over with fresh instances (rule state lives in the registry).
            let evaluated = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| evaluator.evaluate(&batch)))
            {
                Ok(evaluated) => evaluated,
                Err(_) => {
                    tracing::error!(
                        events = batch.len(),
                        "Detection panicked on a batch; its events were not evaluated"
                    );
                    evaluator = Evaluator::new(registry.clone());
                    super::Evaluated::default()
                }
            };
            stats.processed.fetch_add(batch.len() as u64, Ordering::Relaxed);
            if let Some(last) = batch.last() {
                stats.last_seq.store(last.seq as u64, Ordering::Relaxed);
            }
            if (!evaluated.alerts.is_empty() || !evaluated.quarantined.is_empty()) && results.send(evaluated).is_err() {
                break;
            }
        }
        tracing::info!("Detection pipeline stopped");
    })
}
