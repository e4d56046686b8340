//! Committing alert changes: each write goes to the store in one transaction (alert,
//! history entry, notifications, escalation timers), wakes the outbox through the
//! [`Routing`](super::Routing), and its history entry is then written to the chain
//! through the sequencer (event id `vigil:alert:<change id>`).

use serde_json::{Value, json};

use super::{AlertError, AlertService};
use crate::event::system_event_with_id;
use crate::store::alerts::fingerprint;
use crate::store::{AlertChange, AlertRow, AlertWrite, StoreError};

impl AlertService {
    /// Writes changes, then their chain events; wakes the outbox.
    pub(super) async fn commit(&self, writes: &mut [AlertWrite]) -> Result<(), AlertError> {
        // The alert's state as of this change goes into its history entry, so a chain
        // event written later (after a crash) still says what it was then.
        for w in writes.iter_mut() {
            let mut d: Value = serde_json::from_str(&w.change.details).unwrap_or_else(|_| json!({}));
            if let Value::Object(map) = &mut d {
                for (k, v) in [
                    ("severity", json!(w.alert.severity.as_str())),
                    ("status", json!(w.alert.status.as_str())),
                    ("count", json!(w.alert.count)),
                    ("event_seqs", json!(w.alert.seqs())),
                    ("disposition", json!(w.alert.disposition)),
                ] {
                    map.entry(k).or_insert(v);
                }
            }
            w.change.details = d.to_string();
        }
        // New alerts have no id until the store gives them one.
        let raised: Vec<(String, String)> = writes
            .iter()
            .filter(|w| w.alert.id == 0)
            .map(|w| (w.alert.rule.clone(), w.alert.severity.as_str().to_owned()))
            .collect();
        self.inner.store.commit_alert_writes(writes).await?;
        for (rule, severity) in &raised {
            self.inner.security.add_alert(rule, severity);
        }
        // A skipped write (another node claimed its timer first) stored nothing.
        let changes: Vec<(AlertChange, Option<AlertRow>)> =
            writes.iter().filter(|w| !w.skipped).map(|w| (w.change.clone(), Some(w.alert.clone()))).collect();
        if writes.iter().any(|w| !w.skipped && !w.notifications.is_empty()) {
            self.inner.routing.wake();
        }
        self.chain(&changes).await;
        Ok(())
    }

    /// Writes history entries to the chain and records their seqs. A failure is logged and
    /// retried by [`Self::chain_pending`]; the event id makes a repeat a no-op.
    async fn chain(&self, changes: &[(AlertChange, Option<AlertRow>)]) {
        let events = changes.iter().map(|(c, a)| chain_event(c, a.as_ref())).collect();
        match self.inner.sequencer.submit(events).await {
            Ok(acks) => {
                let seqs: Vec<(i64, i64)> = changes.iter().zip(acks).map(|((c, _), ack)| (c.id, ack.seq)).collect();
                if let Err(e) = self.inner.store.set_change_seqs(&seqs).await {
                    tracing::warn!(error = %e, "Could not record the chain seqs of alert changes; retried later");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Could not write alert changes to the chain; retried later"),
        }
    }

    /// Writes any history entries not yet in the chain (after a crash or a failed write).
    pub async fn chain_pending(&self) -> Result<usize, AlertError> {
        let mut total = 0;
        loop {
            let pending = self.inner.store.unchained_changes(500).await?;
            if pending.is_empty() {
                return Ok(total);
            }
            let first = pending[0].id;
            let mut pairs = Vec::with_capacity(pending.len());
            for c in pending {
                match self.inner.store.alert(c.alert_id).await {
                    Ok(alert) => pairs.push((c, alert)),
                    // A tampered row: its change stays unchained (and is reported again at
                    // the next start); the others are written.
                    Err(e @ StoreError::Corrupt { .. }) => {
                        tracing::error!(change_id = c.id, alert_id = c.alert_id, error = %e, "Cannot write an alert change to the chain: its alert cannot be read");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let n = pairs.len();
            if n > 0 {
                self.chain(&pairs).await;
            }
            total += n;
            if self.inner.store.unchained_changes(1).await?.first().map(|c| c.id) == Some(first) {
                // No progress (the chain is refusing writes): try again later.
                return Ok(total);
            }
        }
    }
}

/// The chain event of one history entry: what changed, who, and the alert's state after
/// (its row gone, deleted behind the server's back: empty, and the entry's own details).
fn chain_event(c: &AlertChange, a: Option<&AlertRow>) -> crate::event::NewEvent {
    let mut details = match a {
        Some(a) => json!({
            "alert_id": c.alert_id, "change_id": c.id, "rule": a.rule, "rule_sha256": a.rule_sha256,
            "severity": a.severity.as_str(), "status": a.status.as_str(), "count": a.count,
            "fingerprint": a.fingerprint(), "event_seqs": a.seqs(), "disposition": a.disposition,
        }),
        None => json!({
            "alert_id": c.alert_id, "change_id": c.id, "rule": "", "rule_sha256": "", "severity": "", "status": "",
            "count": 0, "fingerprint": fingerprint("", "", ""), "event_seqs": [], "disposition": null,
        }),
    };
    if let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(&c.details) {
        for (k, v) in extra {
            details[k] = v;
        }
    }
    system_event_with_id(c.chain_event_id(), "alert", &format!("alert_{}", c.action), &c.actor, details, c.at)
}
