//! Ingest in cluster mode: any node takes any request. The receiving node has validated and
//! masked the events (as on one node); here they are grouped by partition and each group is
//! published to its partition's JetStream subject `vigil.events.<p>` (a message id derived
//! from the events' `(ingest_key, event_id)`s, so a retry inside the stream's duplicate
//! window is not even delivered twice; the partition's unique index stays the real
//! guarantee). The partition's writer, whichever node holds its lease, pulls the group from
//! a durable consumer, commits it through its fenced sequencer, acknowledges the stream
//! message only after the commit, and answers on the receiving node's inbox. The receiving
//! node answers the client only then; when no answer comes in time (the writer died) or the
//! publish was a duplicate, it looks the events up in the partition's log until a deadline,
//! else the request fails with 503 (nothing promised; the client's retry is idempotent).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::wire::{Answer, Group, MAC_HEADER, REPLY_HEADER, Signer, WireEvent};
use super::{ClusterMember, partition_of};
use crate::event::NewEvent;
use crate::ledger::sequencer::{Ack, Committer};
use crate::store::{EventKey, StoreError};

/// The JetStream stream holding every partition's subject.
pub const STREAM: &str = "VIGIL_EVENTS";

/// The subject of partition `p`.
pub fn subject(p: u32) -> String {
    format!("vigil.events.{p}")
}

/// How long the stream keeps a message id to drop a republished copy.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// A fetched, unacknowledged message goes to the consumer again after this (the new owner
/// of a partition whose writer died gets its in-flight groups then).
const ACK_WAIT: Duration = Duration::from_secs(5);

/// How long a starting node waits for JetStream to accept the stream.
const STREAM_WAIT: Duration = Duration::from_secs(30);

/// Tunables of the ingest path.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub nats_urls: Vec<String>,
    pub stream_replicas: usize,
    /// The writer's answer is awaited this long before looking the events up.
    pub reply_timeout: Duration,
    /// A request fails (503) when its events are not committed by then.
    pub deadline: Duration,
}

struct Inner {
    member: ClusterMember,
    client: async_nats::Client,
    js: jetstream::Context,
    signer: Signer,
    config: IngestConfig,
    consumers: std::sync::Mutex<HashMap<u32, tokio::task::JoinHandle<()>>>,
    /// The stream's last state (`GET /v1/cluster`), kept briefly (stream.rs).
    pub(super) stream_state: tokio::sync::Mutex<Option<(Instant, serde_json::Value)>>,
}

/// The cluster's ingest path: a [`Committer`] for the node's forwarding sequencer handle,
/// plus the consumers of the partitions this node writes.
#[derive(Clone)]
pub struct ClusterIngest {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIngest").finish()
    }
}

/// Why the ingest path could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// NATS is unreachable or refused.
    #[error("cannot connect to NATS at {urls}: {message}")]
    Connect { urls: String, message: String },
    /// The stream could not be created or read.
    #[error("cannot create the JetStream stream {STREAM}: {0} (is JetStream enabled on the NATS servers?)")]
    Stream(String),
}

fn unavailable(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("NATS: {what}"))
}

