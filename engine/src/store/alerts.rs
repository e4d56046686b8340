//! Alerts (`alerts` table, migration 0007): the [`AlertRow`], its filter, and
//! [`AlertWrite`], one alert change written in one transaction with its history entry,
//! notifications, escalation timers and silence hit. The lifecycle (`crate::alerts`) and
//! delivery (`route`) build on them; history, stats, timers, outbox and silences have their
//! own files.

use serde_json::{Value, json};
use sqlx::{Database, Encode, QueryBuilder, Type};
use vigil_sdk::Severity;

use super::{AlertChange, EscalationRow, NotificationRow, Store, StoreError, dispatch};
use crate::event::format_rfc3339_ms;

/// Most event seqs kept on one alert.
pub const MAX_EVENT_SEQS: usize = 100;

text_enum! {
    /// Where an alert is in its lifecycle (`alerts.status`).
    pub enum AlertStatus {
        /// Raised (or reopened), nobody has acknowledged it.
        Open = "open",
        /// Someone is on it.
        Acknowledged = "acknowledged",
        /// Done (with a disposition).
        Resolved = "resolved",
    }
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// Id (0 before it is stored).
    pub id: i64,
    /// Rule name.
    pub rule: String,
    pub rule_version: String,
    /// Module SHA-256 of the version that raised it.
    pub rule_sha256: String,
    pub severity: Severity,
    pub title: String,
    pub dedup_key: String,
    pub status: AlertStatus,
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

impl Default for AlertRow {
    /// An empty open P4 alert, to be filled in.
    fn default() -> Self {
        Self {
            id: 0,
            rule: String::new(),
            rule_version: String::new(),
            rule_sha256: String::new(),
            severity: Severity::P4,
            title: String::new(),
            dedup_key: String::new(),
            status: AlertStatus::Open,
            count: 0,
            first_seen: 0,
            last_seen: 0,
            event_seqs: String::new(),
            fields: String::new(),
            actions: String::new(),
            created_at: 0,
            disposition: None,
            acked_by: None,
            acked_at: None,
            resolved_by: None,
            resolved_at: None,
            silenced_by: None,
            notified_count: 0,
            last_notified_at: None,
            receivers: String::new(),
            escalation_policy: None,
        }
    }
}

impl AlertRow {
    /// The fingerprint receivers dedupe on (PagerDuty `dedup_key`): rule, severity and
    /// dedup key, hashed.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.rule, self.severity.as_str(), &self.dedup_key)
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
            "severity": self.severity.as_str(), "title": self.title, "status": self.status.as_str(), "count": self.count,
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

/// The fingerprint of an alert of `rule`, `severity` and `dedup_key` ([`AlertRow::fingerprint`]).
pub fn fingerprint(rule: &str, severity: &str, dedup_key: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for part in [rule, severity, dedup_key] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
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
    pub severity: Option<Severity>,
    pub status: Option<AlertStatus>,
    pub dedup_key: Option<String>,
    /// first_seen >= since.
    pub since: Option<i64>,
    /// first_seen < until.
    pub until: Option<i64>,
    /// Only rows with an id below this one (the cursor of the next page).
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
    for (column, value) in [
        ("rule", f.rule.as_deref()),
        ("severity", f.severity.map(Severity::as_str)),
        ("status", f.status.map(AlertStatus::as_str)),
        ("dedup_key", f.dedup_key.as_deref()),
    ] {
        if let Some(v) = value {
            qb.push(format_args!(" AND {column} = ")).push_bind(v.to_owned());
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
    /// Mark this escalation timer done: the write's claim on it. Only the write whose
    /// update moves the timer from pending fires it; any other (a second node that read the
    /// same due timer) is skipped whole.
    pub finished_escalation: Option<i64>,
    /// A reminder's claim: the alert's `last_notified_at` as read. The write is skipped
    /// whole when the stored value moved since (another node reminded it first).
    pub reminded_from: Option<i64>,
    /// Set by the store: a claim above was lost, and nothing of this write was stored.
    pub skipped: bool,
    /// A silence that matched (its `matched` counter goes up).
    pub silence_hit: Option<String>,
}

impl Store {
    /// Alerts matching a filter, newest first.
    pub async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
        dispatch!(self, s => s.list_alerts(filter).await)
    }

    pub async fn alert(&self, id: i64) -> Result<Option<AlertRow>, StoreError> {
        let filter = AlertFilter { id: Some(id), limit: 1, ..AlertFilter::default() };
        Ok(self.list_alerts(&filter).await?.into_iter().next())
    }

    /// The newest unresolved alert with this fingerprint last seen at or after `since`.
    pub async fn find_open_alert(
        &self,
        rule: &str,
        severity: Severity,
        dedup_key: &str,
        since: i64,
    ) -> Result<Option<AlertRow>, StoreError> {
        dispatch!(self, s => s.find_open_alert(rule, severity, dedup_key, since).await)
    }

    /// Writes alert changes, each with its history entry, notifications and timers, in one
    /// transaction; fills in the ids.
    pub async fn commit_alert_writes(&self, writes: &mut [AlertWrite]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.commit_alert_writes(writes).await)
    }

    /// Moves `last_notified_at` of alerts (a reminder that had nobody to go to).
    pub async fn touch_notified(&self, ids: &[i64], at: i64) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.touch_notified(ids, at).await)
    }
}

