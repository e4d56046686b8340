//! The detection thread: receives committed batches from the `Sequencer` in commit order,
//! evaluates them with an `Evaluator` (wasm runs here, never on the async runtime, so a slow
//! rule cannot stall ingest), and hands alerts and quarantine notices to the async side.
//!
//! The hand-off queue is bounded and the sequencer never waits on it: when it is full the
//! sequencer skips the batch, and this thread, seeing the gap in seqs, reads the skipped
//! events back from the store before going on. Every committed event is evaluated exactly
//! once, in seq order, whatever the rules cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::Evaluator;
use super::replay::for_each_chunk;
use crate::event::CommittedEvent;
use crate::finding::Evaluated;
use crate::ledger::handoff::Handoff;
use crate::rules::RuleRegistry;
use crate::store::Store;

/// Most events evaluated per pass (smaller batches from the sequencer are coalesced).
const COALESCE_EVENTS: usize = 8192;

/// Counters of the pipeline.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Events evaluated (passed through the rule set).
    pub processed: AtomicU64,
    /// Seq of the last processed event.
    pub last_seq: AtomicU64,
    /// Events read back from the store because the hand-off queue was full.
    pub caught_up: AtomicU64,
    /// Stored events the rule-state replay at start has yet to evaluate (0 once done, or
    /// when there is none); events committed meanwhile wait behind it.
    pub replay_pending: AtomicU64,
}

/// What the detection thread works with.
pub struct Pipeline {
    /// Active rules.
    pub registry: Arc<RuleRegistry>,
    /// Committed batches, in commit order (some may have been skipped when full).
    pub committed: mpsc::Receiver<Vec<CommittedEvent>>,
    /// Where alerts and quarantines go.
    pub results: mpsc::UnboundedSender<Evaluated>,
    /// Counters (`last_seq` must start at the head the sequencer started from).
    pub stats: Arc<PipelineStats>,
    /// The store, to read back skipped events.
    pub store: Store,
    /// The async runtime, to run store reads from this thread.
    pub runtime: tokio::runtime::Handle,
    /// The sequencer's committed head (to catch up on skipped trailing batches when idle).
    pub handoff: Arc<Handoff>,
}

/// How long the thread waits for a batch before checking for skipped trailing ones.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

impl Pipeline {
    /// Starts the detection thread. `before` runs first on the thread (state replay).
    pub fn spawn(
        self,
        before: impl FnOnce(&mut Evaluator) + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("vigil-detect".into()).spawn(move || self.run(before))
    }

    fn run(mut self, before: impl FnOnce(&mut Evaluator)) {
        let mut evaluator = Evaluator::new(self.registry.clone());
        before(&mut evaluator);
        let mut held: Option<Vec<CommittedEvent>> = None;
        loop {
            let mut batch = match held.take() {
                Some(batch) => batch,
                // The timer must be created inside the runtime, hence the async block.
                None => {
                    match self.runtime.block_on(async { tokio::time::timeout(IDLE_CHECK, self.committed.recv()).await })
                    {
                        Ok(Some(batch)) => {
                            self.handoff.release(&batch);
                            batch
                        }
                        Ok(None) => break,
                        Err(_idle) => {
                            // Nothing queued: if the sequencer skipped the last batches, read them now.
                            let head = self.handoff.head.load(Ordering::Relaxed) as i64;
                            let last = self.stats.last_seq.load(Ordering::Relaxed) as i64;
                            if head > last && !self.catch_up(&mut evaluator, last + 1, head) {
                                break;
                            }
                            continue;
                        }
                    }
                }
            };
            // Coalesce batches that follow on without a gap.
            while batch.len() < COALESCE_EVENTS {
                match self.committed.try_recv() {
                    Ok(more) if more.first().map(|e| e.seq) == batch.last().map(|e| e.seq + 1) => {
                        self.handoff.release(&more);
                        batch.extend(more);
                    }
                    Ok(more) => {
                        self.handoff.release(&more);
                        held = Some(more);
                        break;
                    }
                    Err(_) => break,
                }
            }
            // Events already read back from the store by an idle catch-up are not evaluated twice.
            let last = self.stats.last_seq.load(Ordering::Relaxed) as i64;
            batch.retain(|e| e.seq > last);
            let Some(first) = batch.first().map(|e| e.seq) else { continue };
            if first > last + 1 && !self.catch_up(&mut evaluator, last + 1, first - 1) {
                break;
            }
            if !self.evaluate(&mut evaluator, &mut batch) {
                break;
            }
        }
        tracing::info!("Detection pipeline stopped");
    }

    /// Reads `[from, to]` back from the store and evaluates it. False when results can no
    /// longer be delivered.
    ///
    /// A read that fails (the database is down, a read error) is retried with backoff from
    /// the first event not yet evaluated, until it succeeds or the server stops: skipped
    /// events are evaluated late, never silently not at all.
    fn catch_up(&self, evaluator: &mut Evaluator, from: i64, to: i64) -> bool {
        tracing::warn!(from, to, "Detection queue was full; evaluating the skipped events from the store");
        let mut delivered = true;
        let mut start = from;
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            let read = self.runtime.block_on(for_each_chunk(&self.store, start, to, i64::MIN, |mut events| {
                self.stats.caught_up.fetch_add(events.len() as u64, Ordering::Relaxed);
                delivered &= self.evaluate(evaluator, &mut events);
            }));
            let Err(e) = read else { return delivered };
            if !delivered || self.results.is_closed() {
                return false;
            }
            start = start.max(self.stats.last_seq.load(Ordering::Relaxed) as i64 + 1);
            if start > to {
                return delivered;
            }
            tracing::warn!(error = %e, from = start, to, "Could not read skipped events back; retrying");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
        }
    }

    /// Evaluates one run of consecutive events. False when results can no longer be delivered.
    fn evaluate(&self, evaluator: &mut Evaluator, batch: &mut Vec<CommittedEvent>) -> bool {
        // A bug in host code must not end detection for good: contain a panic, log it, and
        // start over with fresh instances (rule state lives in the registry, but a rule's
        // state lent to its instance when the panic struck is lost with the instance).
        let (count, last) = (batch.len(), batch.last().map(|e| e.seq));
        let evaluated = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| evaluator.evaluate(batch))) {
            Ok(evaluated) => evaluated,
            Err(_) => {
                tracing::error!(events = count, "Detection panicked on a batch; its events were not evaluated");
                *evaluator = Evaluator::new(self.registry.clone());
                Evaluated::default()
            }
        };
        self.stats.processed.fetch_add(count as u64, Ordering::Relaxed);
        if let Some(last) = last {
            self.stats.last_seq.store(last as u64, Ordering::Relaxed);
        }
        evaluated.alerts.is_empty()
            && evaluated.quarantined.is_empty()
            && evaluated.decisions.is_empty()
            && evaluated.refused_decisions.is_empty()
            || self.results.send(evaluated).is_ok()
    }
}
