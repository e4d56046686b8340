//! Raising alerts: what detection rules raise (a batch from `detect`'s writer, in one
//! transaction) becomes a new alert or a repeat of the open one with the same fingerprint,
//! notified through the [`Routing`](super::Routing) unless a silence holds it; and the
//! alerts Vigil raises itself (rule quarantines, integrity failures from `ledger`).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use vigil_sdk::Severity;

use super::silence;
use super::{AlertError, AlertService, Routed};
use crate::finding::RaisedAlert;
use crate::store::alerts::{MAX_EVENT_SEQS, merge_seqs};
use crate::store::{AlertChange, AlertRow, AlertStatus, AlertWrite};

impl AlertService {
    /// Stores the alerts of one detection batch (one transaction), deduplicating on the
    /// fingerprint; returns the alert ids in order.
    pub async fn record_detected(&self, raised: &[RaisedAlert]) -> Result<Vec<i64>, AlertError> {
        if raised.is_empty() {
            return Ok(Vec::new());
        }
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let silences = self.active_silences(now).await?;
        let window = (self.inner.config.dedup_window_secs as i64).saturating_mul(1000);
        let mut writes: Vec<AlertWrite> = Vec::new();
        // Fingerprint -> index in `writes`, for repeats within this batch.
        let mut pending: HashMap<(String, Severity, String), usize> = HashMap::new();
        for r in raised {
            let new = row_from_raised(r, now);
            let fp = (new.rule.clone(), new.severity, new.dedup_key.clone());
            if let Some(&i) = pending.get(&fp)
                && writes[i].alert.last_seen >= new.first_seen - window
            {
                // A repeat within this batch folds into the write of the same alert.
                let w = &mut writes[i];
                let again = self.repeat(w.alert.clone(), &new, now, &silences);
                w.alert = again.alert;
                // Several thresholds crossed in one batch: one notification per receiver
                // and kind, the latest.
                for n in again.notifications {
                    w.notifications.retain(|m| !(m.receiver == n.receiver && m.kind == n.kind));
                    w.notifications.push(n);
                }
                w.escalations.extend(again.escalations);
                w.silence_hit = w.silence_hit.take().or(again.silence_hit);
                let mut d: Value = serde_json::from_str(&w.change.details).unwrap_or_else(|_| json!({}));
                d["count"] = json!(w.alert.count);
                w.change.details = d.to_string();
                continue;
            }
            let existing = self.inner.store.find_open_alert(&fp.0, fp.1, &fp.2, new.first_seen - window).await?;
            let write = match existing {
                Some(alert) => self.repeat(alert, &new, now, &silences),
                None => self.create(new, &silences, now, "created", &format!("rule:{}", r.rule), json!({})),
            };
            pending.insert(fp, writes.len());
            writes.push(write);
        }
        self.commit(&mut writes).await?;
        Ok(writes.iter().map(|w| w.alert.id).collect())
    }

    pub(super) fn create(
        &self,
        mut alert: AlertRow,
        silences: &[Arc<silence::CompiledSilence>],
        now: i64,
        action: &str,
        actor: &str,
        details: Value,
    ) -> AlertWrite {
        let silence = silence::first_match(silences, &alert);
        let mut write = AlertWrite::default();
        if let Some(id) = &silence {
            alert.silenced_by = Some(id.clone());
        } else {
            let routed = self.inner.routing.receivers_for(&alert);
            let receivers = routed.receivers;
            alert.escalation_policy = routed.policy;
            alert.receivers = serde_json::to_string(&receivers).unwrap_or_else(|_| "[]".into());
            alert.notified_count = alert.count;
            alert.last_notified_at = Some(now);
            write.notifications = self.notifications("trigger", &receivers, now, json!({}));
            write.escalations.extend(self.inner.routing.escalation_start(&alert, now));
        }
        let mut d = details;
        d["silenced_by"] = json!(silence);
        d["receivers"] = serde_json::from_str(&alert.receivers).unwrap_or(Value::Null);
        write.change = AlertChange {
            action: action.into(),
            actor: actor.into(),
            at: now,
            details: d.to_string(),
            ..Default::default()
        };
        write.silence_hit = silence;
        write.alert = alert;
        write
    }

