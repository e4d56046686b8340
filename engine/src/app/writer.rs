//! The alert and decision writer: takes each evaluated detection batch off the pipeline's
//! channel, stores its alerts (retrying one by one while storage fails), issues the
//! decisions tied to them (noting in an alert a decision refused as allowlisted), and records quarantines (chain event through the rule journal,
//! then the alert). It wires three services together, so it lives in the composition root.

use std::collections::HashMap;

use tokio::sync::mpsc;

use crate::alerts::AlertService;
use crate::deploy::RuleJournal;
use crate::finding::{Evaluated, RaisedAlert};
use crate::respond::DecisionService;

/// The detection side: stores the alerts of each detection batch (one transaction per
/// batch) and records quarantines. When storing fails (the database is down, the disk is
/// full), each alert of the batch is retried with backoff for up to `crate::alerts::ALERT_RETRY_FOR`
/// before it is given up (logged with its rule and title); one bad alert never holds back
/// its neighbours.
pub fn spawn_writer(
    service: AlertService,
    journal: RuleJournal,
    decisions: DecisionService,
    mut rx: mpsc::UnboundedReceiver<Evaluated>,
) {
    tokio::spawn(async move {
        while let Some(evaluated) = rx.recv().await {
            record(&service, &journal, &decisions, evaluated).await;
        }
    });
}

/// Records one evaluated batch: its alerts, the decisions tied to them, its quarantines.
/// Returns once all of it is stored (or given up after its retries).
pub(super) async fn record(
    service: &AlertService,
    journal: &RuleJournal,
    decisions: &DecisionService,
    mut evaluated: Evaluated,
) {
    // A new alert whose decision was refused as allowlisted says so in its fields.
    crate::respond::annotate_refusals(&mut evaluated.alerts, &evaluated.refused_decisions);
    let ids = store_with_retry(service, &evaluated.alerts).await;
    if !evaluated.decisions.is_empty() || !evaluated.refused_decisions.is_empty() {
        // Each decision goes with the alert its rule raised under the same dedup key.
        let by_key: HashMap<(String, String), i64> = evaluated
            .alerts
            .iter()
            .zip(ids)
            .filter(|(_, id)| *id > 0)
            .map(|(a, id)| ((a.rule.clone(), a.alert.dedup_key.clone()), id))
            .collect();
        decisions.issue_from_rules(&evaluated.decisions, &by_key).await;
        decisions.refused_from_rules(&evaluated.refused_decisions, &by_key).await;
    }
    for q in &evaluated.quarantined {
        if let Err(e) = journal.quarantined(&q.rule, &q.sha256, &q.reason).await {
            tracing::error!(error = %e, rule = %q.rule, "Could not record a quarantine in the chain");
        }
        if let Err(e) = service.raise_quarantine(&q.rule, &q.sha256, &q.reason).await {
            tracing::error!(error = %e, rule = %q.rule, "Could not record a quarantine");
        }
    }
}

/// Stores a batch's alerts; returns their ids in order (0 for one given up).
async fn store_with_retry(service: &AlertService, alerts: &[RaisedAlert]) -> Vec<i64> {
    let e = match service.record_detected(alerts).await {
        Ok(ids) => return ids,
        Err(e) => e,
    };
    tracing::warn!(error = %e, alerts = alerts.len(), "Storing a batch of alerts failed; retrying one by one");
    let mut ids = vec![0; alerts.len()];
    for (a, slot) in alerts.iter().zip(ids.iter_mut()) {
        let deadline = std::time::Instant::now() + crate::alerts::ALERT_RETRY_FOR;
        let mut delay = std::time::Duration::from_millis(250);
        loop {
            match service.record_detected(std::slice::from_ref(a)).await {
                Ok(got) => {
                    *slot = got.first().copied().unwrap_or(0);
                    break;
                }
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, rule = %a.rule, "Could not store an alert; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(10));
                }
                Err(e) => {
                    tracing::error!(error = %e, rule = %a.rule, title = %a.alert.title, "Could not store an alert; given up");
                    break;
                }
            }
        }
    }
    ids
}
