//! Rows of the alerting tables (migration 0007): alerts, their change history, the
//! notification outbox, silences and escalation timers. The store owns these types; the
//! lifecycle (`alerts`) and delivery (`route`) build on them, so the data path stays
//! one-way: `alerts` -> `store`, `route` -> `alerts` + `store`.

use serde_json::{Value, json};
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::event::format_rfc3339_ms;

/// Most event seqs kept on one alert.
pub const MAX_EVENT_SEQS: usize = 100;

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertRow {
    /// Id (0 before it is stored).
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
    /// When stored (server clock, epoch ms).
    pub created_at: i64,
    /// true_positive / false_positive / benign, once resolved.
    pub disposition: Option<String>,
    /// Key id that acknowledged it.
    pub acked_by: Option<String>,
    /// When acknowledged.
    pub acked_at: Option<i64>,
    /// Key id that resolved it.
    pub resolved_by: Option<String>,
    /// When resolved.
    pub resolved_at: Option<i64>,
    /// Id of the silence that held back its notifications.
    pub silenced_by: Option<String>,
    /// The occurrence count at the last notification.
    pub notified_count: i64,
    /// When last notified (server clock).
    pub last_notified_at: Option<i64>,
    /// Receivers its first notification went to (JSON array text): follow-ups (PagerDuty
    /// acknowledge/resolve, webhook resolved) go to the same ones.
    pub receivers: String,
    /// Escalation policy a routing rule chose (`ctx.escalation_policy(..)`); none: by severity.
    pub escalation_policy: Option<String>,
}

impl AlertRow {
    /// The fingerprint receivers dedupe on (PagerDuty `dedup_key`): rule, severity and
    /// dedup key, hashed.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for part in [&self.rule, &self.severity, &self.dedup_key] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(&h.finalize()[..16])
    }

    /// Receivers of the first notification.
    pub fn receiver_list(&self) -> Vec<String> {
        serde_json::from_str(&self.receivers).unwrap_or_default()
    }

    /// Event seqs.
    pub fn seqs(&self) -> Vec<i64> {
        serde_json::from_str(&self.event_seqs).unwrap_or_default()
    }

    /// API shape (DESIGN.md section 6, plus the lifecycle fields).
    pub fn to_api_json(&self) -> Value {
        let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
        let time = |t: Option<i64>| t.map(format_rfc3339_ms);
        json!({
            "id": self.id, "rule": self.rule, "rule_version": self.rule_version, "rule_sha256": self.rule_sha256,
            "severity": self.severity, "title": self.title, "status": self.status, "count": self.count,
            "first_seen": format_rfc3339_ms(self.first_seen), "last_seen": format_rfc3339_ms(self.last_seen),
            "event_seqs": parse(&self.event_seqs), "dedup_key": self.dedup_key,
            "fingerprint": self.fingerprint(),
            "fields": parse(&self.fields), "actions": parse(&self.actions),
            "created_at": format_rfc3339_ms(self.created_at),
            "disposition": self.disposition, "acked_by": self.acked_by, "acked_at": time(self.acked_at),
            "resolved_by": self.resolved_by, "resolved_at": time(self.resolved_at),
            "silenced_by": self.silenced_by, "receivers": parse(&self.receivers),
            "escalation_policy": self.escalation_policy,
        })
    }
}

