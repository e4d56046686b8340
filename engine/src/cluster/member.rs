//! One node's membership: every `heartbeat_ms` it writes its heartbeat, reads the live nodes
//! and the leases (PostgreSQL's clock), and for each partition whose rendezvous owner it is
//! and whose lease is free or expired, takes the lease (next epoch), opens the partition's
//! store fenced by that lease and starts a `Sequencer` on it (which reads the head from the
//! database, so it continues the chain wherever the previous owner stopped). Held leases
//! are renewed; a lease that could not be renewed is dropped with its writer (its store
//! refuses every append anyway); a partition whose rendezvous owner is another live node is
//! signed, halted and released so that node need not wait for the lease to expire. The
//! detection slots' leases are placed the same way (`slots`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::event::NewEvent;
use crate::ledger::IntegrityStatus;
use crate::ledger::handoff::Handoff;
use crate::ledger::keys::CheckpointKeys;
use crate::ledger::sequencer::{Ack, Sequencer, SequencerConfig, SequencerHandle};
use crate::store::cluster::{Fence, NodeRow};
use crate::store::postgres::PgStore;
use crate::store::{Store, StoreError};

use super::placement;

mod slots;

pub use slots::{DetectionView, SlotCursor, SlotView};

/// What every partition writer of this node is built from (the node's `[store]` settings
/// and keys).
#[derive(Debug, Clone)]
pub struct WriterTemplate {
    pub max_group_events: usize,
    pub checkpoint_every_events: i64,
    pub checkpoint_every: Duration,
    pub keys: CheckpointKeys,
    pub clock: Clock,
    pub security: Arc<crate::telemetry::SecurityCounters>,
}

/// A node's cluster settings (from `[cluster]`).
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub database_url: String,
    pub node_id: String,
    pub address: String,
    pub partitions: u32,
    /// Detection slots (fixed at creation like `partitions`; docs/cluster.md, "Detection").
    pub detection_slots: u32,
    pub lease_ms: u64,
    pub heartbeat_ms: u64,
    pub writer: WriterTemplate,
}

/// A partition this node writes.
struct PartitionWriter {
    fence: Fence,
    sequencer: SequencerHandle,
    store: Store,
    handoff: Arc<Handoff>,
    /// The writer's integrity state (its newest signed checkpoint, which the loop anchors).
    status: Arc<IntegrityStatus>,
}

/// One partition as this node last saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionView {
    pub partition: u32,
    /// The lease holder (None: never taken).
    pub owner: Option<String>,
    pub epoch: i64,
    /// The lease is unexpired (PostgreSQL's clock).
    pub live: bool,
    /// Where rendezvous hashing over the live nodes puts it.
    pub desired: Option<String>,
    /// The committed head seq, when this node writes the partition.
    pub head: Option<i64>,
    /// The seq up to which every detection slot has recorded its findings (the smallest
    /// of the slots' cursors of this partition; docs/cluster.md).
    pub detect_cursor: i64,
}

/// The cluster as this node last saw it (`GET /v1/cluster`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ClusterView {
    pub node_id: String,
    pub partitions_total: u32,
    pub nodes: Vec<NodeRow>,
    pub partitions: Vec<PartitionView>,
    /// Where detection runs: each detection slot's holder and cursors (docs/cluster.md,
    /// "Detection"). Which rule is in which slot: `GET /v1/cluster` adds `rules`.
    pub detection: DetectionView,
    /// PostgreSQL's time of the last round, epoch ms (0: none yet).
    pub updated_at: i64,
    /// The last round's error, if it failed (the database unreachable...).
    pub error: Option<String>,
}

struct Inner {
    config: MemberConfig,
    store: Store,
    writers: tokio::sync::Mutex<HashMap<u32, PartitionWriter>>,
    view: std::sync::Mutex<ClusterView>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Read-only stores of the partitions (look-ups, verify, status), opened on first use.
    readers: tokio::sync::Mutex<HashMap<u32, Store>>,
    /// The detection slots' leases this node holds, by slot.
    detection: std::sync::Mutex<std::collections::BTreeMap<u32, Fence>>,
    /// The read-only store over every partition (statistics, reports), opened on first use.
    all: tokio::sync::Mutex<Option<Store>>,
    /// The partition anchors (JetStream key-value), once the ingest path opened them.
    anchors: std::sync::Mutex<Option<super::anchors::Anchors>>,
    /// Per partition, the id of the newest checkpoint this node anchored.
    anchored: tokio::sync::Mutex<HashMap<u32, i64>>,
}

/// This node's membership of the cluster; cloning shares it.
#[derive(Clone)]
pub struct ClusterMember {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMember").field("node_id", &self.inner.config.node_id).finish()
    }
}

