//! How the sequencer recovers from a failed group commit: a shared condition (out of space,
//! database down, hold) answers every request alike; otherwise it re-reads the head to learn
//! whether the transaction landed after all, adopts it if so, and retries one by one if not.
//! A head that moved under it is an integrity failure (hold, P1 alert).

use super::*;

impl Sequencer {
    /// A group's transaction failed (and did not land).
    pub(super) async fn failed(&mut self, err: StoreError, jobs: Vec<AppendJob>) {
        if err.shared().is_some() {
            // Out of space, database unreachable, on hold: not the batch's fault, so no
            // one-by-one retry; every request of the group gets the same answer.
            tracing::warn!(error = %err, requests = jobs.len(), "Group commit failed; nothing was stored");
            answer_err(jobs, &err);
        } else if jobs.len() > 1 {
            // Isolate the failure: one transaction per request, so one bad batch cannot fail
            // its neighbours.
            tracing::warn!(error = %err, requests = jobs.len(), "Group commit failed; retrying requests one by one");
            for job in jobs {
                let jobs = self.refuse_on_hold(vec![job]);
                let Some(job) = jobs.into_iter().next() else { continue };
                let written = match self.prepare(vec![job], None).await {
                    Ok(p) if p.rows.is_empty() => {
                        answer_ok(p.jobs, p.acks);
                        Ok(())
                    }
                    Ok(p) => {
                        let f = self.launch(p);
                        self.finish(f).await
                    }
                    Err(refused) => Err(refused),
                };
                if let Err((e, jobs)) = written {
                    answer_err(jobs, &e);
                }
            }
        } else {
            tracing::error!(error = %err, "Commit failed; the batch was not stored");
            for (_, _, reply) in jobs {
                let _ = reply.send(Err(StoreError::WriteFailed(err.to_string())));
            }
        }
    }

    /// After a commit error: re-reads the head. A head that moved under the sequencer
    /// (rows deleted, rewritten or appended by someone else) is an integrity failure: the
    /// log goes on hold and the sequencer continues from what the database holds.
    ///
    /// `pending` is the head the failed transaction would have made: a database at exactly
    /// that head means the commit landed and only its answer was lost (a connection cut
    /// during COMMIT); that is no failure, and true is returned. When the head cannot be
    /// read, the outcome stays uncertain and is settled before the next write.
    pub(super) async fn recheck_head(&mut self, err: &StoreError, pending: Option<Pending>) -> bool {
        let db = match self.store.head().await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, cause = %err, "Could not re-read the head after a commit error");
                if pending.is_some() {
                    self.uncertain = pending;
                }
                return false;
            }
        };
        if db == self.head {
            return false;
        }
        if let Some(p) = pending.or_else(|| self.uncertain.take())
            && p.head == db
        {
            tracing::warn!(
                seq = db.seq,
                cause = %err,
                "A commit whose answer was lost did land; its events are kept (client retries are duplicates)"
            );
            self.adopt(p).await;
            return true;
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
        if db.seq < self.head.seq {
            prune_postings(&self.store, db.seq).await;
        }
        self.head = db;
        self.handoff.head.store(db.seq.max(0) as u64, Ordering::Relaxed);
        false
    }

    /// Takes a transaction that landed although its commit reported an error.
    pub(super) async fn adopt(&mut self, p: Pending) {
        self.head = p.head;
        self.handoff.head.store(p.head.seq as u64, Ordering::Relaxed);
        match self.store.last_checkpoint().await {
            Ok(Some(cp)) if self.last_checkpoint.as_ref().is_none_or(|l| l.id < cp.id) => self.signed(cp).await,
            _ => {
                self.unsigned_since.get_or_insert_with(Instant::now);
            }
        }
        self.publish(p.committed);
    }

    /// Settles a commit whose outcome is unknown (the database was unreachable right after
    /// it) before anything else is written on top of the in-memory head.
    pub(super) async fn settle(&mut self) -> Result<(), StoreError> {
        let Some(p) = self.uncertain.take() else { return Ok(()) };
        match self.store.head().await {
            Ok(db) if db == p.head => {
                tracing::warn!(seq = db.seq, "A commit whose answer was lost did land; its events are kept");
                self.adopt(p).await;
                Ok(())
            }
            Ok(_) => {
                let err = StoreError::Unavailable("an earlier commit's outcome was unknown".into());
                self.recheck_head(&err, None).await;
                Ok(())
            }
            Err(e) => {
                self.uncertain = Some(p);
                Err(e)
            }
        }
    }
}
