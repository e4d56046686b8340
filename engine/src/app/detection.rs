//! Detection in cluster mode (docs/cluster.md, "Detection"): the node holding the detection
//! lease (taken and renewed by its member loop, `cluster_leases` row -1) runs every active
//! rule over the committed events of every partition, each partition in seq order, from the
//! cursors in `cluster_detect_cursors`. A partition's cursor moves only after the findings
//! of its events are recorded, and only while the lease is current (checked in the same
//! statement). A node that takes the lease rebuilds rule state by replaying, per partition,
//! the events received within the longest rule window up to the cursor (findings
//! discarded), then continues after the cursor. Events a dead holder evaluated but whose
//! cursor it had not moved are evaluated again: their alerts fold into the open alert of the
//! same fingerprint (rule, severity, dedup key) instead of raising a new one.
//!
//! It runs on its own thread (wasm never runs on the async runtime), like the single-node
//! pipeline, and stops when the member loop stops.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::alerts::AlertService;
use crate::cluster::ClusterMember;
use crate::deploy::RuleJournal;
use crate::detect::Evaluator;
use crate::detect::pipeline::PipelineStats;
use crate::detect::replay::{for_each_chunk, rebuild_state};
use crate::event::CommittedEvent;
use crate::finding::Evaluated;
use crate::respond::DecisionService;
use crate::rules::RuleRegistry;
use crate::store::cluster::Fence;
use crate::store::{Store, StoreError};

/// Most events of one partition evaluated (and recorded) before its cursor moves.
const BATCH: i64 = 2000;
/// Pause between rounds that found nothing new, and after an error.
const IDLE: Duration = Duration::from_millis(100);

/// What the detection thread works with.
pub(super) struct ClusterDetection {
    pub member: ClusterMember,
    pub registry: Arc<RuleRegistry>,
    pub alerts: AlertService,
    pub journal: RuleJournal,
    pub decisions: DecisionService,
    pub stats: Arc<PipelineStats>,
    pub replay: bool,
    pub runtime: tokio::runtime::Handle,
}

/// The state of one tenure of the detection lease.
struct Tenure {
    fence: Fence,
    evaluator: Evaluator,
    cursors: HashMap<u32, i64>,
}

impl ClusterDetection {
    /// Starts the detection thread.
    pub(super) fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("vigil-cluster-detect".into()).spawn(move || self.run())
    }

    fn run(self) {
        let mut tenure: Option<Tenure> = None;
        while !self.member.stopped() {
            let Some(fence) = self.member.detection_fence() else {
                if tenure.take().is_some() {
                    tracing::warn!("Detection lease gone; this node stops running the rules");
                }
                std::thread::sleep(IDLE);
                continue;
            };
            if tenure.as_ref().is_none_or(|t| t.fence != fence) {
                match self.begin(fence) {
                    Ok(t) => tenure = Some(t),
                    Err(e) => {
                        tracing::warn!(error = %e, "Could not start detection under the lease; retrying");
                        tenure = None;
                        std::thread::sleep(IDLE * 5);
                        continue;
                    }
                }
            }
            let t = tenure.as_mut().expect("set above");
            match self.round(t) {
                Ok(true) => {}
                Ok(false) => std::thread::sleep(IDLE),
                Err(e) => {
                    tracing::warn!(error = %e, "Detection round failed; retrying");
                    std::thread::sleep(IDLE * 5);
                }
            }
        }
        tracing::info!("Cluster detection stopped");
    }

    fn reader(&self, p: u32) -> Result<Store, StoreError> {
        self.runtime.block_on(self.member.reader(p))
    }

    /// A new tenure: the cursors, and rule state rebuilt up to them.
    fn begin(&self, fence: Fence) -> Result<Tenure, StoreError> {
        let stored = self.runtime.block_on(self.member.store().detect_cursors())?;
        let mut cursors = HashMap::new();
        for p in 0..self.member.partitions() {
            cursors.insert(p, stored.iter().find(|(q, _)| *q == p as i32).map_or(0, |(_, s)| *s));
        }
        let mut evaluator = Evaluator::new(self.registry.clone());
        let window = evaluator.longest_window_ms();
        let mut replayed = 0;
        if self.replay && window > 0 {
            for p in 0..self.member.partitions() {
                let store = self.reader(p)?;
                replayed += self.runtime.block_on(rebuild_state(&store, &mut evaluator, cursors[&p], window))?;
            }
        }
        tracing::info!(epoch = fence.epoch, replayed, window_ms = window, cursors = ?cursors, "Detection runs on this node: rule state rebuilt, continuing from the cursors");
        Ok(Tenure { fence, evaluator, cursors })
    }

    /// One pass over the partitions: at most `BATCH` new events of each are evaluated, their
    /// findings recorded, then the cursor moved. True when anything was evaluated.
    fn round(&self, t: &mut Tenure) -> Result<bool, StoreError> {
        let mut progressed = false;
        for p in 0..self.member.partitions() {
            let store = self.reader(p)?;
            let from = t.cursors[&p] + 1;
            let head = self.runtime.block_on(store.head())?.seq;
            if head < from {
                continue;
            }
            let to = head.min(from + BATCH - 1);
            let mut events: Vec<CommittedEvent> = Vec::new();
            self.runtime.block_on(for_each_chunk(&store, from, to, i64::MIN, |chunk| events.extend(chunk)))?;
            let count = events.len();
            let evaluated = self.evaluate(t, &mut events);
            let findings = !(evaluated.alerts.is_empty()
                && evaluated.quarantined.is_empty()
                && evaluated.decisions.is_empty()
                && evaluated.refused_decisions.is_empty());
            if findings {
                self.runtime.block_on(super::writer::record(&self.alerts, &self.journal, &self.decisions, evaluated));
            }
            let moved = self.runtime.block_on(self.member.store().advance_detect_cursor(&t.fence, p as i32, to))?;
            if !moved {
                // The lease was taken over: the next holder evaluates from the stored cursor.
                return Err(StoreError::Cluster("the detection lease was lost".into()));
            }
            t.cursors.insert(p, to);
            self.stats.processed.fetch_add(count as u64, Ordering::Relaxed);
            progressed = true;
        }
        Ok(progressed)
    }

    fn evaluate(&self, t: &mut Tenure, events: &mut Vec<CommittedEvent>) -> Evaluated {
        let count = events.len();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.evaluator.evaluate(events))) {
            Ok(evaluated) => evaluated,
            Err(_) => {
                tracing::error!(events = count, "Detection panicked on a batch; its events were not evaluated");
                t.evaluator = Evaluator::new(self.registry.clone());
                Evaluated::default()
            }
        }
    }
}