impl ClusterMember {
    /// Creates (or checks) the cluster's shape in the database, announces this node, and
    /// starts the member loop. `store` is the base store (shared tables).
    pub async fn start(store: Store, config: MemberConfig) -> Result<Self, StoreError> {
        PgStore::init_cluster_with_slots(&config.database_url, config.partitions, config.detection_slots).await?;
        store.cluster_node_started(&config.node_id, &config.address).await?;
        let view = ClusterView {
            node_id: config.node_id.clone(),
            partitions_total: config.partitions,
            ..ClusterView::default()
        };
        let member = Self {
            inner: Arc::new(Inner {
                config,
                store,
                writers: tokio::sync::Mutex::new(HashMap::new()),
                view: std::sync::Mutex::new(view),
                task: std::sync::Mutex::new(None),
                readers: tokio::sync::Mutex::new(HashMap::new()),
                detection: std::sync::Mutex::default(),
                all: tokio::sync::Mutex::new(None),
                anchors: std::sync::Mutex::new(None),
                anchored: tokio::sync::Mutex::new(HashMap::new()),
            }),
        };
        member.tick().await;
        let looping = member.clone();
        let period = Duration::from_millis(member.inner.config.heartbeat_ms);
        let task = tokio::spawn(async move {
            let mut timer = tokio::time::interval(period);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer.tick().await;
            loop {
                timer.tick().await;
                looping.tick().await;
            }
        });
        *member.inner.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(member)
    }

    /// The database URL (partition stores are opened from it).
    pub fn database_url(&self) -> &str {
        &self.inner.config.database_url
    }

    /// A read-only store of partition `p`'s log (for look-ups, verify and status; never
    /// written through).
    pub async fn reader(&self, p: u32) -> Result<Store, StoreError> {
        let mut readers = self.inner.readers.lock().await;
        if let Some(s) = readers.get(&p) {
            return Ok(s.clone());
        }
        let s = Store::Postgres(PgStore::open_partition(&self.inner.config.database_url, p, None).await?);
        readers.insert(p, s.clone());
        Ok(s)
    }

    /// A read-only store whose `events` and `checkpoints` are every partition's (the views
    /// of `PgStore::open_all_partitions`): statistics and reports read it, so their figures
    /// sum every partition. Never written through.
    pub async fn all_partitions(&self) -> Result<Store, StoreError> {
        let mut all = self.inner.all.lock().await;
        if let Some(s) = all.as_ref() {
            return Ok(s.clone());
        }
        let s = Store::Postgres(PgStore::open_all_partitions(&self.inner.config.database_url).await?);
        *all = Some(s.clone());
        Ok(s)
    }

    /// Where the partitions' anchors are kept (the ingest path opens the bucket).
    pub fn set_anchors(&self, anchors: super::anchors::Anchors) {
        *self.inner.anchors.lock().unwrap_or_else(|p| p.into_inner()) = Some(anchors);
    }

