//! Chain writes of decision changes: each change becomes an event of the chain through
//! the sequencer (its seq recorded in the store), and a change that goes with an alert is
//! noted in the alert's history through `alerts`.

use serde_json::{Value, json};

use super::{DecisionError, DecisionService};
use crate::event::{NewEvent, system_event_with_id};
use crate::store::StoreError;
use crate::store::decisions::{DecisionChange, DecisionRow};

impl DecisionService {
    /// Writes any changes not yet in the chain (after a crash or a failed write).
    pub async fn chain_pending(&self) -> Result<usize, DecisionError> {
        let mut total = 0;
        loop {
            let read = self.inner.store.read_decision_changes(0, true, None, 500).await?;
            let Some(first) = read.first().map(which) else {
                return Ok(total);
            };
            let mut pending = Vec::with_capacity(read.len());
            for r in read {
                match r {
                    Ok(pair) => pending.push(pair),
                    // A tampered row stays unchained (and is reported again at the next
                    // start); the others are written.
                    Err(e) => {
                        tracing::error!(error = %e, "Cannot write a decision change to the chain: its row cannot be read")
                    }
                }
            }
            total += pending.len();
            if !pending.is_empty() {
                self.chain(&pending).await;
            }
            let next = self.inner.store.read_decision_changes(0, true, None, 1).await?;
            if next.first().map(which) == Some(first) {
                return Ok(total);
            }
        }
    }

    /// Chain events, then the alert notes, of changes just made.
    pub(super) async fn after(&self, pairs: &[(DecisionChange, DecisionRow)]) {
        if pairs.is_empty() {
            return;
        }
        // Other nodes first: the change is committed; its chain write may take longer.
        self.changed();
        self.chain(pairs).await;
        for (c, d) in pairs {
            let Some(alert_id) = d.alert_id else { continue };
            let details = json!({"decision_id": d.id, "decision_change_id": c.id, "scope": d.scope.as_str(),
                "value": d.value, "kind": d.kind.as_str(), "expires_at": d.expires_at, "reason": c.reason});
            let action = format!("decision_{}", c.action);
            if let Err(e) = self.inner.alerts.note(alert_id, &action, &c.actor, details).await {
                tracing::warn!(alert_id, error = %e, "Could not note a decision in its alert's history");
            }
        }
    }

    async fn chain(&self, pairs: &[(DecisionChange, DecisionRow)]) {
        let events: Vec<NewEvent> = pairs.iter().map(|(c, d)| chain_event(c, d)).collect();
        match self.inner.sequencer.submit(events).await {
            Ok(acks) => {
                let seqs: Vec<(i64, i64)> = pairs.iter().zip(acks).map(|((c, _), ack)| (c.id, ack.seq)).collect();
                if let Err(e) = self.inner.store.set_decision_change_seqs(&seqs).await {
                    tracing::warn!(error = %e, "Could not record the chain seqs of decision changes; retried later");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Could not write decision changes to the chain; retried later"),
        }
    }
}

/// Which unchained row this is, to tell whether the oldest one moved: the change id, or
/// for a row that cannot be read the id its error names.
fn which(read: &Result<(DecisionChange, DecisionRow), StoreError>) -> i64 {
    match read {
        Ok((c, _)) => c.id,
        Err(StoreError::Corrupt { seq, .. }) => *seq,
        Err(_) => i64::MIN,
    }
}

/// The chain event of one decision change: who, why, and the decision as it then was.
fn chain_event(c: &DecisionChange, d: &DecisionRow) -> NewEvent {
    let seqs: Value = serde_json::from_str(&d.event_seqs).unwrap_or_else(|_| json!([]));
    let details = json!({
        "decision_id": d.id, "change_id": c.id, "scope": d.scope.as_str(), "value": d.value, "kind": d.kind.as_str(),
        "origin": d.origin, "issued_by": d.actor, "rule": d.rule, "rule_sha256": d.rule_sha256,
        "alert_id": d.alert_id, "event_seqs": seqs, "created_at": d.created_at, "expires_at": d.expires_at,
        "reason": c.reason, "decision_reason": d.reason,
    });
    system_event_with_id(c.chain_event_id(), "response", &format!("decision_{}", c.action), &c.actor, details, c.at)
}
