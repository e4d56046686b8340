//! The `Sequencer`: the single writer of the event log.
//!
//! Request handlers (`api` via `ingest`) submit validated, masked batches over a channel.
//! The sequencer drains whatever is waiting (group commit: many requests, one transaction,
//! up to `max_group_events`), resolves `event_id` idempotency, assigns gap-free `seq` from
//! its in-memory head (never from SERIAL or `now()`), builds canonical bytes and the hash
//! chain, writes one transaction, and only then answers each waiting request. Committed
//! events are then offered to the detection pipeline (`detect`, through `ledger::handoff`). Writing is pipelined: while
//! one group's transaction commits on the database's thread, the next group is gathered and
//! sequenced on top of the head that transaction will make; if it fails, the next group is
//! sequenced again on the real head before anything of it is written.
//!
//! It also signs checkpoints (Ed25519, `ledger::keys`): every `checkpoint_every_events`
//! events, on a timer while anything is unsigned (idle or not), and on request (graceful
//! shutdown, retention purge, export). Each one is written to the anchor file once it has
//! committed. After any commit error it re-reads the head from the database: a head that
//! moved under it (rows deleted or written by someone else) is an integrity failure that
//! puts the log on hold (`ledger::IntegrityStatus`); client batches are then refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

mod recovery;
mod signing;

use super::chain::{Failure, FailureKind, chain_hash};
use crate::clock::Clock;
use crate::event::{CommittedEvent, MASK_POLICY_VERSION, NewEvent, ServerFields};
use crate::ledger::IntegrityStatus;
use crate::ledger::anchor::Anchor;
use crate::ledger::handoff::Handoff;
use crate::ledger::keys::CheckpointKeys;
use crate::store::{Checkpoint, EventKey, Head, IndexedColumns, Store, StoreError, StoredRow};

/// The answer for one submitted event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ack {
    pub event_id: String,
    /// Its seq (the original one for a duplicate).
    pub seq: i64,
    /// True when the event_id was already stored and nothing new was written.
    pub duplicate: bool,
    /// Cluster mode: the partition whose log holds it (absent on a single node, whose
    /// answers keep their shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
}

/// Commits batches on the sequencer's behalf: in cluster mode the partition writers of the
/// cluster (`cluster::ClusterIngest`), reached through a [`SequencerHandle::forwarding`]
/// handle so every service keeps submitting the way it does on a single node.
pub trait Committer: Send + Sync + 'static {
    /// Commits `events` (all or nothing per partition); `client`: from a client (refused
    /// while a log is on hold) or the server itself.
    fn commit(
        &self,
        events: Vec<NewEvent>,
        client: bool,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<Ack>, StoreError>>;
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
    /// Committed events by category, outcome and severity (`/metrics`).
    pub security: Arc<crate::telemetry::SecurityCounters>,
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
    /// A handle whose batches are committed by `committer` (cluster mode): appends are
    /// passed on as they come (concurrently), checkpoints are the partition writers' own
    /// business (`checkpoint_now` answers None), `halt` stops the forwarding.
    pub fn forwarding(committer: std::sync::Arc<dyn Committer>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(1024);
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                match job {
                    Job::Append { events, client, reply } => {
                        let commit = committer.commit(events, client);
                        tokio::spawn(async move {
                            let _ = reply.send(commit.await);
                        });
                    }
                    Job::Checkpoint { reply } => {
                        let _ = reply.send(Ok(None));
                    }
                    Job::Halt { reply } => {
                        let _ = reply.send(());
                        break;
                    }
                }
            }
        });
        SequencerHandle { tx }
    }

    /// False once the writer task has ended (halted, or stopped by a panic): nothing can be
    /// written any more, which `/readyz` reports.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Requests waiting for the writer (submitted, not yet taken into a transaction).
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

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
    /// A transaction whose commit failed while the head could not be re-read: it may have
    /// landed. Settled before the next write.
    uncertain: Option<Pending>,
}

/// A group sequenced and ready to write.
struct Prepared {
    jobs: Vec<AppendJob>,
    acks: Vec<Vec<Ack>>,
    rows: Vec<StoredRow>,
    committed: Vec<CommittedEvent>,
    /// The head once it has committed.
    head: Head,
    checkpoint: Option<Checkpoint>,
    /// Client event ids it stores, with their seqs (the next group's duplicates).
    assigned: HashMap<EventKey, i64>,
}

