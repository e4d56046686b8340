//! The sequencer's checkpoints and hand-off to detection: signing the head (Ed25519, then the
//! anchor file and the shared integrity status), publishing committed events without ever
//! waiting on detection, and preparing a group (seq, canonical bytes, chain hash, server
//! fields) before it is written.

use super::*;

impl Sequencer {
    /// Signs the head when anything is unsigned; returns the newest checkpoint either way.
    pub(super) async fn sign_head(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        if self.head.seq <= self.last_checkpoint.as_ref().map_or(0, |c| c.seq) {
            self.unsigned_since = None;
            return Ok(self.last_checkpoint.clone());
        }
        let cp = self.next_checkpoint(self.head);
        self.settle().await?;
        if let Err(e) = self.store.append_checkpoint(&cp).await {
            self.recheck_head(&e, None).await;
            return Err(e);
        }
        self.signed(cp.clone()).await;
        Ok(Some(cp))
    }

    pub(super) async fn signed(&mut self, cp: Checkpoint) {
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
    pub(super) fn publish(&self, committed: Vec<CommittedEvent>) {
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

    /// Sequences a group on top of `base` (the head, checkpoint and event ids of the
    /// transaction in flight; None: what is committed): resolves event_id idempotency,
    /// assigns seqs, builds canonical bytes and the chain, and decides whether a checkpoint
    /// goes in the same transaction. Nothing is written.
    pub(super) async fn prepare(
        &mut self,
        mut jobs: Vec<AppendJob>,
        base: Option<(Head, Option<Checkpoint>, &HashMap<EventKey, i64>)>,
    ) -> Result<Prepared, (StoreError, Vec<AppendJob>)> {
        if let Err(e) = self.settle().await {
            return Err((e, jobs));
        }
        let client_ids: Vec<EventKey> =
            jobs.iter().flat_map(|j| j.0.iter()).filter(|e| e.client_id).map(event_key).collect();
        let mut known: HashMap<EventKey, i64> = match self.store.find_event_ids(&client_ids).await {
            Ok(k) => k,
            Err(e) => return Err((e, jobs)),
        };
        let (mut head, last_cp) = match &base {
            Some((head, cp, in_flight)) => {
                for id in &client_ids {
                    if let Some(&seq) = in_flight.get(id) {
                        known.insert(id.clone(), seq);
                    }
                }
                (*head, cp.clone().or_else(|| self.last_checkpoint.clone()))
            }
            None => (self.head, self.last_checkpoint.clone()),
        };
        let mut assigned = HashMap::new();
        let mut rows = Vec::new();
        let mut committed = Vec::new();
        let mut acks = Vec::with_capacity(jobs.len());
        for job in &mut jobs {
            let mut batch_acks = Vec::with_capacity(job.0.len());
            for ev in job.0.iter_mut() {
                let key = event_key(ev);
                if let Some(&seq) = known.get(&key) {
                    batch_acks.push(Ack { event_id: ev.event_id.clone(), seq, duplicate: true, partition: None });
                    continue;
                }
                let seq = head.seq + 1;
                let server = ServerFields {
                    event_id: &ev.event_id,
                    seq,
                    received_at: ev.received_at,
                    mask_policy: MASK_POLICY_VERSION,
                    ingest_key: ev.ingest_key.as_deref(),
                };
                let mut canon = Vec::with_capacity(512);
                ev.fields.write_canonical(&server, &mut canon);
                let columns = IndexedColumns::from_fields(&ev.fields, &server);
                let committed_event = CommittedEvent::from_canon(seq, canon.as_slice());
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
                if ev.client_id {
                    assigned.insert(key.clone(), seq);
                }
                known.insert(key, seq);
                batch_acks.push(Ack { event_id: ev.event_id.clone(), seq, duplicate: false, partition: None });
                head = Head { seq, hash };
            }
            acks.push(batch_acks);
        }
        let last_seq = last_cp.as_ref().map_or(0, |c| c.seq);
        let checkpoint = (!rows.is_empty()
            && (head.seq - last_seq >= self.config.checkpoint_every_events
                || self.unsigned_since.is_some_and(|t| t.elapsed() >= self.config.checkpoint_every)))
        .then(|| self.checkpoint_after(head, last_cp.as_ref()));
        Ok(Prepared { jobs, acks, rows, committed, head, checkpoint, assigned })
    }

    pub(super) fn next_checkpoint(&self, head: Head) -> Checkpoint {
        self.checkpoint_after(head, self.last_checkpoint.as_ref())
    }

    pub(super) fn checkpoint_after(&self, head: Head, last: Option<&Checkpoint>) -> Checkpoint {
        let id = last.map_or(1, |c| c.id + 1);
        let prev_id = last.map_or(0, |c| c.id);
        // A cluster partition's checkpoints name their partition (partition 0 and a single
        // node sign exactly as before).
        self.config.keys.sign_in(self.store.partition(), id, head.seq, head.hash, self.config.clock.now_ms(), prev_id)
    }
}

/// The idempotency key of an event: the key that sent it and its event_id.
fn event_key(ev: &crate::event::NewEvent) -> EventKey {
    (ev.ingest_key.clone(), ev.event_id.clone())
}
