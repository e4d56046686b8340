//! What the cluster's NATS side shows and carries besides ingest: the state of the stream
//! and each partition's consumer lag for `GET /v1/cluster` (kept for a second, so the
//! endpoint costs at most one round of JetStream info requests per second), and the core
//! NATS notices a node publishes after a change other nodes follow (decisions: each node
//! re-reads the shared change feed in PostgreSQL at once instead of at its next poll).
//!
//! A notice carries nothing but its subject: a node that receives one only reads the feed
//! in PostgreSQL, which is the truth, so a lost notice costs one poll period and a forged
//! one costs one read.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::ingest::{ClusterIngest, STREAM};

/// The subject of decision-change notices.
pub const DECISIONS_SUBJECT: &str = "vigil.decisions";

/// How long a stream state is served before it is asked for again.
const STATE_TTL: Duration = Duration::from_secs(1);

impl ClusterIngest {
    /// Publishes a notice on `subject` (core NATS, fire and forget: a lost one is covered
    /// by the followers' poll).
    pub async fn publish_notice(&self, subject: &'static str) {
        let (client, _) = self.nats();
        if let Err(e) = client.publish(subject, bytes::Bytes::new()).await {
            tracing::debug!(subject, error = %e, "Could not publish a cluster notice; the followers' poll covers it");
        }
    }

    /// Calls `on_notice` for every notice on `subject` (including this node's own), until
    /// the connection ends for good.
    pub async fn follow_notices(&self, subject: &'static str, on_notice: impl Fn() + Send + 'static) {
        let (client, _) = self.nats();
        let mut sub = match client.subscribe(subject).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(subject, error = %e, "Could not subscribe to cluster notices; following by polling only");
                return;
            }
        };
        tokio::spawn(async move {
            while sub.next().await.is_some() {
                on_notice();
            }
        });
    }

    /// The stream `VIGIL_EVENTS` (messages, bytes, first and last seq, replicas and leader
    /// when JetStream is clustered) and, per partition, its durable consumer's lag: the
    /// groups not yet delivered (`pending`) plus those delivered and not yet acknowledged
    /// (`ack_pending`: being committed), i.e. the groups published but not yet committed.
    /// Cached for a second. An error (NATS unreachable) is reported in the value.
    pub async fn stream_state(&self) -> Value {
        let mut cached = self.stream_state_cache().lock().await;
        if let Some((at, v)) = cached.as_ref()
            && at.elapsed() < STATE_TTL
        {
            return v.clone();
        }
        let v = match self.read_stream_state().await {
            Ok(v) => v,
            Err(e) => json!({"name": STREAM, "error": e, "partitions": []}),
        };
        *cached = Some((Instant::now(), v.clone()));
        v
    }

    async fn read_stream_state(&self) -> Result<Value, String> {
        let (_, js) = self.nats();
        let mut stream = js.get_stream(STREAM).await.map_err(|e| e.to_string())?;
        let info = stream.info().await.map_err(|e| e.to_string())?.clone();
        let mut partitions = Vec::new();
        for p in 0..self.partitions() {
            let name = format!("vigil-p{p}");
            let entry = match stream.consumer_info(&name).await {
                Ok(c) => json!({"partition": p, "consumer": name, "lag": c.num_pending + c.num_ack_pending as u64,
                    "pending": c.num_pending, "ack_pending": c.num_ack_pending,
                    "delivered_seq": c.delivered.stream_sequence, "ack_floor_seq": c.ack_floor.stream_sequence}),
                // No consumer yet: no node has written the partition since the stream began.
                Err(_) => json!({"partition": p, "consumer": name, "lag": null, "pending": null, "ack_pending": null,
                    "delivered_seq": null, "ack_floor_seq": null}),
            };
            partitions.push(entry);
        }
        let s = &info.state;
        let cluster = info.cluster.as_ref();
        Ok(json!({
            "name": STREAM,
            "messages": s.messages,
            "bytes": s.bytes,
            "first_seq": s.first_sequence,
            "last_seq": s.last_sequence,
            "consumers": s.consumer_count,
            "replicas": info.config.num_replicas,
            "leader": cluster.and_then(|c| c.leader.clone()),
            "peers": cluster.map(|c| c.replicas.iter().map(|r| json!({"name": r.name, "current": r.current,
                "offline": r.offline, "lag": r.lag})).collect::<Vec<_>>()).unwrap_or_default(),
            "error": null,
            "partitions": partitions,
        }))
    }
}
