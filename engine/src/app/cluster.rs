//! Cluster mode's start (docs/cluster.md): the node's membership (heartbeat, partition
//! leases, one fenced writer per partition it holds) and the NATS JetStream ingest path,
//! behind a forwarding sequencer handle so every service submits as on a single node.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{ClusterIngest, ClusterMember, IngestConfig, MemberConfig, WriterTemplate};
use crate::config::Config;
use crate::ledger::keys::CheckpointKeys;
use crate::ledger::sequencer::SequencerHandle;
use crate::store::Store;

/// Starts the member and the ingest path; returns the handle services submit through.
pub(super) async fn start(
    config: &Config,
    store: &Store,
    keys: &CheckpointKeys,
    security: &Arc<crate::telemetry::SecurityCounters>,
    shared_secret: &[u8],
) -> anyhow::Result<(SequencerHandle, ClusterMember)> {
    let c = &config.cluster;
    let address = if c.advertise.is_empty() { config.listen.to_string() } else { c.advertise.clone() };
    let member = ClusterMember::start(
        store.clone(),
        MemberConfig {
            database_url: config.database_url.clone(),
            node_id: c.node_id_or_hostname(),
            address,
            partitions: c.partitions,
            detection_slots: c.detection_slots,
            lease_ms: c.lease_ms,
            heartbeat_ms: c.heartbeat_ms,
            writer: WriterTemplate {
                max_group_events: config.store.max_group_events,
                checkpoint_every_events: config.store.checkpoint_every_events,
                checkpoint_every: Duration::from_secs(config.store.checkpoint_every_secs),
                keys: keys.clone(),
                clock: config.clock.clone(),
                security: security.clone(),
            },
        },
    )
    .await?;
    let ingest = ClusterIngest::start(
        member.clone(),
        IngestConfig {
            nats_urls: c.nats_urls(),
            stream_replicas: c.stream_replicas as usize,
            reply_timeout: Duration::from_secs(3),
            // Long enough for a dead writer's lease to expire and its unacknowledged groups
            // to reach the next owner.
            deadline: Duration::from_millis(c.lease_ms) + Duration::from_secs(12),
        },
        shared_secret,
    )
    .await?;
    tracing::info!(
        node = member.node_id(),
        partitions = c.partitions,
        detection_slots = c.detection_slots,
        owned = ?member.owned().await,
        "Cluster mode: member started"
    );
    Ok((SequencerHandle::forwarding(Arc::new(ingest)), member))
}