    fn repeat(
        &self,
        mut alert: AlertRow,
        new: &AlertRow,
        now: i64,
        silences: &[Arc<silence::CompiledSilence>],
    ) -> AlertWrite {
        alert.count += 1;
        alert.last_seen = alert.last_seen.max(new.last_seen);
        alert.event_seqs = merge_seqs(&alert.event_seqs, &new.event_seqs);
        let mut write = AlertWrite::default();
        // Silences are looked at again on every occurrence: one created since holds back
        // further notifications, and one that ended lets them through.
        let silence = silence::first_match(silences, &alert);
        let lifted = alert.silenced_by.is_some() && silence.is_none();
        if silence.is_some() && silence != alert.silenced_by {
            write.silence_hit = silence.clone();
        }
        alert.silenced_by = silence;
        let cfg = &self.inner.config;
        let threshold = cfg.renotify_at.contains(&alert.count);
        let interval = cfg.repeat_interval_secs as i64 * 1000;
        let reminder = alert.status == AlertStatus::Open
            && interval > 0
            && alert.last_notified_at.is_some_and(|t| now.saturating_sub(t) >= interval);
        let never_notified = alert.last_notified_at.is_none();
        if alert.silenced_by.is_none() && ((lifted && never_notified) || threshold || reminder) {
            let routed = if threshold || never_notified {
                self.inner.routing.receivers_for(&alert)
            } else {
                Routed { receivers: self.reminder_receivers(&alert), policy: None }
            };
            let receivers = routed.receivers;
            if never_notified {
                alert.escalation_policy = routed.policy;
                // Held back by a silence until now: this is its first notification.
                alert.receivers = serde_json::to_string(&receivers).unwrap_or_else(|_| "[]".into());
                write.notifications = self.notifications("trigger", &receivers, now, json!({}));
                if alert.status == AlertStatus::Open {
                    write.escalations.extend(self.inner.routing.escalation_start(&alert, now));
                }
            } else {
                let reason = if threshold { "threshold" } else { "repeat_interval" };
                let extra = json!({"occurrences": alert.count, "reason": reason});
                write.notifications = self.notifications("repeat", &receivers, now, extra);
            }
            alert.notified_count = alert.count;
            alert.last_notified_at = Some(now);
        }
        write.change = AlertChange {
            action: "repeated".into(),
            actor: format!("rule:{}", alert.rule),
            at: now,
            details: json!({"count": alert.count, "last_seen": alert.last_seen, "new_event_seqs": new.seqs(),
                "notified": !write.notifications.is_empty()})
            .to_string(),
            ..Default::default()
        };
        write.alert = alert;
        write
    }

    /// Raises the alert of a rule quarantine (the writer in `app` records its chain event
    /// through the rule journal first).
    pub async fn raise_quarantine(&self, rule: &str, sha256: &str, reason: &str) -> Result<(), AlertError> {
        let raised = RaisedAlert::by_vigil(
            sha256.into(),
            crate::finding::EmittedAlert {
                title: format!("Rule {rule} quarantined after repeated faults"),
                severity: Severity::P2,
                dedup_key: format!("quarantine:{rule}:{sha256}"),
                fields: json!({"rule": rule, "sha256": sha256, "reason": reason}),
                event_seqs: vec![],
                actions: vec![format!("Fix and redeploy {rule}; GET /v1/rules/{rule}/stats shows its faults")],
            },
            self.now(),
        );
        self.record_detected(std::slice::from_ref(&raised)).await?;
        Ok(())
    }

    /// Raises the P1 alert of an integrity failure (the database disagrees with the anchor
    /// or moved under the sequencer); one alert per kind and seq.
    pub async fn record_integrity_failure(&self, failures: &[crate::ledger::chain::Failure]) -> Result<(), AlertError> {
        let Some(first) = failures.first() else { return Ok(()) };
        let kinds: Vec<String> = failures.iter().map(|f| format!("{:?}@{}", f.kind, f.seq)).collect();
        let raised = RaisedAlert::by_vigil(
            String::new(),
            crate::finding::EmittedAlert {
                title: format!(
                    "Integrity failure: {} at seq {} ({} finding(s)); the log refuses writes",
                    serde_json::to_value(first.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    first.seq,
                    failures.len()
                ),
                severity: Severity::P1,
                dedup_key: format!("{}{}", crate::finding::INTEGRITY_DEDUP_PREFIX, kinds.join(",")),
                fields: json!({"failures": failures}),
                event_seqs: vec![],
                actions: vec![
                    "Compare the database with its backups and the anchor; GET /v1/integrity/verify lists the findings"
                        .into(),
                    "When the cause is understood: vigil integrity accept --reason \"...\" (recorded in the chain)"
                        .into(),
                ],
            },
            self.now(),
        );
        self.record_detected(std::slice::from_ref(&raised)).await?;
        Ok(())
    }
}

/// Text the store keeps as-is on both backends: NUL (which PostgreSQL's TEXT refuses)
/// becomes U+FFFD, so one odd byte in an event can never make an alert unstorable.
pub fn storable(text: &str) -> String {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text.to_owned() }
}

/// A new alert row from a raised alert.
pub fn row_from_raised(r: &RaisedAlert, now: i64) -> AlertRow {
    let seqs: Vec<i64> = r.alert.event_seqs.iter().copied().take(MAX_EVENT_SEQS).collect();
    AlertRow {
        rule: r.rule.clone(),
        rule_version: r.rule_version.clone(),
        rule_sha256: r.rule_sha256.clone(),
        severity: r.alert.severity,
        title: storable(&r.alert.title),
        dedup_key: storable(&r.alert.dedup_key),
        status: AlertStatus::Open,
        count: 1,
        first_seen: r.at,
        last_seen: r.at,
        event_seqs: serde_json::to_string(&seqs).unwrap_or_else(|_| "[]".into()),
        fields: r.alert.fields.to_string(),
        actions: serde_json::to_string(&r.alert.actions).unwrap_or_else(|_| "[]".into()),
        created_at: now,
        receivers: "[]".into(),
        ..AlertRow::default()
    }
}
