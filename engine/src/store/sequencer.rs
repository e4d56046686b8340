//! The `Sequencer`: the single writer of the event log.
//!
//! Request handlers (`api` via `ingest`) submit validated, masked batches over a channel.
//! The sequencer drains whatever is waiting (group commit: many requests, one transaction,
//! up to `max_group_events`), resolves `event_id` idempotency, assigns gap-free `seq` from
//! its in-memory head (never from SERIAL or `now()`), builds canonical bytes and the hash
//! chain, writes one transaction, and only then answers each waiting request. Committed
//! events are then offered to the detection pipeline (`rules`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};

use super::canon::to_canonical_with_span;
use super::chain::chain_hash;
use super::{Checkpoint, Head, IndexedColumns, Store, StoreError, StoredRow};
use crate::event::{CommittedEvent, MASK_POLICY_VERSION, NewEvent, now_ms};

/// The answer for one submitted event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ack {
    /// The event id.
    pub event_id: String,
    /// Its seq (the original one for a duplicate).
    pub seq: i64,
    /// True when the event_id was already stored and nothing new was written.
    pub duplicate: bool,
}

/// Tunables of the sequencer.
#[derive(Debug, Clone)]
pub struct SequencerConfig {
    /// Most events written in one transaction.
    pub max_group_events: usize,
    /// Write a signed checkpoint every this many events.
    pub checkpoint_every_events: i64,
    /// ... or when this much time has passed since the last one (and events arrived).
    pub checkpoint_every: Duration,
    /// HMAC key for checkpoints (kept outside the database).
    pub checkpoint_key: Vec<u8>,
}

struct Job {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<Ack>, StoreError>>,
}

/// Handle to submit batches to the sequencer.
#[derive(Clone)]
pub struct SequencerHandle {
    tx: mpsc::Sender<Job>,
}

impl SequencerHandle {
    /// Submits a batch; resolves once it is durably committed (all or nothing).
    pub async fn submit(&self, events: Vec<NewEvent>) -> Result<Vec<Ack>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { events, reply }).await.map_err(|_| StoreError::SequencerStopped)?;
        rx.await.map_err(|_| StoreError::SequencerStopped)?
    }
}

/// The writer task's state.
pub struct Sequencer {
    store: Store,
    config: SequencerConfig,
    head: Head,
    last_checkpoint: Option<Checkpoint>,
    last_checkpoint_at: Instant,
    committed: Option<mpsc::Sender<Vec<CommittedEvent>>>,
    handoff: Arc<Handoff>,
}

/// What the sequencer tells detection besides the batches themselves, and the bound of the
/// hand-off in events and bytes (besides the channel's bound in batches).
#[derive(Debug)]
pub struct Handoff {
    /// Batches not handed over because detection's queue was full.
    pub skipped: AtomicU64,
    /// Seq of the last committed event (detection catches up to it when idle).
    pub head: AtomicU64,
    /// Events queued for detection now.
    pub queued_events: AtomicU64,
    /// Canonical bytes queued for detection now.
    pub queued_bytes: AtomicU64,
    max_events: u64,
    max_bytes: u64,
}

impl Handoff {
    /// A hand-off holding at most `max_events` events and `max_bytes` canonical bytes.
    pub fn new(max_events: u64, max_bytes: u64) -> Self {
        Self {
            skipped: AtomicU64::new(0),
            head: AtomicU64::new(0),
            queued_events: AtomicU64::new(0),
            queued_bytes: AtomicU64::new(0),
            max_events,
            max_bytes,
        }
    }

    /// Reserves room for a batch; false (nothing reserved) when it would pass a bound.
    /// Only the sequencer reserves, so check-then-add cannot overshoot.
    fn reserve(&self, events: u64, bytes: u64) -> bool {
        let (e, b) = (self.queued_events.load(Ordering::Acquire), self.queued_bytes.load(Ordering::Acquire));
        if e + events > self.max_events || b + bytes > self.max_bytes {
            return false;
        }
        self.queued_events.fetch_add(events, Ordering::AcqRel);
        self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        true
    }