    fn anchors(&self) -> Option<super::anchors::Anchors> {
        self.inner.anchors.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Partition `p`'s anchored checkpoint (None: no bucket or nothing anchored yet).
    pub async fn anchor(&self, p: u32) -> Result<Option<crate::store::Checkpoint>, StoreError> {
        match self.anchors() {
            Some(a) => {
                a.get(p).await.map_err(|e| StoreError::Cluster(format!("reading the anchor of partition {p}: {e}")))
            }
            None => Ok(None),
        }
    }

    /// Anchors `cp` of partition `p` unless this node already did (errors are logged: the
    /// next round tries again).
    async fn anchor_checkpoint(&self, p: u32, cp: &crate::store::Checkpoint) {
        let Some(anchors) = self.anchors() else { return };
        let mut anchored = self.inner.anchored.lock().await;
        if anchored.get(&p).is_some_and(|id| *id >= cp.id) {
            return;
        }
        match anchors.put(p, cp).await {
            Ok(_) => {
                anchored.insert(p, cp.id);
            }
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "Could not anchor the partition's checkpoint; retrying")
            }
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// How many partitions the cluster has.
    pub fn partitions(&self) -> u32 {
        self.inner.config.partitions
    }

    /// Commits a group of events of `partition` through this node's writer of it. Refused
    /// (nothing stored) when this node does not hold the partition's lease, or lost it.
    pub async fn submit(&self, partition: u32, events: Vec<NewEvent>) -> Result<Vec<Ack>, StoreError> {
        self.submit_as(partition, events, true).await
    }

    /// [`Self::submit`] for a client's events (`client`) or the server's own.
    pub async fn submit_as(&self, partition: u32, events: Vec<NewEvent>, client: bool) -> Result<Vec<Ack>, StoreError> {
        let handle = self.inner.writers.lock().await.get(&partition).map(|w| w.sequencer.clone());
        match handle {
            Some(h) if client => h.submit_client(events).await,
            Some(h) => h.submit(events).await,
            None => Err(StoreError::Cluster(format!("partition {partition} is not written by this node"))),
        }
    }

    /// Signs partition `p`'s head now when this node writes it (None: nothing new to sign,
    /// or another node writes it; that node's timer signs it).
    pub async fn checkpoint(&self, p: u32) -> Result<Option<crate::store::Checkpoint>, StoreError> {
        let handle = self.inner.writers.lock().await.get(&p).map(|w| w.sequencer.clone());
        match handle {
            Some(h) => h.checkpoint_now().await,
            None => Ok(None),
        }
    }

    /// The partitions this node writes now, ascending.
    pub async fn owned(&self) -> Vec<u32> {
        let mut owned: Vec<u32> = self.inner.writers.lock().await.keys().copied().collect();
        owned.sort_unstable();
        owned
    }

    /// The lease (fencing token) this node holds on `partition`.
    pub async fn fence(&self, partition: u32) -> Option<Fence> {
        self.inner.writers.lock().await.get(&partition).map(|w| w.fence.clone())
    }

    /// The base store (shared tables: alerts, cursors, leases).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Whether the member loop was stopped (leave, crash, or a test's `stop_loop`).
    pub fn stopped(&self) -> bool {
        self.inner.task.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// The cluster as this node last saw it.
    pub fn view(&self) -> ClusterView {
        self.inner.view.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the member loop only: no more heartbeats or renewals, but the writers stay
    /// (what a paused or cut-off process looks like to the others; tests use it to prove
    /// fencing).
    pub fn stop_loop(&self) {
        if let Some(task) = self.inner.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }

    /// Graceful leave: stops the loop, signs and halts every writer, releases its leases
    /// (the partitions' next owners take them at once).
    pub async fn leave(&self) {
        self.stop_loop();
        let writers: Vec<PartitionWriter> = self.inner.writers.lock().await.drain().map(|(_, w)| w).collect();
        for w in writers {
            self.stop_writer(w, true).await;
        }
        self.release_slots().await;
    }

    /// What `kill -9` leaves: stops the loop and the writers without signing or releasing.
    pub async fn crash(&self) {
        self.stop_loop();
        let writers: Vec<PartitionWriter> = self.inner.writers.lock().await.drain().map(|(_, w)| w).collect();
        for w in writers {
            w.sequencer.halt().await;
        }
        self.inner.detection.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    async fn stop_writer(&self, w: PartitionWriter, release: bool) {
        match w.sequencer.checkpoint_now().await {
            Ok(Some(cp)) => self.anchor_checkpoint(w.fence.partition as u32, &cp).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(partition = w.fence.partition, error = %e, "Could not sign the partition before handing it over")
            }
        }
        w.sequencer.halt().await;
        if release && let Err(e) = self.inner.store.release_lease(&w.fence).await {
            tracing::warn!(partition = w.fence.partition, error = %e, "Could not release the lease; it expires by itself");
        }
        drop(w.store);
    }

    /// One round: heartbeat, placement, leases. Errors (the database unreachable) are kept
    /// in the view and the round is tried again at the next tick. A round is given at most
    /// one lease length: a statement sent while the network was cut can wait in TCP's
    /// retransmission back-off long after the network is back, and a round that waited for
    /// it would keep this node from noticing it lost its leases and from rejoining; the
    /// abandoned statement's connection is dropped and the next round starts afresh.
    pub async fn tick(&self) {
        let limit = std::time::Duration::from_millis(self.inner.config.lease_ms.max(1000));
        let result = match tokio::time::timeout(limit, self.round()).await {
            Ok(result) => result,
            Err(_) => {
                Err(StoreError::Cluster(format!("the round took longer than the lease ({} ms)", limit.as_millis())))
            }
        };
        if let Err(e) = result {
            tracing::warn!(node = %self.inner.config.node_id, error = %e, "Cluster round failed; retrying");
            self.inner.view.lock().unwrap_or_else(|p| p.into_inner()).error = Some(e.to_string());
        }
    }

    async fn round(&self) -> Result<(), StoreError> {
        let c = &self.inner.config;
        let store = &self.inner.store;
        let now = store.cluster_heartbeat(&c.node_id, &c.address).await?;
        let mut writers = self.inner.writers.lock().await;
        // Renewals first (partitions and detection slots), in one statement: taking new
        // partitions (opening stores) may be slow, and must never let a held lease expire.
        let held: Vec<Fence> = writers.values().map(|w| w.fence.clone()).collect();
        let slots: Vec<Fence> = self.detection_fences().into_values().collect();
        let renewed = store.renew_leases(&c.node_id, &[held.as_slice(), &slots].concat(), c.lease_ms).await?;
        for f in held.iter().filter(|f| !renewed.contains(&f.partition)) {
            if let Some(w) = writers.remove(&(f.partition as u32)) {
                tracing::warn!(
                    partition = f.partition,
                    epoch = f.epoch,
                    "Lost the partition's lease; its writer stops"
                );
                w.sequencer.halt().await;
            }
        }
        let nodes = store.cluster_nodes(c.lease_ms as i64).await?;
        let live: Vec<String> = nodes.iter().filter(|n| n.live).map(|n| n.node_id.clone()).collect();
        let leases = store.cluster_leases().await?;
        let cursors = store.detect_cursors().await?;
        let detection = self.detection_round(&live, &leases, &cursors, &renewed).await?;
        let mut partitions = Vec::with_capacity(c.partitions as usize);
        for p in 0..c.partitions {
            let desired = placement::owner(&live, &placement::partition_key(p)).map(str::to_owned);
            let lease = leases.iter().find(|l| l.partition == p as i32);
            let mine = desired.as_deref() == Some(c.node_id.as_str());
            if let Some(w) = writers.remove(&p) {
                if !mine && desired.is_some() {
                    tracing::info!(partition = p, to = ?desired, "Handing the partition over");
                    self.stop_writer(w, true).await;
                } else {
                    writers.insert(p, w);
                }
            } else if mine && lease.is_none_or(|l| !l.live) {
                match self.take(p).await {
                    Ok(Some(w)) => {
                        tracing::info!(partition = p, epoch = w.fence.epoch, "Took the partition");
                        writers.insert(p, w);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(partition = p, error = %e, "Could not take the partition"),
                }
            }
            let head = writers.get(&p).map(|w| w.handoff.head.load(std::sync::atomic::Ordering::Relaxed) as i64);
            let (owner, epoch, live_lease) = match (writers.get(&p), lease) {
                (Some(w), _) => (Some(c.node_id.clone()), w.fence.epoch, true),
                (None, Some(l)) => (l.owner.clone(), l.epoch, l.live),
                (None, None) => (None, 0, false),
            };
            let detect_cursor = (0..c.detection_slots)
                .map(|s| cursors.iter().find(|k| k.slot == s && k.partition == p).map_or(0, |k| k.seq))
                .min()
                .unwrap_or(0);
            partitions.push(PartitionView {
                partition: p,
                owner,
                epoch,
                live: live_lease,
                desired,
                head,
                detect_cursor,
            });
        }
        let signed: Vec<(u32, crate::store::Checkpoint)> =
            writers.iter().filter_map(|(p, w)| w.status.last_checkpoint().map(|cp| (*p, cp))).collect();
        drop(writers);
        for (p, cp) in &signed {
            self.anchor_checkpoint(*p, cp).await;
        }
        let mut view = self.inner.view.lock().unwrap_or_else(|p| p.into_inner());
        view.nodes = nodes;
        view.partitions = partitions;
        view.detection = detection;
        view.updated_at = now;
        view.error = None;
        Ok(())
    }

    /// Takes partition `p`'s lease and starts its writer on a store fenced by it.
    async fn take(&self, p: u32) -> Result<Option<PartitionWriter>, StoreError> {
        let c = &self.inner.config;
        let Some(fence) = self.inner.store.acquire_lease(p as i32, &c.node_id, c.lease_ms).await? else {
            return Ok(None);
        };
        let started = async {
            let store = Store::Postgres(PgStore::open_partition(&c.database_url, p, Some(fence.clone())).await?);
            let handoff = Arc::new(Handoff::new(0, 0));
            let status = Arc::new(IntegrityStatus::default());
            let t = &c.writer;
            let sequencer = Sequencer::start(
                store.clone(),
                SequencerConfig {
                    max_group_events: t.max_group_events,
                    checkpoint_every_events: t.checkpoint_every_events,
                    checkpoint_every: t.checkpoint_every,
                    keys: t.keys.clone(),
                    anchor: None,
                    status: status.clone(),
                    clock: t.clock.clone(),
                    security: t.security.clone(),
                },
                None,
                handoff.clone(),
            )
            .await?;
            Ok::<_, StoreError>(PartitionWriter { fence: fence.clone(), sequencer, store, handoff, status })
        }
        .await;
        match started {
            Ok(w) => Ok(Some(w)),
            Err(e) => {
                // Give it back rather than sit on it until it expires.
                let _ = self.inner.store.release_lease(&fence).await;
                Err(e)
            }
        }
    }
}
