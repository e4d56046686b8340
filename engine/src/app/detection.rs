//! Detection in cluster mode (docs/cluster.md, "Detection"): detection is placed by rule.
//! Every rule belongs to one of the cluster's detection slots (a hash of its name,
//! `cluster::placement::rule_slot`); the member loop places each slot's lease on a live node
//! (`cluster_leases` row `-1 - slot`). This node's detection thread runs, for each slot it
//! holds, an [`Evaluator`] restricted to that slot's rules (the registry's compiled modules
//! are shared), over the committed events of every partition, each partition in seq order,
//! from the slot's cursors in `cluster_detect_cursors` (one per slot and partition).
//!
//! Each round reads every partition's head in one statement, then the new events of each
//! partition once (from the smallest cursor of the held slots with rules; a node whose held
//! slots have no rule opens no partition store) and feeds every held slot the events after
//! its own cursor; a slot's cursor moves only after its findings are recorded, and only
//! while its lease is current (checked in the same statement, one statement for all held
//! slots of a partition). A slot whose rules are none (yet) moves its cursors without
//! reading any event, so a rule deployed later starts at the events committed after its
//! deploy, as on one node.
//!
//! A node that takes a slot rebuilds the state of the slot's rules (reset first: a node may
//! get back a slot it held before) by replaying, per partition, the events received within
//! the longest window of those rules up to the slot's cursor (findings discarded), then
//! continues after the cursor. Events a previous holder evaluated but whose cursor it had
//! not moved are evaluated again: their alerts fold into the open alert of the same
//! fingerprint (rule, severity, dedup key) instead of raising a new one.
//!
//! One thread per node (wasm never runs on the async runtime), like the single-node
//! pipeline; it stops when the member loop stops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::alerts::AlertService;
use crate::cluster::ClusterMember;
use crate::cluster::placement::rule_slot;
use crate::deploy::RuleJournal;
use crate::detect::pipeline::PipelineStats;
use crate::detect::replay::{for_each_chunk, rebuild_state};
use crate::detect::{Evaluator, RuleFilter};
use crate::event::CommittedEvent;
use crate::finding::Evaluated;
use crate::respond::DecisionService;
use crate::rules::RuleRegistry;
use crate::store::cluster::Fence;
use crate::store::{Store, StoreError};

/// Most events of one partition evaluated (and recorded) before the cursors move.
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
    /// The base store's schema (partition 0's), read once.
    pub base_schema: std::sync::OnceLock<String>,
}

/// One tenure of one detection slot's lease.
struct Tenure {
    fence: Fence,
    evaluator: Evaluator,
    /// Per partition, the seq up to which the slot's findings are recorded.
    cursors: Vec<i64>,
    /// A cursor move was refused: the lease is gone; idle until the member loop drops it.
    lost: bool,
}