    /// Gives back the room of a batch detection took off the queue.
    pub fn release(&self, batch: &[CommittedEvent]) {
        let bytes: usize = batch.iter().map(|e| e.size).sum();
        self.queued_events.fetch_sub(batch.len() as u64, Ordering::AcqRel);
        self.queued_bytes.fetch_sub(bytes as u64, Ordering::AcqRel);
    }
}

impl Sequencer {
    /// Loads the head and starts the writer task.
    pub async fn start(
        store: Store,
        config: SequencerConfig,
        committed: Option<mpsc::Sender<Vec<CommittedEvent>>>,
        handoff: Arc<Handoff>,
    ) -> Result<SequencerHandle, StoreError> {
        let head = store.head().await?;
        handoff.head.store(head.seq as u64, Ordering::Relaxed);
        let last_checkpoint = store.last_checkpoint().await?;
        let (tx, rx) = mpsc::channel(1024);
        let sequencer =
            Sequencer { store, config, head, last_checkpoint, last_checkpoint_at: Instant::now(), committed, handoff };
        tokio::spawn(sequencer.run(rx));
        Ok(SequencerHandle { tx })
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.recv().await {
            let mut size = first.events.len();
            let mut jobs = vec![first];
            while size < self.config.max_group_events {
                match rx.try_recv() {
                    Ok(job) => {
                        size += job.events.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(jobs).await;
        }
        tracing::info!("Sequencer stopped: all submitters are gone");
    }

    async fn commit_group(&mut self, jobs: Vec<Job>) {
        let batches: Vec<&[NewEvent]> = jobs.iter().map(|j| j.events.as_slice()).collect();
        match self.write(&batches).await {
            Ok((acks, committed)) => {
                for (job, acks) in jobs.into_iter().zip(acks) {
                    let _ = job.reply.send(Ok(acks));
                }
                self.publish(committed);
            }
            Err(err) if jobs.len() > 1 => {
                // Isolate the failure: one transaction per request, so one bad batch
                // cannot fail its neighbours.
                tracing::warn!(error = %err, requests = jobs.len(), "Group commit failed; retrying requests one by one");
                for job in jobs {
                    let result = self.write(&[job.events.as_slice()]).await;
                    let _ = job.reply.send(result.map(|(mut acks, committed)| {
                        self.publish(committed);
                        acks.pop().unwrap_or_default()
                    }));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "Commit failed; the batch was not stored");
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::WriteFailed(err.to_string())));
                }
            }
        }
    }

