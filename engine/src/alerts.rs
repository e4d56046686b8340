//! Alerts: what detection rules raise, stored in the `alerts` table. Deduplicated on arrival:
//! an alert whose fingerprint (rule, severity, dedup_key) matches an open alert last seen
//! within the dedup window increments that alert's count instead of opening a new one. The
//! `AlertWriter` task is the single writer of the table, fed by the detection thread.
//! (Acknowledge/resolve, escalation and routing are later stages: `route`.)

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Database, Encode, QueryBuilder, Type};
use tokio::sync::mpsc;

use crate::detect::{Evaluated, RaisedAlert};
use crate::event::format_rfc3339_ms;
use crate::rules::journal::RuleJournal;
use crate::store::Store;

/// Default dedup window (event time), ms.
pub const DEDUP_WINDOW_MS: i64 = 3_600_000;
/// Most event seqs kept on one alert.
pub const MAX_EVENT_SEQS: usize = 100;

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    /// Id.
    pub id: i64,
    /// Rule name.
    pub rule: String,
    /// Rule version.
    pub rule_version: String,
    /// Module SHA-256 of the version that raised it.
    pub rule_sha256: String,
    /// P1..P4.
    pub severity: String,
    /// Title.
    pub title: String,
    /// Dedup key.
    pub dedup_key: String,
    /// open / acknowledged / resolved.
    pub status: String,
    /// Occurrences.
    pub count: i64,
    /// First occurrence (event time, epoch ms).
    pub first_seen: i64,
    /// Latest occurrence (event time, epoch ms).
    pub last_seen: i64,
    /// Triggering event seqs (JSON array text).
    pub event_seqs: String,
    /// Summary fields (JSON object text).
    pub fields: String,
    /// Suggested actions (JSON array text).
    pub actions: String,
    /// When stored (wall clock, epoch ms).
    pub created_at: i64,
}

impl AlertRow {
    /// API shape of DESIGN.md section 6.
    pub fn to_api_json(&self) -> Value {
        let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
        json!({
            "id": self.id, "rule": self.rule, "rule_version": self.rule_version, "rule_sha256": self.rule_sha256,
            "severity": self.severity, "title": self.title, "status": self.status, "count": self.count,
            "first_seen": format_rfc3339_ms(self.first_seen), "last_seen": format_rfc3339_ms(self.last_seen),
            "event_seqs": parse(&self.event_seqs), "dedup_key": self.dedup_key,
            "fields": parse(&self.fields), "actions": parse(&self.actions),
            "created_at": format_rfc3339_ms(self.created_at),
        })
    }

    /// A new row from a raised alert.
    pub fn from_raised(r: &RaisedAlert) -> Self {
        let seqs: Vec<i64> = r.alert.event_seqs.iter().copied().take(MAX_EVENT_SEQS).collect();
        Self {
            id: 0,
            rule: r.rule.clone(),
            rule_version: r.rule_version.clone(),
            rule_sha256: r.rule_sha256.clone(),
            severity: r.alert.severity.clone(),
            title: r.alert.title.clone(),
            dedup_key: r.alert.dedup_key.clone(),
            status: "open".into(),
            count: 1,
            first_seen: r.at,
            last_seen: r.at,
            event_seqs: serde_json::to_string(&seqs).unwrap_or_else(|_| "[]".into()),
            fields: r.alert.fields.to_string(),
            actions: serde_json::to_string(&r.alert.actions).unwrap_or_else(|_| "[]".into()),
            created_at: crate::event::now_ms(),
        }
    }
}

/// Merges the event seqs of a repeat into an existing alert's list (capped).
pub fn merge_seqs(existing: &str, more: &str) -> String {
    let mut seqs: Vec<i64> = serde_json::from_str(existing).unwrap_or_default();
    let extra: Vec<i64> = serde_json::from_str(more).unwrap_or_default();
    for s in extra {
        if seqs.len() >= MAX_EVENT_SEQS {
            break;
        }
        if !seqs.contains(&s) {
            seqs.push(s);
        }
    }
    serde_json::to_string(&seqs).unwrap_or_else(|_| "[]".into())
}

/// Filters of `GET /v1/alerts` (newest first; `before_id` is the cursor).
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Rule name.
    pub rule: Option<String>,
    /// P1..P4.
    pub severity: Option<String>,
    /// open / acknowledged / resolved.
    pub status: Option<String>,
    /// first_seen >= since.
    pub since: Option<i64>,
    /// first_seen < until.
    pub until: Option<i64>,
    /// id < before_id.
    pub before_id: Option<i64>,
    /// Max rows.
    pub limit: i64,
}

/// Appends ` WHERE ...` for an alert filter.
pub fn push_alert_filter<DB: Database>(qb: &mut QueryBuilder<DB>, f: &AlertFilter)
where
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    qb.push(" WHERE 1=1");
    for (column, value) in [("rule", &f.rule), ("severity", &f.severity), ("status", &f.status)] {
        if let Some(v) = value {
            qb.push(format_args!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    for (clause, value) in
        [(" AND first_seen >= ", f.since), (" AND first_seen < ", f.until), (" AND id < ", f.before_id)]
    {
        if let Some(v) = value {
            qb.push(clause).push_bind(v);
        }
    }
}

/// The single writer of the alerts table: stores (deduplicated) alerts from the detection
/// thread, one transaction per detection batch, and records quarantines in the chain with
/// an alert of their own.
pub fn spawn_writer(store: Store, journal: RuleJournal, mut rx: mpsc::UnboundedReceiver<Evaluated>) {
    tokio::spawn(async move {
        while let Some(evaluated) = rx.recv().await {
            // One transaction per detection batch.
            let rows: Vec<AlertRow> = evaluated.alerts.iter().map(AlertRow::from_raised).collect();
            if let Err(e) = store.record_alerts(&rows, DEDUP_WINDOW_MS).await {
                // Isolate the failure: one bad alert must not lose its neighbours.
                tracing::warn!(error = %e, alerts = rows.len(), "Storing a batch of alerts failed; retrying one by one");
                for row in &rows {
                    if let Err(e) = store.record_alert(row, DEDUP_WINDOW_MS).await {
                        tracing::error!(error = %e, rule = %row.rule, "Could not store an alert");
                    }
                }
            }
            for q in &evaluated.quarantined {
                if let Err(e) = record_quarantine(&store, &journal, &q.rule, &q.sha256, &q.reason).await {
                    tracing::error!(error = %e, rule = %q.rule, "Could not record a quarantine");
                }
            }
        }
    });
}

async fn record_quarantine(
    store: &Store,
    journal: &RuleJournal,
    rule: &str,
    sha256: &str,
    reason: &str,
) -> Result<(), crate::rules::RuleError> {
    let details = json!({"rule": rule, "sha256": sha256, "reason": reason});
    journal.quarantined(rule, sha256, reason).await?;
    let raised = RaisedAlert {
        rule: "vigil".into(),
        rule_version: env!("CARGO_PKG_VERSION").into(),
        rule_sha256: sha256.into(),
        alert: crate::rules::abi::EmittedAlert {
            title: format!("Rule {rule} quarantined after repeated faults"),
            severity: "P2".into(),
            dedup_key: format!("quarantine:{rule}:{sha256}"),
            fields: details,
            event_seqs: vec![],
            actions: vec![format!("Fix and redeploy {rule}; GET /v1/rules/{rule}/stats shows its faults")],
        },
        at: crate::event::now_ms(),
    };
    store.record_alert(&AlertRow::from_raised(&raised), DEDUP_WINDOW_MS).await?;
    Ok(())
}
