//! Expiry: decisions past their `expires_at` are ended in the store, removed from the
//! active set and written to the chain; the expiry task also retries chain writes that
//! failed. In cluster mode, the follower applies the changes made through other nodes.

use std::sync::atomic::Ordering;

use super::{DecisionError, DecisionService};
use crate::store::decisions::{DecisionEnd, DecisionStatus};

impl DecisionService {
    /// Ends every decision past its expiry; returns how many.
    pub async fn expire_due(&self) -> Result<usize, DecisionError> {
        let now = self.now();
        if self.inner.set.due(now).is_empty() {
            return Ok(0);
        }
        let _one = self.inner.lock.lock().await;
        let due = self.inner.set.due(now);
        let ends: Vec<DecisionEnd> = due
            .iter()
            .map(|&id| DecisionEnd { id, status: DecisionStatus::Expired, at: now, by: "vigil".into(), reason: None })
            .collect();
        let changes = self.inner.store.end_decisions(&ends).await?;
        let mut pairs = Vec::with_capacity(changes.len());
        for change in changes {
            self.inner.set.remove(change.decision_id, change.id);
            if let Ok(row) = self.get(change.decision_id).await {
                pairs.push((change, row));
            }
        }
        // Any not ended by this call had ended already: they are not active either.
        for id in due {
            self.inner.set.remove(id, 0);
        }
        self.inner.set.counters.expired.fetch_add(pairs.len() as u64, Ordering::Relaxed);
        let n = pairs.len();
        self.after(&pairs).await;
        Ok(n)
    }

    /// Expires due decisions every `every` until the process ends, and now and then writes
    /// changes whose chain write failed (the database was down) to the chain.
    pub fn spawn_expiry(self, every: std::time::Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks: u64 = 0;
            loop {
                tick.tick().await;
                ticks += 1;
                if let Err(e) = self.expire_due().await {
                    tracing::warn!(error = %e, "Could not expire decisions; retried");
                }
                if ticks.is_multiple_of(120)
                    && let Err(e) = self.chain_pending().await
                {
                    tracing::warn!(error = %e, "Could not write pending decision changes to the chain; retried");
                }
            }
        });
    }
}

/// Changes re-read behind the cursor at each poll: change ids come from a sequence, and a
/// transaction that took a lower id may commit after a higher one was read.
const FOLLOW_REREAD: i64 = 256;

impl DecisionService {
    /// Cluster mode: `hook` is called after each decision change this node commits (it
    /// publishes the notice that wakes every node's follower). Set once; later calls are
    /// ignored.
    pub fn on_change(&self, hook: impl Fn() + Send + Sync + 'static) {
        let _ = self.inner.on_change.set(Box::new(hook));
    }

    pub(super) fn changed(&self) {
        if let Some(hook) = self.inner.on_change.get() {
            hook();
        }
    }

    /// Cluster mode: a change was committed somewhere (a notice came); the follower reads
    /// the change feed now rather than at its next poll.
    pub fn wake_follow(&self) {
        self.inner.follow_wake.notify_one();
    }

    /// Cluster mode: applies the decision changes made through any node (the shared change
    /// feed in PostgreSQL) to this node's in-memory active set, at once on a notice
    /// ([`Self::wake_follow`]) and at least every `every` (a lost notice), so bouncers asking
    /// any node see a decision within milliseconds of its issue or lift, `every` at worst.
    pub fn spawn_follow(self, every: std::time::Duration) {
        tokio::spawn(async move {
            let mut cursor = self.inner.store.last_decision_change().await.unwrap_or(0);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = self.inner.follow_wake.notified() => {}
                }
                let since = (cursor - FOLLOW_REREAD).max(0);
                match self.inner.store.read_decision_changes(since, false, None, 5000).await {
                    Ok(changes) => {
                        for (change, row) in changes.into_iter().flatten() {
                            cursor = cursor.max(change.id);
                            self.inner.set.follow(&change, row);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "Could not read the decision changes of other nodes"),
                }
            }
        });
    }
}
