//! Retention: events older than `retention_days` (by the time the checkpoint covering them
//! was signed, i.e. server time) are deleted by a background job, only in whole ranges that
//! end at a checkpoint. Each purge is recorded first, as a chain event with the id
//! `vigil:retention:<floor>` (so verify can tell a purge from a deletion), followed by a new
//! checkpoint; then one transaction raises the retention floor and deletes the rows at or
//! below it. Verify starts from the checkpoint at the floor and stays ok.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::clock::Clock;
use crate::event::system_event_with_id;
use crate::ledger::sequencer::SequencerHandle;
use crate::store::{Store, StoreError};

/// One purge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Purge {
    /// Rows at or below this seq are gone.
    pub floor: i64,
    /// The checkpoint the range ended at.
    pub checkpoint_id: i64,
    /// Rows deleted.
    pub deleted: u64,
}

/// The retention job.
#[derive(Clone)]
pub struct Retention {
    store: Store,
    sequencer: SequencerHandle,
    clock: Clock,
    days: u32,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention").field("days", &self.days).finish_non_exhaustive()
    }
}

impl Retention {
    /// A job keeping `days` days (0: keep everything).
    pub fn new(store: Store, sequencer: SequencerHandle, clock: Clock, days: u32) -> Self {
        Self { store, sequencer, clock, days, lock: Arc::default() }
    }

    /// Purges the newest whole range that is old enough, if any.
    pub async fn run_once(&self) -> Result<Option<Purge>, StoreError> {
        if self.days == 0 {
            return Ok(None);
        }
        let _one = self.lock.lock().await;
        let now = self.clock.now_ms();
        let cutoff = now.saturating_sub(i64::from(self.days) * 86_400_000);
        let Some(cp) = self.store.checkpoint_signed_before(cutoff).await? else { return Ok(None) };
        let floor = self.store.retention_floor().await?;
        if cp.seq <= floor {
            return Ok(None);
        }
        // Intent first: the purge is in the chain (and signed) before any row goes.
        let record = system_event_with_id(
            format!("vigil:retention:{}", cp.seq),
            "system",
            "retention_purge",
            "vigil",
            json!({
                "floor": cp.seq, "checkpoint_id": cp.id, "checkpoint_hash": hex::encode(&cp.hash),
                "retention_days": self.days, "cutoff": crate::event::format_rfc3339_ms(cutoff),
            }),
            now,
        );
        self.sequencer.submit(vec![record]).await?;
        self.sequencer.checkpoint_now().await?;
        let deleted = self.store.purge(cp.seq).await?;
        tracing::info!(floor = cp.seq, checkpoint = cp.id, deleted, "Retention purge");
        Ok(Some(Purge { floor: cp.seq, checkpoint_id: cp.id, deleted }))
    }

    /// Runs the job every `every` (and when a manual clock moves).
    pub fn spawn(self, every: Duration) {
        if self.days == 0 {
            return;
        }
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = self.clock.moved() => {}
                }
                if let Err(e) = self.run_once().await {
                    tracing::error!(error = %e, "Retention purge failed; retrying later");
                }
            }
        });
    }
}
