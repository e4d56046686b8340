//! Cluster mode's start (docs/cluster.md): the node's membership (heartbeat, partition
//! leases, one fenced writer per partition it holds) and the NATS JetStream ingest path,
//! behind a forwarding sequencer handle so every service submits as on a single node.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{ClusterIngest, ClusterMember, DECISIONS_SUBJECT, IngestConfig, MemberConfig, WriterTemplate};
use crate::config::Config;
use crate::ledger::keys::CheckpointKeys;
use crate::ledger::sequencer::SequencerHandle;
use crate::store::Store;

/// Starts the member and the ingest path; returns the handle services submit through, the
/// member and the ingest path (its NATS connection carries notices and the stream state).
pub(super) async fn start(
    config: &Config,
    store: &Store,
    keys: &CheckpointKeys,
    security: &Arc<crate::telemetry::SecurityCounters>,
    shared_secret: &[u8],
) -> anyhow::Result<(SequencerHandle, ClusterMember, ClusterIngest)> {
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
    Ok((SequencerHandle::forwarding(Arc::new(ingest.clone())), member, ingest))
}

/// Decision changes pushed (docs/cluster.md): after each change this node commits, a notice
/// on `vigil.decisions`; on each notice (any node's), this node's follower re-reads the
/// shared change feed at once. The follower's poll stays as the fallback.
pub(super) async fn push_decisions(ingest: &ClusterIngest, decisions: &crate::respond::DecisionService) {
    let publisher = ingest.clone();
    decisions.on_change(move || {
        let publisher = publisher.clone();
        tokio::spawn(async move { publisher.publish_notice(DECISIONS_SUBJECT).await });
    });
    let follower = decisions.clone();
    ingest.follow_notices(DECISIONS_SUBJECT, move || follower.wake_follow()).await;
}