/// Merges the event seqs of a repeat into an existing alert's list (capped, no repeats).
pub fn merge_seqs(existing: &str, more: &str) -> String {
    let mut seqs: Vec<i64> = serde_json::from_str(existing).unwrap_or_default();
    let extra: Vec<i64> = serde_json::from_str(more).unwrap_or_default();
    let mut seen: std::collections::HashSet<i64> = seqs.iter().copied().collect();
    for s in extra {
        if seqs.len() >= MAX_EVENT_SEQS {
            break;
        }
        if seen.insert(s) {
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
    /// Dedup key.
    pub dedup_key: Option<String>,
    /// first_seen >= since.
    pub since: Option<i64>,
    /// first_seen < until.
    pub until: Option<i64>,
    /// id < before_id.
    pub before_id: Option<i64>,
    /// Exactly this id.
    pub id: Option<i64>,
    /// Last notified at or before this (and not silenced): reminders due.
    pub notified_before: Option<i64>,
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
    for (column, value) in
        [("rule", &f.rule), ("severity", &f.severity), ("status", &f.status), ("dedup_key", &f.dedup_key)]
    {
        if let Some(v) = value {
            qb.push(format_args!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    for (clause, value) in [
        (" AND first_seen >= ", f.since),
        (" AND first_seen < ", f.until),
        (" AND id < ", f.before_id),
        (" AND id = ", f.id),
    ] {
        if let Some(v) = value {
            qb.push(clause).push_bind(v);
        }
    }
    if let Some(t) = f.notified_before {
        qb.push(" AND silenced_by IS NULL AND last_notified_at <= ").push_bind(t);
    }
}

/// One entry of an alert's history (and of the chain, once `chain_seq` is set).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertChange {
    /// Id (0 before stored).
    pub id: i64,
    /// The alert.
    pub alert_id: i64,
    /// created / repeated / acknowledged / resolved / reopened / escalated / silenced / manual.
    pub action: String,
    /// Key id, `vigil` or `rule:<name>`.
    pub actor: String,
    /// Server clock, epoch ms.
    pub at: i64,
    /// JSON object: what changed (alert id, rule SHA-256, event seqs, status...).
    pub details: String,
    /// Seq of its chain event, once written.
    pub chain_seq: Option<i64>,
}

impl AlertChange {
    /// The event id of its chain event.
    pub fn chain_event_id(&self) -> String {
        format!("{}{}", crate::event::ALERT_CHANGE_ID_PREFIX, self.id)
    }

    /// API shape.
    pub fn to_api_json(&self) -> Value {
        json!({"id": self.id, "action": self.action, "actor": self.actor, "at": format_rfc3339_ms(self.at),
            "details": serde_json::from_str::<Value>(&self.details).unwrap_or(Value::Null),
            "chain_seq": self.chain_seq})
    }
}

/// A message owed to a receiver (the outbox).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotificationRow {
    /// Id (0 before stored).
    pub id: i64,
    /// The alert it is about (none for summaries and digests).
    pub alert_id: Option<i64>,
    /// Receiver name.
    pub receiver: String,
    /// trigger / repeat / acknowledge / resolve / escalation / summary / digest.
    pub kind: String,
    /// Stable across retries and restarts: the Standard Webhooks `webhook-id`. Filled by
    /// the store when empty (`n<change id>-<receiver>`).
    pub idempotency_key: String,
    /// JSON: what to render (alert snapshot, occurrences, summary items...).
    pub payload: String,
    /// pending / delivered / failed / dead / folded / digest / digested.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Not before (server clock, epoch ms).
    pub next_attempt_at: i64,
    /// Created (server clock).
    pub created_at: i64,
    /// Last status change.
    pub updated_at: i64,
    /// When delivered.
    pub delivered_at: Option<i64>,
    /// Last delivery error (never holds a secret: URLs are not included).
    pub last_error: Option<String>,
}

impl NotificationRow {
    /// API shape.
    pub fn to_api_json(&self) -> Value {
        json!({"id": self.id, "alert_id": self.alert_id, "receiver": self.receiver, "kind": self.kind,
            "idempotency_key": self.idempotency_key, "status": self.status, "attempts": self.attempts,
            "next_attempt_at": format_rfc3339_ms(self.next_attempt_at),
            "created_at": format_rfc3339_ms(self.created_at), "updated_at": format_rfc3339_ms(self.updated_at),
            "delivered_at": self.delivered_at.map(format_rfc3339_ms), "last_error": self.last_error})
    }
}

/// Filters of `GET /v1/notifications`.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    /// Status.
    pub status: Option<String>,
    /// Receiver.
    pub receiver: Option<String>,
    /// Alert.
    pub alert_id: Option<i64>,
    /// id < before_id.
    pub before_id: Option<i64>,
    /// Exactly this idempotency key.
    pub idempotency_key: Option<String>,
    /// Max rows.
    pub limit: i64,
}

/// A silence.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SilenceRow {
    /// UUID.
    pub id: String,
    /// JSON array of `{name, op, value}`.
    pub matchers: String,
    /// Active from (epoch ms).
    pub starts_at: i64,
    /// Active until.
    pub ends_at: i64,
    /// Who (as given, plus the key id).
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// When created.
    pub created_at: i64,
    /// When expired early by `DELETE`.
    pub expired_at: Option<i64>,
    /// Alerts it held back.
    pub matched: i64,
}

impl SilenceRow {
    /// Active at `now`.
    pub fn active_at(&self, now: i64) -> bool {
        self.starts_at <= now && now < self.ends_at && self.expired_at.is_none_or(|e| e > now)
    }

    /// API shape.
    pub fn to_api_json(&self, now: i64) -> Value {
        let state = if self.active_at(now) {
            "active"
        } else if now < self.starts_at && self.expired_at.is_none() {
            "pending"
        } else {
            "expired"
        };
        json!({"id": self.id, "matchers": serde_json::from_str::<Value>(&self.matchers).unwrap_or(Value::Null),
            "starts_at": format_rfc3339_ms(self.starts_at), "ends_at": format_rfc3339_ms(self.ends_at),
            "created_by": self.created_by, "comment": self.comment,
            "created_at": format_rfc3339_ms(self.created_at), "expired_at": self.expired_at.map(format_rfc3339_ms),
            "matched": self.matched, "state": state})
    }
}

/// An escalation timer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EscalationRow {
    /// Id.
    pub id: i64,
    /// The alert.
    pub alert_id: i64,
    /// Policy name (`severity:P1` for the per-severity ones).
    pub policy: String,
    /// Level index (0-based) due next.
    pub level: i64,
    /// Repeat round (0-based).
    pub round: i64,
    /// Due (server clock, epoch ms).
    pub due_at: i64,
    /// pending / done / cancelled.
    pub status: String,
}