    /// Hands committed events to detection without ever waiting: when detection's queue is
    /// full the batch is skipped here, and detection reads the skipped seqs back from the
    /// store when it notices the gap. Ingest never stalls on rules; no event goes unevaluated.
    fn publish(&self, committed: Vec<CommittedEvent>) {
        let Some(tx) = &self.committed else { return };
        if committed.is_empty() {
            return;
        }
        let (events, bytes) = (committed.len() as u64, committed.iter().map(|e| e.size as u64).sum::<u64>());
        if !self.handoff.reserve(events, bytes) {
            self.handoff.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Err(e) = tx.try_send(committed) {
            let batch = match e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => b,
            };
            self.handoff.release(&batch);
            self.handoff.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sequences and writes the batches in one transaction. The in-memory head only moves
    /// once the transaction has committed.
    async fn write(&mut self, batches: &[&[NewEvent]]) -> Result<(Vec<Vec<Ack>>, Vec<CommittedEvent>), StoreError> {
        let client_ids: Vec<String> =
            batches.iter().flat_map(|b| b.iter()).filter(|e| e.client_id).map(|e| e.event_id.clone()).collect();
        let mut known: HashMap<String, i64> = self.store.find_event_ids(&client_ids).await?;
        let mut head = self.head;
        let mut rows = Vec::new();
        let mut committed = Vec::new();
        let mut acks = Vec::with_capacity(batches.len());
        for batch in batches {
            let mut batch_acks = Vec::with_capacity(batch.len());
            for ev in batch.iter() {
                if let Some(&seq) = known.get(&ev.event_id) {
                    batch_acks.push(Ack { event_id: ev.event_id.clone(), seq, duplicate: true });
                    continue;
                }
                let seq = head.seq + 1;
                let mut obj = ev.fields.clone();
                obj.insert("event_id".into(), Value::String(ev.event_id.clone()));
                obj.insert("seq".into(), Value::from(seq));
                obj.insert("received_at".into(), Value::from(ev.received_at));
                obj.insert("mask_policy".into(), Value::from(MASK_POLICY_VERSION));
                let (canon, details) = to_canonical_with_span(&obj, "details");
                let size = canon.len();
                let columns = IndexedColumns::from_event(&obj);
                let committed_event = CommittedEvent::new(seq, obj, details.map(|r| &canon[r]), size);
                let hash = chain_hash(&head.hash, &canon);
                rows.push(StoredRow { seq, columns, canon, prev_hash: head.hash.to_vec(), hash: hash.to_vec() });
                committed.push(committed_event);
                known.insert(ev.event_id.clone(), seq);
                batch_acks.push(Ack { event_id: ev.event_id.clone(), seq, duplicate: false });
                head = Head { seq, hash };
            }
            acks.push(batch_acks);
        }
        if rows.is_empty() {
            return Ok((acks, committed));
        }
        let checkpoint = self.checkpoint_due(head);
        self.store.append(&rows, checkpoint.as_ref()).await?;
        self.head = head;
        self.handoff.head.store(head.seq as u64, Ordering::Relaxed);
        if let Some(cp) = checkpoint {
            self.last_checkpoint = Some(cp);
            self.last_checkpoint_at = Instant::now();
        }
        Ok((acks, committed))
    }

    fn checkpoint_due(&self, head: Head) -> Option<Checkpoint> {
        let last_seq = self.last_checkpoint.as_ref().map_or(0, |c| c.seq);
        let by_count = head.seq - last_seq >= self.config.checkpoint_every_events;
        let by_time = self.last_checkpoint_at.elapsed() >= self.config.checkpoint_every;
        if !(by_count || by_time) {
            return None;
        }
        let id = self.last_checkpoint.as_ref().map_or(1, |c| c.id + 1);
        let prev_id = self.last_checkpoint.as_ref().map_or(0, |c| c.id);
        let created_at = now_ms();
        let signature = sign_checkpoint(&self.config.checkpoint_key, id, head.seq, &head.hash, created_at, prev_id);
        Some(Checkpoint { id, seq: head.seq, hash: head.hash.to_vec(), created_at, prev_id, signature })
    }
}

/// HMAC-SHA256 over `"vigil-checkpoint-v1" || id || seq || hash || created_at || prev_id`
/// (integers as 8-byte big-endian).
fn checkpoint_mac(key: &[u8], id: i64, seq: i64, hash: &[u8], created_at: i64, prev_id: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(b"vigil-checkpoint-v1");
    mac.update(&id.to_be_bytes());
    mac.update(&seq.to_be_bytes());
    mac.update(hash);
    mac.update(&created_at.to_be_bytes());
    mac.update(&prev_id.to_be_bytes());
    mac
}

/// Signs a checkpoint.
pub fn sign_checkpoint(key: &[u8], id: i64, seq: i64, hash: &[u8], created_at: i64, prev_id: i64) -> Vec<u8> {
    checkpoint_mac(key, id, seq, hash, created_at, prev_id).finalize().into_bytes().to_vec()
}

/// Checks a checkpoint's signature in constant time.
pub fn checkpoint_signature_ok(key: &[u8], cp: &Checkpoint) -> bool {
    checkpoint_mac(key, cp.id, cp.seq, &cp.hash, cp.created_at, cp.prev_id).verify_slice(&cp.signature).is_ok()
}