impl ClusterDetection {
    /// Starts the detection thread.
    pub(super) fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("vigil-cluster-detect".into()).spawn(move || self.run())
    }

    fn run(self) {
        let mut tenures: BTreeMap<u32, Tenure> = BTreeMap::new();
        while !self.member.stopped() {
            let held = self.member.detection_fences();
            tenures.retain(|slot, t| {
                let kept = held.get(slot) == Some(&t.fence);
                if !kept {
                    tracing::info!(slot, epoch = t.fence.epoch, "Detection slot gone; its rules stop on this node");
                }
                kept
            });
            let mut failed = false;
            for (slot, fence) in held {
                if tenures.contains_key(&slot) {
                    continue;
                }
                match self.begin(slot, fence) {
                    Ok(t) => {
                        tenures.insert(slot, t);
                    }
                    Err(e) => {
                        tracing::warn!(slot, error = %e, "Could not start the detection slot under its lease; retrying");
                        failed = true;
                    }
                }
            }
            if failed {
                std::thread::sleep(IDLE * 5);
            }
            if tenures.values().all(|t| t.lost) {
                std::thread::sleep(IDLE);
                continue;
            }
            match self.round(&mut tenures) {
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

    /// The evaluator of slot `slot`'s rules.
    fn evaluator(&self, slot: u32) -> Evaluator {
        let slots = self.member.detection_slots();
        let filter: RuleFilter = Arc::new(move |name: &str| rule_slot(name, slots) == slot);
        Evaluator::with_filter(self.registry.clone(), filter)
    }

    /// A new tenure of slot `slot`: its cursors, and its rules' state rebuilt up to them.
    fn begin(&self, slot: u32, fence: Fence) -> Result<Tenure, StoreError> {
        let stored = self.runtime.block_on(self.member.store().detect_cursors())?;
        let cursors: Vec<i64> = (0..self.member.partitions())
            .map(|p| stored.iter().find(|c| c.slot == slot && c.partition == p).map_or(0, |c| c.seq))
            .collect();
        let mut evaluator = self.evaluator(slot);
        let rules = evaluator.rules();
        // State this node kept from an earlier tenure is stale: the replay rebuilds it.
        let limits = self.registry.config().state_limits;
        for rule in &rules {
            *rule.state.lock().unwrap_or_else(|p| p.into_inner()) = vigil_sdk::state::StateStore::new(limits);
        }
        let window = evaluator.longest_window_ms();
        let mut replayed = 0;
        if self.replay && window > 0 {
            for (p, &cursor) in cursors.iter().enumerate() {
                let store = self.reader(p as u32)?;
                let pending = &self.stats.replay_pending;
                replayed += self.runtime.block_on(rebuild_state(&store, &mut evaluator, cursor, window, pending))?;
            }
        }
        tracing::info!(
            slot,
            epoch = fence.epoch,
            rules = rules.len(),
            replayed,
            window_ms = window,
            cursors = ?cursors,
            "Detection slot runs on this node: its rules' state rebuilt, continuing from its cursors"
        );
        Ok(Tenure { fence, evaluator, cursors, lost: false })
    }

    /// One pass over the partitions: the new events of each (at most `BATCH`, read once) are
    /// evaluated by every held slot after its own cursor, their findings recorded, then the
    /// slots' cursors moved (one statement). True when anything was evaluated.
    fn round(&self, tenures: &mut BTreeMap<u32, Tenure>) -> Result<bool, StoreError> {
        let mut progressed = false;
        let base = self.member.store();
        if self.base_schema.get().is_none() {
            let schema = self.runtime.block_on(base.base_schema())?;
            let _ = self.base_schema.set(schema);
        }
        let schema = self.base_schema.get().expect("set above");
        let heads = self.runtime.block_on(base.partition_heads(schema, self.member.partitions()))?;
        for p in 0..self.member.partitions() {
            let pi = p as usize;
            let Some(lowest) = tenures.values().filter(|t| !t.lost).map(|t| t.cursors[pi]).min() else {
                return Ok(progressed);
            };
            let head = heads[pi];
            let from = lowest + 1;
            if head < from {
                continue;
            }
            let to = head.min(from + BATCH - 1);
            // Which slots have rules now; only those need the events.
            let busy: Vec<u32> = tenures
                .iter_mut()
                .filter(|(_, t)| !t.lost && t.cursors[pi] < to)
                .filter_map(|(s, t)| (t.evaluator.rule_count() > 0).then_some(*s))
                .collect();
            let mut events: Vec<CommittedEvent> = Vec::new();
            if !busy.is_empty() {
                let store = self.reader(p)?;
                let read_from = busy.iter().map(|s| tenures[s].cursors[pi]).min().unwrap_or(lowest) + 1;
                self.runtime.block_on(for_each_chunk(&store, read_from, to, i64::MIN, |c| events.extend(c)))?;
                self.stats.processed.fetch_add(events.len() as u64, Ordering::Relaxed);
            }
            let mut moves = Vec::new();
            for (slot, t) in tenures.iter_mut().filter(|(_, t)| !t.lost && t.cursors[pi] < to) {
                if busy.contains(slot) {
                    // The events after this slot's cursor, lent and put back.
                    let at = events.partition_point(|e| e.seq <= t.cursors[pi]);
                    let mut mine = events.split_off(at);
                    let evaluated = self.evaluate(*slot, t, &mut mine);
                    events.append(&mut mine);
                    let findings = !(evaluated.alerts.is_empty()
                        && evaluated.quarantined.is_empty()
                        && evaluated.decisions.is_empty()
                        && evaluated.refused_decisions.is_empty());
                    if findings {
                        self.runtime.block_on(super::writer::record(
                            &self.alerts,
                            &self.journal,
                            &self.decisions,
                            evaluated,
                        ));
                    }
                }
                moves.push((t.fence.clone(), to));
            }
            let moved = self.runtime.block_on(self.member.store().advance_detect_cursors(p as i32, &moves))?;
            for (slot, t) in tenures.iter_mut().filter(|(_, t)| !t.lost && t.cursors[pi] < to) {
                if moved.contains(slot) {
                    t.cursors[pi] = to;
                    progressed = true;
                } else {
                    // The lease was taken over: the next holder evaluates from the stored cursor.
                    tracing::warn!(
                        slot,
                        epoch = t.fence.epoch,
                        "A detection slot's cursor move was refused: its lease is gone"
                    );
                    t.lost = true;
                }
            }
        }
        Ok(progressed)
    }

    fn evaluate(&self, slot: u32, t: &mut Tenure, events: &mut Vec<CommittedEvent>) -> Evaluated {
        let count = events.len();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.evaluator.evaluate(events))) {
            Ok(evaluated) => evaluated,
            Err(_) => {
                tracing::error!(slot, events = count, "Detection panicked on a batch; its events were not evaluated");
                t.evaluator = self.evaluator(slot);
                Evaluated::default()
            }
        }
    }
}