/// Everything one alert change writes, in one transaction: the alert row (inserted when
/// its id is 0, else updated), its history entry, the notifications it owes, the timers
/// it starts, and whether its pending timers stop.
#[derive(Debug, Clone, Default)]
pub struct AlertWrite {
    /// The alert as it is after the change.
    pub alert: AlertRow,
    /// The history entry (its alert id is filled in).
    pub change: AlertChange,
    /// Notifications (alert id and empty idempotency keys are filled in).
    pub notifications: Vec<NotificationRow>,
    /// Escalation timers to start (alert id filled in).
    pub escalations: Vec<EscalationRow>,
    /// Cancel the alert's pending timers first.
    pub cancel_escalations: bool,
    /// Mark this escalation timer done.
    pub finished_escalation: Option<i64>,
    /// A silence that matched (its `matched` counter goes up).
    pub silence_hit: Option<String>,
}

/// Counts of `GET /v1/alerts/stats`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AlertStats {
    /// Per status.
    pub by_status: Vec<(String, i64)>,
    /// Per severity.
    pub by_severity: Vec<(String, i64)>,
    /// Per rule: (rule, alerts, acknowledged or resolved, sum of ms to ack, resolved,
    /// sum of ms to resolve, with a disposition, false positives).
    pub by_rule: Vec<RuleAlertStats>,
}

/// Per-rule alert numbers.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleAlertStats {
    /// Rule.
    pub rule: String,
    /// Alerts.
    pub alerts: i64,
    /// Acknowledged (ever).
    pub acked: i64,
    /// Sum of (acked_at - created_at), ms.
    pub ack_ms: i64,
    /// Resolved.
    pub resolved: i64,
    /// Sum of (resolved_at - created_at), ms.
    pub resolve_ms: i64,
    /// Resolved with a disposition.
    pub dispositions: i64,
    /// Resolved as false_positive.
    pub false_positives: i64,
}

impl AlertStats {
    /// API shape: counts, mean time to acknowledge and to resolve (seconds), and the
    /// false-positive rate per rule (false positives / alerts resolved with a disposition).
    pub fn to_json(&self) -> Value {
        let pairs = |v: &[(String, i64)]| Value::Object(v.iter().map(|(k, n)| (k.clone(), json!(n))).collect());
        let mean = |sum: i64, n: i64| (n > 0).then(|| sum as f64 / n as f64 / 1000.0);
        let (mut acked, mut ack_ms, mut resolved, mut resolve_ms, mut total) = (0, 0, 0, 0, 0);
        let by_rule: Vec<Value> = self
            .by_rule
            .iter()
            .map(|r| {
                (acked, ack_ms, resolved, resolve_ms, total) =
                    (acked + r.acked, ack_ms + r.ack_ms, resolved + r.resolved, resolve_ms + r.resolve_ms, total + r.alerts);
                json!({"rule": r.rule, "alerts": r.alerts, "acknowledged": r.acked, "resolved": r.resolved,
                    "mtta_seconds": mean(r.ack_ms, r.acked), "mttr_seconds": mean(r.resolve_ms, r.resolved),
                    "dispositions": r.dispositions, "false_positives": r.false_positives,
                    "false_positive_rate": (r.dispositions > 0).then(|| r.false_positives as f64 / r.dispositions as f64)})
            })
            .collect();
        json!({"total": total, "by_status": pairs(&self.by_status), "by_severity": pairs(&self.by_severity),
            "by_rule": by_rule, "mtta_seconds": mean(ack_ms, acked), "mttr_seconds": mean(resolve_ms, resolved)})
    }
}