impl ClusterIngest {
    /// Connects to NATS, creates the stream (`stream_replicas`, duplicate window) if absent,
    /// and starts following which partitions this node writes (a consumer per partition).
    pub async fn start(member: ClusterMember, config: IngestConfig, shared_secret: &[u8]) -> Result<Self, IngestError> {
        // For messages: without credentials (`nats://user:password@host` stays out of logs).
        let urls = config.nats_urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(",");
        let addrs: Vec<async_nats::ServerAddr> =
            config
                .nats_urls
                .iter()
                .map(|u| u.parse())
                .collect::<Result<_, _>>()
                .map_err(|_| IngestError::Connect { urls: urls.clone(), message: "not a NATS URL".into() })?;
        let client = async_nats::ConnectOptions::new()
            .name(format!("vigil-{}", member.node_id()))
            .connection_timeout(Duration::from_secs(5))
            .connect(addrs)
            .await
            .map_err(|e| IngestError::Connect { urls: urls.clone(), message: e.to_string() })?;
        let js = jetstream::new(client.clone());
        // A NATS cluster that is starting has no JetStream leader for a few seconds.
        let started = Instant::now();
        loop {
            let created = js
                .get_or_create_stream(jetstream::stream::Config {
                    name: STREAM.into(),
                    subjects: vec!["vigil.events.*".into()],
                    num_replicas: config.stream_replicas,
                    duplicate_window: DUPLICATE_WINDOW,
                    storage: jetstream::stream::StorageType::File,
                    // Committed groups are acknowledged; what stays is kept a day for operators.
                    max_age: Duration::from_secs(24 * 3600),
                    ..Default::default()
                })
                .await;
            match created {
                Ok(_) => break,
                Err(e) if started.elapsed() < STREAM_WAIT => {
                    tracing::info!(error = %e, "JetStream is not ready yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(IngestError::Stream(e.to_string())),
            }
        }
        // The partitions' anchors (cluster/anchors.rs): without them verify still checks
        // every chain and checkpoint, but cannot tell a tail cut off with its checkpoints.
        match crate::cluster::anchors::Anchors::open(&js, config.stream_replicas).await {
            Ok(anchors) => member.set_anchors(anchors),
            Err(e) => tracing::warn!(error = %e, "Partition anchors are off"),
        }
        let ingest = Self {
            inner: Arc::new(Inner {
                member,
                client,
                js,
                signer: Signer::new(shared_secret),
                config,
                consumers: std::sync::Mutex::new(HashMap::new()),
                stream_state: tokio::sync::Mutex::new(None),
            }),
        };
        let supervisor = ingest.clone();
        tokio::spawn(async move {
            loop {
                supervisor.follow_ownership().await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Ok(ingest)
    }

    /// Starts a consumer for each partition this node now writes, stops the others'.
    async fn follow_ownership(&self) {
        let owned = self.inner.member.owned().await;
        let mut consumers = self.inner.consumers.lock().unwrap_or_else(|p| p.into_inner());
        consumers.retain(|p, task| {
            let keep = owned.contains(p) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for p in owned {
            consumers.entry(p).or_insert_with(|| {
                let me = self.clone();
                tokio::spawn(async move { me.consume(p).await })
            });
        }
    }

    /// Commits a request's events: one group per partition, all concurrently. Each group is
    /// atomic; a request spanning partitions that fails part-way may have stored the groups
    /// that succeeded (the client's retry finds them as duplicates).
    pub async fn commit_all(&self, events: Vec<NewEvent>, client: bool) -> Result<Vec<Ack>, StoreError> {
        let total = events.len();
        let n = self.inner.member.partitions();
        let mut groups: BTreeMap<u32, (Vec<usize>, Vec<NewEvent>)> = BTreeMap::new();
        for (i, e) in events.into_iter().enumerate() {
            // The server's own records (keys, decisions, alert history, audit) stay in
            // partition 0, one chain the services read back; clients' events spread.
            let p = if e.ingest_key.is_none() { 0 } else { partition_of(e.ingest_key.as_deref(), &e.event_id, n) };
            let g = groups.entry(p).or_default();
            g.0.push(i);
            g.1.push(e);
        }
        let results = futures_util::future::join_all(groups.into_iter().map(|(p, (idx, evs))| {
            let me = self.clone();
            async move { (p, idx, me.commit_group(p, evs, client).await) }
        }))
        .await;
        let mut out: Vec<Option<Ack>> = vec![None; total];
        let mut first_err = None;
        for (p, idx, r) in results {
            match r {
                Ok(acks) if acks.len() == idx.len() => {
                    for (i, mut a) in idx.into_iter().zip(acks) {
                        a.partition = Some(p);
                        out[i] = Some(a);
                    }
                }
                Ok(_) => {
                    first_err.get_or_insert(StoreError::WriteFailed(format!("partition {p} answered a short group")));
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(out.into_iter().flatten().collect())
    }

    async fn commit_group(&self, p: u32, events: Vec<NewEvent>, client: bool) -> Result<Vec<Ack>, StoreError> {
        let inner = &self.inner;
        let started = Instant::now();
        let keys: Vec<EventKey> = events.iter().map(|e| (e.ingest_key.clone(), e.event_id.clone())).collect();
        let subject = subject(p);
        let group = Group { partition: p, client, events: events.iter().map(WireEvent::from).collect() };
        let payload = serde_json::to_vec(&group).map_err(|e| StoreError::WriteFailed(e.to_string()))?;
        let inbox = inner.client.new_inbox();
        let mut replies = inner.client.subscribe(inbox.clone()).await.map_err(unavailable)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", message_id(&keys).as_str());
        headers.insert(REPLY_HEADER, inbox.as_str());
        headers.insert(MAC_HEADER, inner.signer.sign(&subject, &payload).as_str());
        let published = inner
            .js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        if !published.duplicate {
            match tokio::time::timeout(inner.config.reply_timeout, replies.next()).await {
                Ok(Some(msg)) => {
                    let mac = msg.headers.as_ref().and_then(|h| h.get(MAC_HEADER)).map(|v| v.as_str().to_owned());
                    if mac.is_some_and(|m| inner.signer.check(&inbox, &msg.payload, &m))
                        && let Ok(answer) = serde_json::from_slice::<Answer>(&msg.payload)
                    {
                        return match (answer.acks, answer.error) {
                            (Some(acks), _) => Ok(acks),
                            (None, error) => Err(answer_error(p, error.as_deref().unwrap_or(""))),
                        };
                    }
                    tracing::warn!(partition = p, "An answer on this node's inbox was not signed by a node; ignored");
                }
                Ok(None) => {}
                Err(_) => tracing::warn!(
                    partition = p,
                    "The partition's writer did not answer in time; looking the events up"
                ),
            }
        }
        drop(replies);
        // No answer (the writer died after the commit, or before) or a republished copy:
        // the partition's log says what is stored.
        loop {
            if let Some(acks) = self.look_up(p, &keys, published.duplicate).await? {
                return Ok(acks);
            }
            if started.elapsed() >= inner.config.deadline {
                return Err(StoreError::Unavailable(format!(
                    "partition {p}: no writer committed the events in time; nothing is promised; retry with the same \
                     event_ids"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The acks of `keys` when every one of them is in partition `p`'s log.
    async fn look_up(&self, p: u32, keys: &[EventKey], duplicate: bool) -> Result<Option<Vec<Ack>>, StoreError> {
        let store = self.inner.member.reader(p).await?;
        let found = store.find_event_ids(keys).await?;
        if found.len() < keys.len() {
            return Ok(None);
        }
        Ok(Some(
            keys.iter().map(|k| Ack { event_id: k.1.clone(), seq: found[k], duplicate, partition: Some(p) }).collect(),
        ))
    }

    /// The NATS connection (notices) and its JetStream context (stream state): stream.rs.
    pub(super) fn nats(&self) -> (&async_nats::Client, &jetstream::Context) {
        (&self.inner.client, &self.inner.js)
    }

    /// The cache of [`Self::stream_state`].
    pub(super) fn stream_state_cache(&self) -> &tokio::sync::Mutex<Option<(Instant, serde_json::Value)>> {
        &self.inner.stream_state
    }

    /// The partitions' count.
    pub(super) fn partitions(&self) -> u32 {
        self.inner.member.partitions()
    }

    /// Pulls partition `p`'s groups while this node writes it.
    async fn consume(&self, p: u32) {
        let name = format!("vigil-p{p}");
        let consumer = async {
            let stream = self.inner.js.get_stream(STREAM).await.map_err(|e| e.to_string())?;
            stream
                .get_or_create_consumer::<pull::Config>(
                    &name,
                    pull::Config {
                        durable_name: Some(name.clone()),
                        filter_subject: subject(p),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: ACK_WAIT,
                        max_ack_pending: 20_000,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        let consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "Could not open the partition's consumer; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                return;
            }
        };
        tracing::info!(partition = p, "Consuming the partition's stream");
        loop {
            let batch = consumer.fetch().max_messages(512).expires(Duration::from_millis(500)).messages().await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "Fetching from the stream failed; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            };
            let mut messages = Vec::new();
            while let Some(m) = batch.next().await {
                match m {
                    Ok(m) => messages.push(m),
                    Err(e) => {
                        tracing::debug!(partition = p, error = %e, "Fetch ended early");
                        break;
                    }
                }
            }
            if messages.is_empty() {
                continue;
            }
            let outcomes = futures_util::future::join_all(messages.iter().map(|m| self.handle(p, m))).await;
            if outcomes.iter().any(|keep_going| !keep_going) {
                tracing::info!(partition = p, "No longer the partition's writer; its consumer stops");
                return;
            }
        }
    }

    /// Commits one group; false when this node no longer writes the partition (the message
    /// is left unacknowledged for the next owner).
    async fn handle(&self, p: u32, m: &jetstream::Message) -> bool {
        let inner = &self.inner;
        let msg = &m.message;
        let header = |name: &str| msg.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        let signed = header(MAC_HEADER).is_some_and(|mac| inner.signer.check(msg.subject.as_str(), &msg.payload, &mac));
        let group = serde_json::from_slice::<Group>(&msg.payload).ok().filter(|g| g.partition == p);
        let events = group
            .as_ref()
            .and_then(|g| g.events.iter().cloned().map(WireEvent::into_event).collect::<Option<Vec<_>>>());
        let (Some(group), Some(events), true) = (group, events, signed) else {
            tracing::warn!(partition = p, "A stream message that no node signed, or unreadable; dropped");
            let _ = m.ack_with(AckKind::Term).await;
            return true;
        };
        let answer = match inner.member.submit_as(p, events, group.client).await {
            Ok(acks) => {
                if let Err(e) = m.ack().await {
                    // Committed: a redelivery finds every event as a duplicate.
                    tracing::warn!(partition = p, error = %e, "Could not acknowledge a committed group");
                }
                Answer { acks: Some(acks), error: None }
            }
            Err(StoreError::Fenced { .. } | StoreError::Cluster(_)) => return false,
            Err(e) => {
                // Nothing was stored; the client hears why and retries (not redelivered).
                tracing::warn!(partition = p, error = %e, "A group could not be committed");
                let _ = m.ack_with(AckKind::Term).await;
                Answer { acks: None, error: Some(error_code(&e).into()) }
            }
        };
        if let Some(reply) = header(REPLY_HEADER)
            && let Ok(payload) = serde_json::to_vec(&answer)
        {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(MAC_HEADER, inner.signer.sign(&reply, &payload).as_str());
            if let Err(e) = inner.client.publish_with_headers(reply, headers, payload.into()).await {
                tracing::debug!(partition = p, error = %e, "Could not answer a group (the client node looks it up)");
            }
        }
        true
    }
}

/// A NATS URL without its user information.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// The stream message id of a group: a hash of its events' idempotency keys.
fn message_id(keys: &[EventKey]) -> String {
    let mut h = Sha256::new();
    h.update(b"vigil-msg-v1\0");
    for (key, id) in keys {
        h.update(key.as_deref().unwrap_or("").as_bytes());
        h.update([0]);
        h.update(id.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn error_code(e: &StoreError) -> &'static str {
    match e {
        StoreError::OnHold => "on_hold",
        StoreError::Full(_) => "full",
        StoreError::Unavailable(_) | StoreError::SequencerStopped => "unavailable",
        _ => "failed",
    }
}

fn answer_error(p: u32, code: &str) -> StoreError {
    match code {
        "on_hold" => StoreError::OnHold,
        "full" => StoreError::Full(format!("partition {p}")),
        "unavailable" => StoreError::Unavailable(format!("partition {p}'s database")),
        _ => StoreError::WriteFailed(format!("partition {p} could not store the group")),
    }
}

impl Committer for ClusterIngest {
    fn commit(
        &self,
        events: Vec<NewEvent>,
        client: bool,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<Ack>, StoreError>> {
        let me = self.clone();
        Box::pin(async move { me.commit_all(events, client).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_nats_url_never_reach_a_message() {
        assert_eq!(redact("nats://vigil:s3cret@nats1:4222"), "nats://***@nats1:4222");
        assert_eq!(redact("nats://nats1:4222"), "nats://nats1:4222");
        let a = message_id(&[(Some("k".into()), "a".into()), (Some("k".into()), "b".into())]);
        let b = message_id(&[(Some("k".into()), "ab".into())]);
        assert_ne!(a, b, "ids are delimited");
        assert_eq!(a, message_id(&[(Some("k".into()), "a".into()), (Some("k".into()), "b".into())]));
    }
}
