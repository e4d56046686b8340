//! The detection slots' leases (docs/cluster.md, "Detection"): the rules are spread over a
//! fixed number of slots (a rule's slot is a hash of its name, `placement::rule_slot`), and
//! each slot's lease (`cluster_leases` row `-1 - slot`, same epochs and PostgreSQL clock as
//! a partition's) is placed over the live nodes by the same rendezvous hashing as the
//! partitions. In each round of the member loop a node renews the slots it holds (in the
//! statement renewing its partitions), releases each slot placement now puts on another
//! live node (that node takes it at its next round), and takes each slot placement puts on
//! it whose lease is free or expired. The detection thread (app/detection.rs) runs the
//! rules of the slots held here.

use std::collections::BTreeMap;

use super::ClusterMember;
use crate::cluster::placement;
use crate::store::StoreError;
use crate::store::cluster::{DetectCursor, Fence, LeaseRow, slot_lease};

/// One detection slot's cursor of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SlotCursor {
    pub partition: u32,
    /// The slot's rules have their findings recorded up to this seq (0: none yet).
    pub seq: i64,
}

/// One detection slot as this node last saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlotView {
    pub slot: u32,
    /// The lease holder (None: nobody yet, or it expired).
    pub owner: Option<String>,
    pub epoch: i64,
    /// The lease is unexpired (PostgreSQL's clock).
    pub live: bool,
    /// Where rendezvous hashing over the live nodes puts it.
    pub desired: Option<String>,
    /// Per partition, the seq up to which the slot's rules have recorded their findings.
    pub cursors: Vec<SlotCursor>,
}

/// Where detection runs: each slot's holder (`slots`). `owner`, `epoch` and `live` are
/// slot 0's (its lease is the detection lease of clusters made before slots existed).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DetectionView {
    /// Slot 0's holder (None: nobody yet, or it expired).
    pub owner: Option<String>,
    pub epoch: i64,
    pub live: bool,
    /// How many slots the cluster has (fixed at creation).
    pub slots_total: u32,
    /// Every slot, ascending.
    pub slots: Vec<SlotView>,
}

impl ClusterMember {
    /// How many detection slots the cluster has.
    pub fn detection_slots(&self) -> u32 {
        self.inner.config.detection_slots
    }

    /// The detection slots' leases this node holds now, by slot (the member loop takes,
    /// renews, hands over and drops them).
    pub fn detection_fences(&self) -> BTreeMap<u32, Fence> {
        self.inner.detection.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Detection slot 0's lease while this node holds it: one node at a time holds it (the
    /// `cluster_leases` row -1, the single detection lease before slots), so it also gates
    /// the jobs that need one runner in the cluster (forwarders).
    pub fn detection_fence(&self) -> Option<Fence> {
        self.inner.detection.lock().unwrap_or_else(|p| p.into_inner()).get(&0).cloned()
    }

    fn set_detection_fences(&self, held: BTreeMap<u32, Fence>) {
        *self.inner.detection.lock().unwrap_or_else(|p| p.into_inner()) = held;
    }

    /// Gives every held slot back (graceful leave): the slots' next holders take them at once.
    pub(super) async fn release_slots(&self) {
        let held = std::mem::take(&mut *self.inner.detection.lock().unwrap_or_else(|p| p.into_inner()));
        for (slot, f) in held {
            if let Err(e) = self.inner.store.release_lease(&f).await {
                tracing::warn!(slot, error = %e, "Could not release a detection slot's lease; it expires by itself");
            }
        }
    }

    /// Drops the held slots whose lease was not `renewed` (the member loop renews them with
    /// the partitions' leases), hands over those placement puts elsewhere, takes those it
    /// puts here; returns where detection runs.
    pub(super) async fn detection_round(
        &self,
        live: &[String],
        leases: &[LeaseRow],
        cursors: &[DetectCursor],
        renewed: &[i32],
    ) -> Result<DetectionView, StoreError> {
        let c = &self.inner.config;
        let store = &self.inner.store;
        let mut held = self.detection_fences();
        held.retain(|slot, f| {
            let kept = renewed.contains(&f.partition);
            if !kept {
                tracing::warn!(slot, epoch = f.epoch, "Lost a detection slot's lease; its rules stop on this node");
            }
            kept
        });
        let mut slots = Vec::with_capacity(c.detection_slots as usize);
        for slot in 0..c.detection_slots {
            let desired = placement::owner(live, &placement::slot_key(slot)).map(str::to_owned);
            let mine = desired.as_deref() == Some(c.node_id.as_str());
            let lease = leases.iter().find(|l| l.partition == slot_lease(slot));
            if let Some(f) = held.get(&slot).cloned() {
                if !mine && desired.is_some() {
                    tracing::info!(slot, to = ?desired, "Handing the detection slot over");
                    held.remove(&slot);
                    // Released after the detection thread's next look at the held slots at
                    // the latest, its cursor moves are refused from now on anyway.
                    self.set_detection_fences(held.clone());
                    store.release_lease(&f).await?;
                }
            } else if mine && lease.is_none_or(|l| !l.live) {
                match store.acquire_lease(slot_lease(slot), &c.node_id, c.lease_ms).await {
                    Ok(Some(f)) => {
                        tracing::info!(slot, epoch = f.epoch, "Took the detection slot; its rules run on this node");
                        held.insert(slot, f);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(slot, error = %e, "Could not take the detection slot"),
                }
            }
            let (owner, epoch, live_lease) = match (held.get(&slot), lease) {
                (Some(f), _) => (Some(f.owner.clone()), f.epoch, true),
                (None, Some(l)) => (l.owner.clone().filter(|_| l.live), l.epoch, l.live),
                (None, None) => (None, 0, false),
            };
            let cursors = (0..c.partitions)
                .map(|p| SlotCursor {
                    partition: p,
                    seq: cursors.iter().find(|k| k.slot == slot && k.partition == p).map_or(0, |k| k.seq),
                })
                .collect();
            slots.push(SlotView { slot, owner, epoch, live: live_lease, desired, cursors });
        }
        self.set_detection_fences(held);
        let first = slots.first();
        Ok(DetectionView {
            owner: first.and_then(|s| s.owner.clone()),
            epoch: first.map_or(0, |s| s.epoch),
            live: first.is_some_and(|s| s.live),
            slots_total: c.detection_slots,
            slots,
        })
    }
}
