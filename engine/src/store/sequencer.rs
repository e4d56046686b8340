//! The `Sequencer`: the single writer of the event log.
//!
//! Request handlers (`api` via `ingest`) submit validated, masked batches over a channel.
//! The sequencer drains whatever is waiting (group commit: many requests, one transaction,
//! up to `max_group_events`), resolves `event_id` idempotency, assigns gap-free `seq` from
//! its in-memory head (never from SERIAL or `now()`), builds canonical bytes and the hash
//! chain, writes one transaction, and only then answers each waiting request. Committed
//! events are then offered to the detection pipeline (`rules`).
//!
//! It also signs checkpoints (Ed25519, `integrity::keys`): every `checkpoint_every_events`
//! events, on a timer while anything is unsigned (idle or not), and on request (graceful
//! shutdown, retention purge, export). Each one is written to the anchor file once it has
//! committed. After any commit error it re-reads the head from the database: a head that
//! moved under it (rows deleted or written by someone else) is an integrity failure that
//! puts the log on hold (`integrity::IntegrityStatus`); client batches are then refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::canon::to_canonical_with_span;
use super::chain::{Failure, FailureKind, chain_hash};
use super::{Checkpoint, Head, IndexedColumns, Store, StoreError, StoredRow};
use crate::clock::Clock;
use crate::event::{CommittedEvent, MASK_POLICY_VERSION, NewEvent};
use crate::integrity::IntegrityStatus;
use crate::integrity::anchor::Anchor;
use crate::integrity::keys::CheckpointKeys;

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
    /// ... and no committed event stays unsigned longer than this (a timer).
    pub checkpoint_every: Duration,
    /// Signs checkpoints (the key lives outside the database).
    pub keys: CheckpointKeys,
    /// Where each new checkpoint is also written.
    pub anchor: Option<Anchor>,
    /// Hold and last checkpoint, shared with the API.
    pub status: Arc<IntegrityStatus>,
    /// Time of checkpoints.
    pub clock: Clock,
}

enum Job {
    Append {
        events: Vec<NewEvent>,
        /// From a client (refused while the log is on hold) or the server itself.
        client: bool,
        reply: oneshot::Sender<Result<Vec<Ack>, StoreError>>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<Option<Checkpoint>, StoreError>>,
    },
    Halt {
        reply: oneshot::Sender<()>,
    },
}

/// Handle to submit batches to the sequencer.
#[derive(Clone, Debug)]
pub struct SequencerHandle {
    tx: mpsc::Sender<Job>,
}

impl SequencerHandle {
    /// Submits the server's own events (chain records); resolves once durably committed.
    pub async fn submit(&self, events: Vec<NewEvent>) -> Result<Vec<Ack>, StoreError> {
        self.append(events, false).await
    }

    /// Submits a client batch; resolves once it is durably committed (all or nothing).
    /// Refused while the log is on hold.
    pub async fn submit_client(&self, events: Vec<NewEvent>) -> Result<Vec<Ack>, StoreError> {
        self.append(events, true).await
    }