/// A group whose transaction is being written.
struct InFlight {
    task: tokio::task::JoinHandle<Result<(), StoreError>>,
    jobs: Vec<AppendJob>,
    acks: Vec<Vec<Ack>>,
    committed: Vec<CommittedEvent>,
    head: Head,
    checkpoint: Option<Checkpoint>,
    assigned: HashMap<EventKey, i64>,
    /// The security-counter cell of each row (counted once it commits).
    cells: Vec<usize>,
}

/// A transaction the sequencer wrote but whose outcome it could not confirm.
struct Pending {
    head: Head,
    committed: Vec<CommittedEvent>,
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
        prune_postings(&store, head.seq).await;
        handoff.head.store(head.seq as u64, Ordering::Relaxed);
        let last_checkpoint = store.last_checkpoint().await?;
        if let Some(cp) = &last_checkpoint {
            config.status.set_last_checkpoint(cp.clone());
        }
        let unsigned_since = (head.seq > last_checkpoint.as_ref().map_or(0, |c| c.seq)).then(Instant::now);
        let (tx, rx) = mpsc::channel(1024);
        let sequencer =
            Sequencer { store, config, head, last_checkpoint, unsigned_since, committed, handoff, uncertain: None };
        tokio::spawn(sequencer.run(rx));
        Ok(SequencerHandle { tx })
    }

    // Long by design: the writer's one event loop (gather, sequence, launch, complete, sign);
    // its branches are the states of the pipelined commit and read best together.
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        // The timer looks often enough that nothing stays unsigned much past the period.
        let tick = (self.config.checkpoint_every / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let mut timer = tokio::time::interval(tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut carry: Option<Job> = None;
        // Pipelining: one transaction is committing (on the database's thread) while the next
        // group is gathered and prepared (seq, canon, chain) on top of the head it will make.
        let mut inflight: Option<InFlight> = None;
        let mut closed = false;
        loop {
            let mut jobs: Vec<AppendJob> = Vec::new();
            let mut size = 0;
            if inflight.is_none() {
                if closed {
                    break;
                }
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
                match first {
                    Job::Append { events, client, reply } => {
                        size += events.len();
                        jobs.push((events, client, reply));
                    }
                    Job::Checkpoint { reply } => {
                        let _ = reply.send(self.sign_head().await);
                        continue;
                    }
                    Job::Halt { reply } => {
                        let _ = reply.send(());
                        tracing::info!("Sequencer halted (nothing signed)");
                        return;
                    }
                }
            }
            while carry.is_none() && !closed && size < self.config.max_group_events {
                match rx.try_recv() {
                    Ok(Job::Append { events, client, reply }) => {
                        size += events.len();
                        jobs.push((events, client, reply));
                    }
                    Ok(other) => carry = Some(other),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => closed = true,
                }
            }
            if jobs.is_empty() {
                // Nothing new: wait for the transaction in flight (a Halt or Checkpoint in
                // `carry` is handled once it is done).
                if let Some(f) = inflight.take() {
                    self.complete(f).await;
                }
                continue;
            }
            let jobs = self.refuse_on_hold(jobs);
            if jobs.is_empty() {
                continue;
            }
            let base = inflight.as_ref().map(|f| (f.head, f.checkpoint.clone(), &f.assigned));
            let prepared = self.prepare(jobs, base).await;
            let prepared = match inflight.take() {
                None => prepared,
                Some(f) => {
                    let landed = self.complete(f).await;
                    match prepared {
                        Ok(p) if !landed => {
                            // Prepared on a head that did not happen: again on the real one.
                            let jobs = self.refuse_on_hold(p.jobs);
                            if jobs.is_empty() {
                                continue;
                            }
                            self.prepare(jobs, None).await
                        }
                        other => other,
                    }
                }
            };
            match prepared {
                // Only duplicates: nothing to write.
                Ok(p) if p.rows.is_empty() => answer_ok(p.jobs, p.acks),
                Ok(p) => {
                    self.handoff.note_group(p.rows.len());
                    inflight = Some(self.launch(p));
                }
                Err((err, jobs)) => {
                    tracing::warn!(error = %err, requests = jobs.len(), "Could not prepare a group; nothing was stored");
                    answer_err(jobs, &err);
                }
            }
        }
        // Graceful end: every submitter is gone; sign what is unsigned.
        if self.unsigned_since.is_some()
            && let Err(e) = self.sign_head().await
        {
            tracing::error!(error = %e, "Could not sign the head at shutdown");
        }
        tracing::info!("Sequencer stopped: all submitters are gone");
    }

    /// Client batches are refused while the log is on hold.
    fn refuse_on_hold(&self, jobs: Vec<AppendJob>) -> Vec<AppendJob> {
        if !self.config.status.on_hold() {
            return jobs;
        }
        let (refused, jobs): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| job.1);
        for (_, _, reply) in refused {
            let _ = reply.send(Err(StoreError::OnHold));
        }
        jobs
    }

    /// Starts writing a prepared group; the database works on it while the next one is
    /// prepared.
    fn launch(&self, p: Prepared) -> InFlight {
        let store = self.store.clone();
        let Prepared { jobs, acks, rows, committed, head, checkpoint, assigned } = p;
        let cp = checkpoint.clone();
        let cells = rows
            .iter()
            .map(|r| {
                let c = &r.columns;
                crate::telemetry::SecurityCounters::cell(&c.category, &c.outcome, &c.severity)
            })
            .collect();
        let task = tokio::spawn(async move { store.append(&rows, cp.as_ref()).await });
        InFlight { task, jobs, acks, committed, head, checkpoint, assigned, cells }
    }

    /// Waits for the transaction in flight and answers its requests. True when it landed.
    async fn complete(&mut self, f: InFlight) -> bool {
        match self.finish(f).await {
            Ok(()) => true,
            Err((err, jobs)) => {
                self.failed(err, jobs).await;
                false
            }
        }
    }

    /// Waits for a transaction and, when it committed (or landed although its commit
    /// reported an error), answers its requests and hands its events to detection.
    /// Otherwise gives back the error and the requests (their events untouched: `prepare`
    /// only reads them).
    async fn finish(&mut self, f: InFlight) -> Result<(), (StoreError, Vec<AppendJob>)> {
        let InFlight { task, jobs, acks, committed, head, checkpoint, cells, .. } = f;
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(StoreError::WriteFailed(format!("the write task failed: {e}"))),
        };
        match result {
            Ok(()) => {
                self.committed_to(head, checkpoint).await;
                self.config.security.add_events(&cells);
                self.publish(committed);
            }
            Err(err) => {
                if !self.recheck_head(&err, Some(Pending { head, committed })).await {
                    return Err((err, jobs));
                }
                // It landed after all (`adopt` moved the head and published).
            }
        }
        answer_ok(jobs, acks);
        Ok(())
    }

    /// The in-memory head moves only once a transaction has committed.
    async fn committed_to(&mut self, head: Head, checkpoint: Option<Checkpoint>) {
        self.head = head;
        self.handoff.head.store(head.seq as u64, Ordering::Relaxed);
        match checkpoint {
            Some(cp) => self.signed(cp).await,
            None => {
                self.unsigned_since.get_or_insert_with(Instant::now);
            }
        }
    }
}

/// Answers each request with its acks.
fn answer_ok(jobs: Vec<AppendJob>, acks: Vec<Vec<Ack>>) {
    for (job, acks) in jobs.into_iter().zip(acks) {
        let _ = job.2.send(Ok(acks));
    }
}

/// Answers each request with `err` (a condition of the database as is, any other error as
/// `WriteFailed`).
fn answer_err(jobs: Vec<AppendJob>, err: &StoreError) {
    for (_, _, reply) in jobs {
        let _ = reply.send(Err(err.shared().unwrap_or_else(|| StoreError::WriteFailed(err.to_string()))));
    }
}

/// Rows above the head are gone (truncated): their index entries go too, before new rows
/// are written at those seqs.
async fn prune_postings(store: &Store, head: i64) {
    match store.prune_postings_after(head).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(head, postings = n, "Dropped the index entries of rows above the head (truncated)"),
        Err(e) => tracing::warn!(error = %e, head, "Could not drop the index entries of rows above the head"),
    }
}

/// One waiting request: its events, whether a client sent them, and where to answer.
type AppendJob = (Vec<NewEvent>, bool, oneshot::Sender<Result<Vec<Ack>, StoreError>>);