/// Columns of `alerts` (`alert_row` reads them by name).
macro_rules! alert_columns {
    () => {
        "id, rule, rule_version, rule_sha256, severity, title, dedup_key, status, count, first_seen, last_seen, \
         event_seqs, fields, actions, created_at, disposition, acked_by, acked_at, resolved_by, resolved_at, \
         silenced_by, notified_count, last_notified_at, receivers, escalation_policy"
    };
}

/// Columns written by an alert insert (all but `id`).
macro_rules! alert_insert_columns {
    () => {
        "rule, rule_version, rule_sha256, severity, title, dedup_key, status, count, first_seen, last_seen, \
         event_seqs, fields, actions, created_at, disposition, acked_by, acked_at, resolved_by, resolved_at, \
         silenced_by, notified_count, last_notified_at, receivers, escalation_policy"
    };
}

/// `commit_alert_writes` needs `outbox_queries!` (outbox.rs) expanded in the same module: it
/// stores notifications through its `insert_notifications`.
macro_rules! alert_queries {
    ($store:ty, $db:ty, $row:ty, writer: $writer:ident) => {
        impl $store {
            pub(super) async fn list_alerts(&self, f: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!("SELECT ", alert_columns!(), " FROM alerts"));
                alerts::push_alert_filter(&mut qb, f);
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
                let rows = qb.build().fetch_all(&self.$writer).await?;
                rows.iter().map(alert_row).collect()
            }

            pub(super) async fn find_open_alert(
                &self,
                rule: &str,
                severity: Severity,
                dedup_key: &str,
                last_seen_since: i64,
            ) -> Result<Option<AlertRow>, StoreError> {
                let mut qb =
                    QueryBuilder::<$db>::new(concat!("SELECT ", alert_columns!(), " FROM alerts WHERE rule = "));
                qb.push_bind(rule.to_owned())
                    .push(" AND severity = ")
                    .push_bind(severity.as_str())
                    .push(" AND dedup_key = ")
                    .push_bind(dedup_key.to_owned())
                    .push(" AND status <> ")
                    .push_bind(AlertStatus::Resolved.as_str())
                    .push(" AND last_seen >= ")
                    .push_bind(last_seen_since)
                    .push(" ORDER BY id DESC LIMIT 1");
                qb.build().fetch_optional(&self.$writer).await?.as_ref().map(alert_row).transpose()
            }

            pub(super) async fn commit_alert_writes(&self, writes: &mut [AlertWrite]) -> Result<(), StoreError> {
                let mut tx = self.$writer.begin().await?;
                for w in writes.iter_mut() {
                    // Claims first (on PostgreSQL a second node's statement waits for the
                    // first's commit, then matches nothing), and the timers before the alert
                    // row, in every write, so two writes never lock them in opposite orders.
                    if let Some(done) = w.finished_escalation {
                        let mut qb = QueryBuilder::<$db>::new("UPDATE escalations SET status = 'done' WHERE id = ");
                        qb.push_bind(done).push(" AND status = 'pending'");
                        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
                            w.skipped = true;
                            continue;
                        }
                    }
                    if let Some(was) = w.reminded_from {
                        let mut qb = QueryBuilder::<$db>::new(
                            "UPDATE alerts SET last_notified_at = last_notified_at WHERE id = ",
                        );
                        qb.push_bind(w.alert.id).push(" AND last_notified_at = ").push_bind(was);
                        if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
                            w.skipped = true;
                            continue;
                        }
                    }
                    if w.cancel_escalations && w.alert.id != 0 {
                        let mut qb =
                            QueryBuilder::<$db>::new("UPDATE escalations SET status = 'cancelled' WHERE alert_id = ");
                        qb.push_bind(w.alert.id).push(" AND status = 'pending'");
                        qb.build().execute(&mut *tx).await?;
                    }
                    let a = &w.alert;
                    if a.id == 0 {
                        w.alert.id = insert_alert(&mut tx, a).await?;
                    } else {
                        update_alert(&mut tx, a).await?;
                    }
                    let alert_id = w.alert.id;
                    w.change.alert_id = alert_id;
                    let c = &w.change;
                    let mut qb =
                        QueryBuilder::<$db>::new("INSERT INTO alert_changes (alert_id, action, actor, at, details) ");
                    qb.push_values([c], |mut b, c| {
                        b.push_bind(c.alert_id)
                            .push_bind(c.action.clone())
                            .push_bind(c.actor.clone())
                            .push_bind(c.at)
                            .push_bind(c.details.clone());
                    });
                    qb.push(" RETURNING id");
                    w.change.id = qb.build_query_scalar().fetch_one(&mut *tx).await?;
                    let change_id = w.change.id;
                    for e in w.escalations.iter_mut() {
                        e.alert_id = alert_id;
                        let mut qb = QueryBuilder::<$db>::new(
                            "INSERT INTO escalations (alert_id, policy, level, round, due_at, status) ",
                        );
                        qb.push_values([&*e], |mut b, e| {
                            b.push_bind(e.alert_id)
                                .push_bind(e.policy.clone())
                                .push_bind(e.level)
                                .push_bind(e.round)
                                .push_bind(e.due_at)
                                .push_bind(e.status.clone());
                        });
                        qb.push(" RETURNING id");
                        e.id = qb.build_query_scalar().fetch_one(&mut *tx).await?;
                    }
                    let mut per_receiver: HashMap<String, usize> = HashMap::new();
                    for n in w.notifications.iter_mut() {
                        n.alert_id = Some(alert_id);
                        let k = per_receiver.entry(n.receiver.clone()).or_default();
                        if n.idempotency_key.is_empty() {
                            // A second message to one receiver in one change gets a suffix.
                            n.idempotency_key = match *k {
                                0 => format!("n{change_id}-{}", n.receiver),
                                k => format!("n{change_id}-{}-{k}", n.receiver),
                            };
                        }
                        *k += 1;
                    }
                    insert_notifications(&mut tx, &mut w.notifications).await?;
                    if let Some(silence) = &w.silence_hit {
                        let mut qb = QueryBuilder::<$db>::new("UPDATE silences SET matched = matched + 1 WHERE id = ");
                        qb.push_bind(silence.clone());
                        qb.build().execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            pub(super) async fn touch_notified(&self, ids: &[i64], at: i64) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE alerts SET last_notified_at = ");
                qb.push_bind(at).push(" WHERE id IN ");
                crate::store::push_ids(&mut qb, ids);
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }
        }

        fn alert_row(r: &$row) -> Result<AlertRow, StoreError> {
            let c = Columns::new(r, "alerts")?;
            Ok(AlertRow {
                id: c.id(),
                rule: c.get("rule")?,
                rule_version: c.get("rule_version")?,
                rule_sha256: c.get("rule_sha256")?,
                severity: c.parse("severity", parse_severity, Severity::ALL.map(Severity::as_str))?,
                title: c.get("title")?,
                dedup_key: c.get("dedup_key")?,
                status: c.parse("status", AlertStatus::parse, AlertStatus::names())?,
                count: c.get("count")?,
                first_seen: c.get("first_seen")?,
                last_seen: c.get("last_seen")?,
                event_seqs: c.get("event_seqs")?,
                fields: c.get("fields")?,
                actions: c.get("actions")?,
                created_at: c.get("created_at")?,
                disposition: c.get("disposition")?,
                acked_by: c.get("acked_by")?,
                acked_at: c.get("acked_at")?,
                resolved_by: c.get("resolved_by")?,
                resolved_at: c.get("resolved_at")?,
                silenced_by: c.get("silenced_by")?,
                notified_count: c.get("notified_count")?,
                last_notified_at: c.get("last_notified_at")?,
                receivers: c.get("receivers")?,
                escalation_policy: c.get("escalation_policy")?,
            })
        }

        /// Inserts a new alert row; returns its id.
        async fn insert_alert(tx: &mut sqlx::Transaction<'_, $db>, a: &AlertRow) -> Result<i64, StoreError> {
            let mut qb = QueryBuilder::<$db>::new(concat!("INSERT INTO alerts (", alert_insert_columns!(), ") "));
            qb.push_values([a], |mut b, a| {
                b.push_bind(a.rule.clone())
                    .push_bind(a.rule_version.clone())
                    .push_bind(a.rule_sha256.clone())
                    .push_bind(a.severity.as_str())
                    .push_bind(a.title.clone())
                    .push_bind(a.dedup_key.clone())
                    .push_bind(a.status.as_str())
                    .push_bind(a.count)
                    .push_bind(a.first_seen)
                    .push_bind(a.last_seen)
                    .push_bind(a.event_seqs.clone())
                    .push_bind(a.fields.clone())
                    .push_bind(a.actions.clone())
                    .push_bind(a.created_at)
                    .push_bind(a.disposition.clone())
                    .push_bind(a.acked_by.clone())
                    .push_bind(a.acked_at)
                    .push_bind(a.resolved_by.clone())
                    .push_bind(a.resolved_at)
                    .push_bind(a.silenced_by.clone())
                    .push_bind(a.notified_count)
                    .push_bind(a.last_notified_at)
                    .push_bind(a.receivers.clone())
                    .push_bind(a.escalation_policy.clone());
            });
            qb.push(" RETURNING id");
            Ok(qb.build_query_scalar().fetch_one(&mut **tx).await?)
        }

        /// Writes the mutable columns of an existing alert row.
        async fn update_alert(tx: &mut sqlx::Transaction<'_, $db>, a: &AlertRow) -> Result<(), StoreError> {
            let mut qb = QueryBuilder::<$db>::new("UPDATE alerts SET status = ");
            qb.push_bind(a.status.as_str())
                .push(", count = ")
                .push_bind(a.count)
                .push(", last_seen = ")
                .push_bind(a.last_seen)
                .push(", event_seqs = ")
                .push_bind(a.event_seqs.clone())
                .push(", disposition = ")
                .push_bind(a.disposition.clone())
                .push(", acked_by = ")
                .push_bind(a.acked_by.clone())
                .push(", acked_at = ")
                .push_bind(a.acked_at)
                .push(", resolved_by = ")
                .push_bind(a.resolved_by.clone())
                .push(", resolved_at = ")
                .push_bind(a.resolved_at)
                .push(", silenced_by = ")
                .push_bind(a.silenced_by.clone())
                .push(", notified_count = ")
                .push_bind(a.notified_count)
                .push(", last_notified_at = ")
                .push_bind(a.last_notified_at)
                .push(", receivers = ")
                .push_bind(a.receivers.clone())
                .push(", escalation_policy = ")
                .push_bind(a.escalation_policy.clone())
                .push(" WHERE id = ")
                .push_bind(a.id);
            qb.build().execute(&mut **tx).await?;
            Ok(())
        }
    };
}

pub(crate) use {alert_columns, alert_insert_columns, alert_queries};