    async fn append(&self, events: Vec<NewEvent>, client: bool) -> Result<Vec<Ack>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job::Append { events, client, reply }).await.map_err(|_| StoreError::SequencerStopped)?;
        rx.await.map_err(|_| StoreError::SequencerStopped)?
    }

    /// Signs the head now if anything is unsigned; returns the newest checkpoint.
    pub async fn checkpoint_now(&self) -> Result<Option<Checkpoint>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job::Checkpoint { reply }).await.map_err(|_| StoreError::SequencerStopped)?;
        rx.await.map_err(|_| StoreError::SequencerStopped)?
    }

    /// Stops the writer without signing anything (what a crash leaves; tests use it).
    pub async fn halt(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Job::Halt { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The writer task's state.
pub struct Sequencer {
    store: Store,
    config: SequencerConfig,
    head: Head,
    last_checkpoint: Option<Checkpoint>,
    /// When the oldest unsigned event was committed (None: everything is signed).
    unsigned_since: Option<Instant>,
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
        if let Some(cp) = &last_checkpoint {
            config.status.set_last_checkpoint(cp.clone());
        }
        let unsigned_since = (head.seq > last_checkpoint.as_ref().map_or(0, |c| c.seq)).then(Instant::now);
        let (tx, rx) = mpsc::channel(1024);
        let sequencer = Sequencer { store, config, head, last_checkpoint, unsigned_since, committed, handoff };
        tokio::spawn(sequencer.run(rx));
        Ok(SequencerHandle { tx })
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        // The timer looks often enough that nothing stays unsigned much past the period.
        let tick = (self.config.checkpoint_every / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let mut timer = tokio::time::interval(tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut carry: Option<Job> = None;
        loop {
            let first = match carry.take() {
                Some(job) => job,
                None => tokio::select! {
                    job = rx.recv() => match job {
                        Some(job) => job,
                        None => break,
                    },
                    _ = timer.tick() => {
                        if self.unsigned_since.is_some_and(|t| t.elapsed() >= self.config.checkpoint_every)
                            && let Err(e) = self.sign_head().await
                        {
                            tracing::error!(error = %e, "Could not write a timed checkpoint; retrying");
                        }
                        continue;
                    }
                },
            };
            let (events, client, reply) = match first {
                Job::Append { events, client, reply } => (events, client, reply),
                Job::Checkpoint { reply } => {
                    let _ = reply.send(self.sign_head().await);
                    continue;
                }
                Job::Halt { reply } => {
                    let _ = reply.send(());
                    tracing::info!("Sequencer halted (nothing signed)");
                    return;
                }
            };
            let mut size = events.len();
            let mut jobs = vec![(events, client, reply)];
            while size < self.config.max_group_events {
                match rx.try_recv() {
                    Ok(Job::Append { events, client, reply }) => {
                        size += events.len();
                        jobs.push((events, client, reply));
                    }
                    Ok(other) => {
                        carry = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(jobs).await;
        }
        // Graceful end: every submitter is gone; sign what is unsigned.
        if self.unsigned_since.is_some()
            && let Err(e) = self.sign_head().await
        {
            tracing::error!(error = %e, "Could not sign the head at shutdown");
        }
        tracing::info!("Sequencer stopped: all submitters are gone");
    }

    async fn commit_group(&mut self, jobs: Vec<AppendJob>) {
        let on_hold = self.config.status.on_hold();
        let (refused, jobs): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| job.1 && on_hold);
        for (_, _, reply) in refused {
            let _ = reply.send(Err(StoreError::OnHold));
        }
        if jobs.is_empty() {
            return;
        }
        let batches: Vec<&[NewEvent]> = jobs.iter().map(|j| j.0.as_slice()).collect();
        match self.write(&batches).await {
            Ok((acks, committed)) => {
                for (job, acks) in jobs.into_iter().zip(acks) {
                    let _ = job.2.send(Ok(acks));
                }
                self.publish(committed);
            }
            Err(err) => {
                self.recheck_head(&err).await;
                if jobs.len() > 1 {
                    // Isolate the failure: one transaction per request, so one bad batch
                    // cannot fail its neighbours.
                    tracing::warn!(error = %err, requests = jobs.len(), "Group commit failed; retrying requests one by one");
                    for (events, client, reply) in jobs {
                        if client && self.config.status.on_hold() {
                            let _ = reply.send(Err(StoreError::OnHold));
                            continue;
                        }
                        let result = self.write(&[events.as_slice()]).await;
                        if let Err(e) = &result {
                            self.recheck_head(e).await;
                        }
                        let _ = reply.send(result.map(|(mut acks, committed)| {
                            self.publish(committed);
                            acks.pop().unwrap_or_default()
                        }));
                    }
                } else {
                    tracing::error!(error = %err, "Commit failed; the batch was not stored");
                    for (_, _, reply) in jobs {
                        let _ = reply.send(Err(StoreError::WriteFailed(err.to_string())));
                    }
                }
            }
        }
    }

    /// After a commit error: re-reads the head. A head that moved under the sequencer
    /// (rows deleted, rewritten or appended by someone else) is an integrity failure: the
    /// log goes on hold and the sequencer continues from what the database holds.
    async fn recheck_head(&mut self, err: &StoreError) {
        let db = match self.store.head().await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, cause = %err, "Could not re-read the head after a commit error");
                return;
            }
        };
        if db == self.head {
            return;
        }
        let (kind, expected, actual) = if db.seq < self.head.seq {
            (
                FailureKind::Truncated,
                format!("a log up to seq {} (hash {})", self.head.seq, hex::encode(self.head.hash)),
                format!("the log ends at seq {}", db.seq),
            )
        } else {
            (
                FailureKind::HashMismatch,
                format!("head seq {} hash {}", self.head.seq, hex::encode(self.head.hash)),
                format!("head seq {} hash {} (written by someone else)", db.seq, hex::encode(db.hash)),
            )
        };
        let failure = Failure { seq: db.seq.min(self.head.seq) + 1, kind, expected, actual };
        tracing::error!(
            seq = failure.seq,
            kind = ?failure.kind,
            "The log changed under the sequencer; client writes are refused until an operator accepts"
        );
        self.config.status.set_hold(vec![failure], self.config.clock.now_ms());
        self.head = db;
        self.handoff.head.store(db.seq.max(0) as u64, Ordering::Relaxed);
    }

    /// Signs the head when anything is unsigned; returns the newest checkpoint either way.
    async fn sign_head(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        if self.head.seq <= self.last_checkpoint.as_ref().map_or(0, |c| c.seq) {
            self.unsigned_since = None;
            return Ok(self.last_checkpoint.clone());
        }
        let cp = self.next_checkpoint(self.head);
        if let Err(e) = self.store.append_checkpoint(&cp).await {
            self.recheck_head(&e).await;
            return Err(e);
        }
        self.signed(cp.clone()).await;
        Ok(Some(cp))
    }

    async fn signed(&mut self, cp: Checkpoint) {
        if let Some(anchor) = &self.config.anchor
            && let Err(e) = anchor.write(&cp).await
        {
            tracing::error!(error = %e, path = %anchor.path().display(), "Could not write the anchor file");
        }
        self.config.status.set_last_checkpoint(cp.clone());
        self.last_checkpoint = Some(cp);
        self.unsigned_since = None;
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
                rows.push(StoredRow {
                    seq,
                    columns,
                    canon,
                    prev_hash: head.hash.to_vec(),
                    hash: hash.to_vec(),
                    unreadable: Vec::new(),
                });
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
        let last_seq = self.last_checkpoint.as_ref().map_or(0, |c| c.seq);
        let checkpoint = (head.seq - last_seq >= self.config.checkpoint_every_events
            || self.unsigned_since.is_some_and(|t| t.elapsed() >= self.config.checkpoint_every))
        .then(|| self.next_checkpoint(head));
        self.store.append(&rows, checkpoint.as_ref()).await?;
        self.head = head;
        self.handoff.head.store(head.seq as u64, Ordering::Relaxed);
        match checkpoint {
            Some(cp) => self.signed(cp).await,
            None => {
                self.unsigned_since.get_or_insert_with(Instant::now);
            }
        }
        Ok((acks, committed))
    }

    fn next_checkpoint(&self, head: Head) -> Checkpoint {
        let id = self.last_checkpoint.as_ref().map_or(1, |c| c.id + 1);
        let prev_id = self.last_checkpoint.as_ref().map_or(0, |c| c.id);
        self.config.keys.sign(id, head.seq, head.hash, self.config.clock.now_ms(), prev_id)
    }
}

/// One waiting request: its events, whether a client sent them, and where to answer.
type AppendJob = (Vec<NewEvent>, bool, oneshot::Sender<Result<Vec<Ack>, StoreError>>);
