//! Alert lifecycle: what detection rules raise becomes an alert (deduplicated on its
//! fingerprint: rule, severity, dedup key), which people then acknowledge, resolve with a
//! disposition, or reopen; unacknowledged alerts escalate.
//!
//! [`AlertService`] is the one writer of the alerting tables. Every change is written in
//! one transaction with its history entry (`alert_changes`), the notifications it owes
//! (the outbox) and its escalation timers; the history entry is then written to the chain
//! as an event with id `vigil:alert:<change id>` (any not yet written are written at start,
//! and the id makes a second write a no-op), so the alert history is tamper-evident. Where
//! the notifications go is decided downstream, by the [`Routing`] given at start
//! (`route`), which this module knows only as that trait.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock::Clock;
use crate::config::AlertsConfig;
use crate::event::system_event_with_id;
use crate::finding::RaisedAlert;
use crate::ledger::sequencer::SequencerHandle;
use crate::store::alerting::{MAX_EVENT_SEQS, merge_seqs};
use crate::store::{AlertChange, AlertRow, AlertWrite, EscalationRow, NotificationRow, SilenceRow, Store, StoreError};

/// Errors of lifecycle operations (mapped to 404 / 409 / 400 by the API).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// No such alert.
    #[error("no alert {0}")]
    NotFound(i64),
    /// The change does not apply in the alert's current status.
    #[error("{0}")]
    Conflict(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a notification is for; follow-ups go only to receivers that take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    /// The alert was acknowledged.
    Acknowledge,
    /// The alert was resolved.
    Resolve,
    /// The alert is still open after the repeat interval.
    Reminder,
}

impl FollowUp {
    /// Notification kind.
    pub fn kind(self) -> &'static str {
        match self {
            FollowUp::Acknowledge => "acknowledge",
            FollowUp::Resolve => "resolve",
            FollowUp::Reminder => "repeat",
        }
    }
}

/// Where an alert goes, as the routing decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routed {
    /// Receivers.
    pub receivers: Vec<String>,
    /// The escalation policy a routing rule chose by name (none: by severity).
    pub policy: Option<String>,
}

/// Routing decisions the lifecycle needs, implemented by `route`.
pub trait Routing: Send + Sync {
    /// Receivers of an alert that needs notifying (routing rules, else the defaults).
    fn receivers_for(&self, alert: &AlertRow) -> Routed;
    /// Whether `receiver` takes this follow-up (PagerDuty acknowledge, webhook resolved...).
    fn follows_up(&self, receiver: &str, what: FollowUp) -> bool;
    /// The first escalation timer of a newly notified alert, if a policy applies.
    fn escalation_start(&self, alert: &AlertRow, now: i64) -> Option<EscalationRow>;
    /// A due timer: the receivers of its level (empty: the alert's own) and the next timer.
    fn escalation_step(&self, timer: &EscalationRow, alert: &AlertRow) -> Option<(Vec<String>, Option<EscalationRow>)>;
    /// New outbox rows exist.
    fn wake(&self);
}

/// Silence matchers (`=`, `!=`, `=~` on rule, severity, dedup_key, title, `fields.<key>`).
pub mod silence {
    use serde::{Deserialize, Serialize};

    use crate::store::AlertRow;

    /// One matcher.
    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    pub struct Matcher {
        /// rule, severity, dedup_key, title or `fields.<key>`.
        pub name: String,
        /// `=`, `!=` or `=~` (a regular expression matching the whole value).
        pub op: String,
        /// The value or pattern.
        pub value: String,
    }

    /// Most matchers in one silence, and the longest pattern.
    pub const MAX_MATCHERS: usize = 32;
    /// Longest value or pattern, bytes.
    pub const MAX_VALUE: usize = 1024;

    impl Matcher {
        /// Checks the matcher is well formed (and compiles its pattern).
        pub fn validate(&self) -> Result<(), String> {
            let name_ok = matches!(self.name.as_str(), "rule" | "severity" | "dedup_key" | "title")
                || self.name.strip_prefix("fields.").is_some_and(|k| !k.is_empty());
            if !name_ok {
                return Err(format!(
                    "matcher name `{}` must be rule, severity, dedup_key, title or fields.<key>",
                    self.name
                ));
            }
            if self.value.len() > MAX_VALUE {
                return Err(format!("matcher values are at most {MAX_VALUE} bytes"));
            }
            match self.op.as_str() {
                "=" | "!=" => Ok(()),
                "=~" => regex_lite::Regex::new(&format!("^(?:{})$", self.value))
                    .map(|_| ())
                    .map_err(|e| format!("matcher pattern `{}` is not a valid regular expression: {e}", self.value)),
                other => Err(format!("matcher op `{other}` must be =, != or =~")),
            }
        }

        /// The matcher with its pattern compiled once (for matching many alerts).
        pub fn compile(&self) -> Compiled {
            let re = (self.op == "=~").then(|| regex_lite::Regex::new(&format!("^(?:{})$", self.value)).ok()).flatten();
            Compiled { matcher: self.clone(), re }
        }

        /// Whether the alert matches (compiles a pattern each time: see [`Self::compile`]).
        pub fn matches(&self, alert: &AlertRow) -> bool {
            self.compile().matches(alert)
        }
    }

    /// A matcher ready to test many alerts.
    #[derive(Debug, Clone)]
    pub struct Compiled {
        matcher: Matcher,
        re: Option<regex_lite::Regex>,
    }

    impl Compiled {
        /// Whether the alert matches.
        pub fn matches(&self, alert: &AlertRow) -> bool {
            let m = &self.matcher;
            let fields;
            let value: Option<&str> = match m.name.as_str() {
                "rule" => Some(&alert.rule),
                "severity" => Some(&alert.severity),
                "dedup_key" => Some(&alert.dedup_key),
                "title" => Some(&alert.title),
                other => {
                    let key = other.strip_prefix("fields.").unwrap_or_default();
                    fields = serde_json::from_str::<serde_json::Value>(&alert.fields).ok().and_then(|f| {
                        f.get(key).map(|v| match v {
                            serde_json::Value::String(s) => s.clone(),
                            v => v.to_string(),
                        })
                    });
                    fields.as_deref()
                }
            };
            let v = value.unwrap_or("");
            match m.op.as_str() {
                "=" => value.is_some() && v == m.value,
                "!=" => v != m.value,
                "=~" => self.re.as_ref().is_some_and(|re| re.is_match(v)),
                _ => false,
            }
        }
    }

    /// Whether every matcher matches (a silence with no matchers matches nothing).
    pub fn matches_all(matchers: &[Compiled], alert: &AlertRow) -> bool {
        !matchers.is_empty() && matchers.iter().all(|m| m.matches(alert))
    }

    /// The id of the first of `silences` whose matchers all match the alert.
    pub fn first_match(silences: &[(crate::store::SilenceRow, Vec<Compiled>)], alert: &AlertRow) -> Option<String> {
        silences.iter().find(|(_, m)| matches_all(m, alert)).map(|(s, _)| s.id.clone())
    }

    /// Most silences active or pending at once.
    pub const MAX_ACTIVE_SILENCES: usize = 1000;
}

/// A manual alert (`POST /v1/alerts`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualAlert {
    /// Title.
    pub title: String,
    /// P1..P4.
    pub severity: String,
    /// Dedup key (default: a fresh one, so each manual alert stands alone).
    pub dedup_key: Option<String>,
    /// Summary fields.
    #[serde(default)]
    pub fields: serde_json::Map<String, Value>,
    /// Event seqs it concerns (integers; `5.0` is read as 5, as JSON Schema does).
    #[serde(default, deserialize_with = "integers")]
    pub event_seqs: Vec<i64>,
    /// Suggested actions.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Free text, kept as `fields.description`.
    #[serde(default, alias = "message")]
    pub description: Option<String>,
}

/// A JSON number as an integer, where an integral float (`5.0`) counts as one, as in JSON
/// Schema (up to 9e15, where floats still hold every integer).
pub fn integral(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
}

/// A list of integers where an integral float (`5.0`) counts as an integer ([`integral`]).
fn integers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    use serde::Deserialize as _;
    use serde::de::Error as _;
    Vec::<serde_json::Number>::deserialize(d)?
        .iter()
        .map(|n| integral(n).ok_or_else(|| D::Error::custom(format!("{n} is not an integer seq"))))
        .collect()
}

/// The lifecycle: the single writer of alerts and their history and outbox rows.
#[derive(Clone)]
pub struct AlertService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    sequencer: SequencerHandle,
    clock: Clock,
    config: AlertsConfig,
    routing: Arc<dyn Routing>,
    /// One change at a time: reads of the current state and the write that follows agree.
    lock: tokio::sync::Mutex<()>,
}

impl AlertService {
    /// A service writing to `store` and the chain of `sequencer`.
    pub fn new(
        store: Store,
        sequencer: SequencerHandle,
        clock: Clock,
        config: AlertsConfig,
        routing: Arc<dyn Routing>,
    ) -> Self {
        Self { inner: Arc::new(Inner { store, sequencer, clock, config, routing, lock: Default::default() }) }
    }

    /// The clock lifecycle times come from.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    async fn active_silences(&self, now: i64) -> Result<Vec<(SilenceRow, Vec<silence::Compiled>)>, StoreError> {
        let all = self.inner.store.live_silences(now).await?;
        Ok(all
            .into_iter()
            .filter(|s| s.active_at(now))
            .map(|s| {
                let m: Vec<silence::Matcher> = serde_json::from_str(&s.matchers).unwrap_or_default();
                let compiled = m.iter().map(silence::Matcher::compile).collect();
                (s, compiled)
            })
            .collect())
    }

    /// Notifications of `kind` to `receivers` (the alert itself is read at delivery).
    fn notifications(&self, kind: &str, receivers: &[String], now: i64, extra: Value) -> Vec<NotificationRow> {
        receivers
            .iter()
            .map(|r| NotificationRow {
                receiver: r.clone(),
                kind: kind.into(),
                // The alert itself is read at delivery (its id is not known before the
                // first write, and a receiver should see its current state).
                payload: json!({"extra": extra}).to_string(),
                status: "pending".into(),
                next_attempt_at: now,
                created_at: now,
                updated_at: now,
                ..NotificationRow::default()
            })
            .collect()
    }

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
        let mut pending: HashMap<(String, String, String), usize> = HashMap::new();
        for r in raised {
            let new = row_from_raised(r, now);
            let fp = (new.rule.clone(), new.severity.clone(), new.dedup_key.clone());
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
            let existing = self.inner.store.find_open_alert(&fp.0, &fp.1, &fp.2, new.first_seen - window).await?;
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

    fn create(
        &self,
        mut alert: AlertRow,
        silences: &[(SilenceRow, Vec<silence::Compiled>)],
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
        silences: &[(SilenceRow, Vec<silence::Compiled>)],
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
        let reminder = alert.status == "open"
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
                if alert.status == "open" {
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

    /// Writes changes, then their chain events; wakes the outbox.
    async fn commit(&self, writes: &mut [AlertWrite]) -> Result<(), AlertError> {
        // The alert's state as of this change goes into its history entry, so a chain
        // event written later (after a crash) still says what it was then.
        for w in writes.iter_mut() {
            let mut d: Value = serde_json::from_str(&w.change.details).unwrap_or_else(|_| json!({}));
            if let Value::Object(map) = &mut d {
                for (k, v) in [
                    ("severity", json!(w.alert.severity)),
                    ("status", json!(w.alert.status)),
                    ("count", json!(w.alert.count)),
                    ("event_seqs", json!(w.alert.seqs())),
                    ("disposition", json!(w.alert.disposition)),
                ] {
                    map.entry(k).or_insert(v);
                }
            }
            w.change.details = d.to_string();
        }
        self.inner.store.commit_alert_writes(writes).await?;
        let changes: Vec<(AlertChange, AlertRow)> =
            writes.iter().map(|w| (w.change.clone(), w.alert.clone())).collect();
        if writes.iter().any(|w| !w.notifications.is_empty()) {
            self.inner.routing.wake();
        }
        self.chain(&changes).await;
        Ok(())
    }

    /// Writes history entries to the chain and records their seqs. A failure is logged and
    /// retried by [`Self::chain_pending`]; the event id makes a repeat a no-op.
    async fn chain(&self, changes: &[(AlertChange, AlertRow)]) {
        let events = changes.iter().map(|(c, a)| chain_event(c, a)).collect();
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
            let mut pairs = Vec::with_capacity(pending.len());
            for c in pending {
                let alert = self.inner.store.alert(c.alert_id).await?.unwrap_or_default();
                pairs.push((c, alert));
            }
            let n = pairs.len();
            self.chain(&pairs).await;
            total += n;
            if self.inner.store.unchained_changes(1).await?.first().map(|c| c.id) == pairs.first().map(|p| p.0.id) {
                // No progress (the chain is refusing writes): try again later.
                return Ok(total);
            }
        }
    }

    /// Raises the alert of a rule quarantine (the writer in `app` records its chain event
    /// through the rule journal first).
    pub async fn raise_quarantine(&self, rule: &str, sha256: &str, reason: &str) -> Result<(), AlertError> {
        let raised = RaisedAlert::by_vigil(
            sha256.into(),
            crate::finding::EmittedAlert {
                title: format!("Rule {rule} quarantined after repeated faults"),
                severity: "P2".into(),
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
                severity: "P1".into(),
                dedup_key: format!("integrity:{}", kinds.join(",")),
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

    /// Raises a manual alert for `actor` (key id).
    pub async fn manual(&self, actor: &str, mut m: ManualAlert) -> Result<AlertRow, AlertError> {
        m.severity.make_ascii_uppercase();
        if m.title.trim().is_empty() || m.title.len() > 512 {
            return Err(AlertError::Invalid("`title` must be 1 to 512 bytes".into()));
        }
        if !matches!(m.severity.as_str(), "P1" | "P2" | "P3" | "P4") {
            return Err(AlertError::Invalid("`severity` must be P1, P2, P3 or P4".into()));
        }
        if m.event_seqs.iter().any(|s| *s < 1) {
            return Err(AlertError::Invalid("`event_seqs` are positive integers".into()));
        }
        if m.dedup_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 256) {
            return Err(AlertError::Invalid("`dedup_key` must be 1 to 256 bytes".into()));
        }
        if m.event_seqs.len() > MAX_EVENT_SEQS
            || m.actions.len() > 32
            || Value::Object(m.fields.clone()).to_string().len() > 16 * 1024
        {
            return Err(AlertError::Invalid(format!(
                "at most {MAX_EVENT_SEQS} event_seqs, 32 actions and 16 KiB of fields"
            )));
        }
        let mut fields = m.fields;
        if let Some(d) = m.description {
            if d.len() > 4096 {
                return Err(AlertError::Invalid("`description` is at most 4096 bytes".into()));
            }
            fields.insert("description".into(), Value::String(d));
        }
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let alert = AlertRow {
            rule: "manual".into(),
            rule_version: env!("CARGO_PKG_VERSION").into(),
            rule_sha256: String::new(),
            severity: m.severity,
            title: storable(&m.title),
            dedup_key: storable(&m.dedup_key.unwrap_or_else(|| format!("manual:{}", uuid::Uuid::now_v7()))),
            status: "open".into(),
            count: 1,
            first_seen: now,
            last_seen: now,
            event_seqs: serde_json::to_string(&m.event_seqs).unwrap_or_else(|_| "[]".into()),
            fields: Value::Object(fields).to_string(),
            actions: serde_json::to_string(&m.actions).unwrap_or_else(|_| "[]".into()),
            created_at: now,
            receivers: "[]".into(),
            ..AlertRow::default()
        };
        let silences = self.active_silences(now).await?;
        let mut writes =
            vec![self.create(alert, &silences, now, "manual", actor, json!({"event": "MANUAL_ALERT_GENERATED"}))];
        self.commit(&mut writes).await?;
        Ok(writes.remove(0).alert)
    }

    async fn load(&self, id: i64) -> Result<AlertRow, AlertError> {
        self.inner.store.alert(id).await?.ok_or(AlertError::NotFound(id))
    }

    fn follow_ups(&self, alert: &AlertRow, what: FollowUp, now: i64) -> Vec<NotificationRow> {
        let receivers: Vec<String> =
            alert.receiver_list().into_iter().filter(|r| self.inner.routing.follows_up(r, what)).collect();
        self.notifications(what.kind(), &receivers, now, json!({}))
    }

    /// Acknowledges an open alert.
    pub async fn acknowledge(&self, id: i64, actor: &str, comment: Option<String>) -> Result<AlertRow, AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let mut alert = self.load(id).await?;
        if alert.status != "open" {
            return Err(AlertError::Conflict(format!(
                "alert {id} is {}, only an open alert can be acknowledged",
                alert.status
            )));
        }
        alert.status = "acknowledged".into();
        alert.acked_by = Some(actor.into());
        alert.acked_at = Some(now);
        let notifications = self.follow_ups(&alert, FollowUp::Acknowledge, now);
        let change = AlertChange {
            action: "acknowledged".into(),
            actor: actor.into(),
            at: now,
            details: json!({"comment": comment}).to_string(),
            ..Default::default()
        };
        let mut writes =
            vec![AlertWrite { alert, change, notifications, cancel_escalations: true, ..Default::default() }];
        self.commit(&mut writes).await?;
        Ok(writes.remove(0).alert)
    }

    /// Resolves an open or acknowledged alert with a disposition.
    pub async fn resolve(
        &self,
        id: i64,
        actor: &str,
        disposition: &str,
        comment: Option<String>,
    ) -> Result<AlertRow, AlertError> {
        if !matches!(disposition, "true_positive" | "false_positive" | "benign") {
            return Err(AlertError::Invalid("`disposition` must be true_positive, false_positive or benign".into()));
        }
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let mut alert = self.load(id).await?;
        if alert.status == "resolved" {
            return Err(AlertError::Conflict(format!("alert {id} is already resolved")));
        }
        alert.status = "resolved".into();
        alert.disposition = Some(disposition.into());
        alert.resolved_by = Some(actor.into());
        alert.resolved_at = Some(now);
        let notifications = self.follow_ups(&alert, FollowUp::Resolve, now);
        let change = AlertChange {
            action: "resolved".into(),
            actor: actor.into(),
            at: now,
            details: json!({"disposition": disposition, "comment": comment}).to_string(),
            ..Default::default()
        };
        let mut writes =
            vec![AlertWrite { alert, change, notifications, cancel_escalations: true, ..Default::default() }];
        self.commit(&mut writes).await?;
        Ok(writes.remove(0).alert)
    }

    /// Adds an entry to an alert's history without changing the alert (a decision that
    /// goes with it was issued, expired or lifted); it is written to the chain like any.
    pub async fn note(&self, id: i64, action: &str, actor: &str, details: Value) -> Result<(), AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let alert = self.load(id).await?;
        let change = AlertChange {
            action: action.into(),
            actor: actor.into(),
            at: now,
            details: details.to_string(),
            ..Default::default()
        };
        let mut writes = vec![AlertWrite { alert, change, ..Default::default() }];
        self.commit(&mut writes).await
    }

    /// Reopens an acknowledged or resolved alert: it is open again, notified again and its
    /// escalation starts over.
    pub async fn reopen(&self, id: i64, actor: &str, comment: Option<String>) -> Result<AlertRow, AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let mut alert = self.load(id).await?;
        if alert.status == "open" {
            return Err(AlertError::Conflict(format!("alert {id} is already open")));
        }
        alert.status = "open".into();
        alert.disposition = None;
        alert.resolved_by = None;
        alert.resolved_at = None;
        // The acknowledgement stays on record (time to acknowledge counts from creation to
        // the latest acknowledgement); the next ack replaces it.
        let mut write = AlertWrite { cancel_escalations: true, ..Default::default() };
        // Silences are looked at again: the one that held it may have ended, another begun.
        let silences = self.active_silences(now).await?;
        alert.silenced_by = silence::first_match(&silences, &alert);
        if alert.silenced_by.is_none() {
            let routed = self.inner.routing.receivers_for(&alert);
            let receivers = routed.receivers;
            alert.escalation_policy = routed.policy;
            alert.receivers = serde_json::to_string(&receivers).unwrap_or_else(|_| "[]".into());
            alert.last_notified_at = Some(now);
            write.notifications = self.notifications("trigger", &receivers, now, json!({"reopened": true}));
            write.escalations.extend(self.inner.routing.escalation_start(&alert, now));
        }
        write.change = AlertChange {
            action: "reopened".into(),
            actor: actor.into(),
            at: now,
            details: json!({"comment": comment}).to_string(),
            ..Default::default()
        };
        write.alert = alert;
        let mut writes = vec![write];
        self.commit(&mut writes).await?;
        Ok(writes.remove(0).alert)
    }

    /// Notifies again every open alert last notified `[alerts] repeat_interval_secs` ago or
    /// more (none when the interval is 0); returns how many were reminded.
    pub async fn remind_due(&self) -> Result<usize, AlertError> {
        let interval = self.inner.config.repeat_interval_secs as i64 * 1000;
        if interval == 0 {
            return Ok(0);
        }
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let filter = crate::store::AlertFilter {
            status: Some("open".into()),
            notified_before: Some(now - interval),
            limit: 100,
            ..Default::default()
        };
        let due = self.inner.store.list_alerts(&filter).await?;
        let silences = self.active_silences(now).await?;
        let mut writes = Vec::with_capacity(due.len());
        let mut nobody = Vec::new();
        for mut alert in due {
            let receivers = self.reminder_receivers(&alert);
            let silenced = silence::first_match(&silences, &alert).is_some();
            if receivers.is_empty() || silenced {
                // Nothing to send now: only the clock of the next reminder moves.
                nobody.push(alert.id);
                continue;
            }
            let extra = json!({"occurrences": alert.count, "reason": "repeat_interval"});
            let notifications = self.notifications("repeat", &receivers, now, extra);
            alert.last_notified_at = Some(now);
            let change = AlertChange {
                action: "reminded".into(),
                actor: "vigil".into(),
                at: now,
                details: json!({"receivers": receivers, "interval_secs": interval / 1000}).to_string(),
                ..Default::default()
            };
            writes.push(AlertWrite { alert, change, notifications, ..Default::default() });
        }
        self.inner.store.touch_notified(&nobody, now).await?;
        let n = writes.len();
        self.commit(&mut writes).await?;
        Ok(n)
    }

    /// The receivers of an alert's first notification that take reminders (not digests).
    fn reminder_receivers(&self, alert: &AlertRow) -> Vec<String> {
        alert.receiver_list().into_iter().filter(|r| self.inner.routing.follows_up(r, FollowUp::Reminder)).collect()
    }

    /// Runs the escalation timers due now; returns how many fired.
    pub async fn escalate_due(&self) -> Result<usize, AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let due = self.inner.store.due_escalations(now, 100).await?;
        let silences = if due.is_empty() { Vec::new() } else { self.active_silences(now).await? };
        let mut fired = 0;
        let mut writes = Vec::new();
        for timer in due {
            let Some(alert) = self.inner.store.alert(timer.alert_id).await? else { continue };
            let step = (alert.status == "open").then(|| self.inner.routing.escalation_step(&timer, &alert)).flatten();
            let Some((mut receivers, next)) = step else {
                // Not open any more (or the policy is gone): the timer stops.
                let change = AlertChange {
                    action: "escalation_stopped".into(),
                    actor: "vigil".into(),
                    at: now,
                    details: json!({"policy": timer.policy, "level": timer.level, "status": alert.status}).to_string(),
                    ..Default::default()
                };
                writes.push(AlertWrite { alert, change, finished_escalation: Some(timer.id), ..Default::default() });
                continue;
            };
            if receivers.is_empty() {
                receivers = alert.receiver_list();
            }
            // A silence that began since holds this level back (the timer goes on).
            let silenced = silence::first_match(&silences, &alert);
            if silenced.is_some() {
                receivers.clear();
            }
            let extra = json!({"policy": timer.policy, "level": timer.level + 1, "round": timer.round + 1});
            let notifications = self.notifications("escalation", &receivers, now, extra);
            let change = AlertChange {
                action: "escalated".into(),
                actor: "vigil".into(),
                at: now,
                details: json!({"policy": timer.policy, "level": timer.level + 1, "round": timer.round + 1,
                    "receivers": receivers, "due_at": timer.due_at, "silenced_by": silenced})
                .to_string(),
                ..Default::default()
            };
            fired += 1;
            writes.push(AlertWrite {
                alert,
                change,
                notifications,
                escalations: next.into_iter().collect(),
                finished_escalation: Some(timer.id),
                ..Default::default()
            });
        }
        self.commit(&mut writes).await?;
        Ok(fired)
    }

    /// Creates a silence (a chain event).
    pub async fn create_silence(&self, silence: SilenceRow, actor: &str) -> Result<SilenceRow, AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let live = self.inner.store.live_silences(now).await?.len();
        if live >= silence::MAX_ACTIVE_SILENCES {
            return Err(AlertError::Conflict(format!(
                "{live} silences are active or pending (at most {}); expire some first",
                silence::MAX_ACTIVE_SILENCES
            )));
        }
        // The chain event first: a silence never takes effect without its evidence.
        let details = json!({"silence_id": silence.id, "matchers": serde_json::from_str::<Value>(&silence.matchers).unwrap_or(Value::Null),
            "starts_at": silence.starts_at, "ends_at": silence.ends_at, "created_by": silence.created_by, "comment": silence.comment});
        let ev = system_event_with_id(
            format!("vigil:silence:{}:created", silence.id),
            "alert",
            "silence_created",
            actor,
            details,
            self.now(),
        );
        self.inner.sequencer.submit(vec![ev]).await.map_err(AlertError::Store)?;
        self.inner.store.insert_silence(&silence).await?;
        Ok(silence)
    }

    /// Expires a silence now (it stays listed); a chain event.
    pub async fn expire_silence(&self, id: &str, actor: &str) -> Result<(), AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let live = self.inner.store.silence(id).await?.is_some_and(|s| s.expired_at.is_none());
        if !live {
            return Err(AlertError::Conflict(format!("no active or pending silence {id}")));
        }
        // The chain event first, with a fixed id: retrying after a failure writes it once.
        let ev = system_event_with_id(
            format!("vigil:silence:{id}:expired"),
            "alert",
            "silence_expired",
            actor,
            json!({"silence_id": id}),
            now,
        );
        self.inner.sequencer.submit(vec![ev]).await.map_err(AlertError::Store)?;
        self.inner.store.expire_silence(id, now).await?;
        Ok(())
    }
}

/// The chain event of one history entry: what changed, who, and the alert's state after.
fn chain_event(c: &AlertChange, a: &AlertRow) -> crate::event::NewEvent {
    let mut details = json!({
        "alert_id": c.alert_id, "change_id": c.id, "rule": a.rule, "rule_sha256": a.rule_sha256,
        "severity": a.severity, "status": a.status, "count": a.count, "fingerprint": a.fingerprint(),
        "event_seqs": a.seqs(), "disposition": a.disposition,
    });
    if let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(&c.details) {
        for (k, v) in extra {
            details[k] = v;
        }
    }
    system_event_with_id(c.chain_event_id(), "alert", &format!("alert_{}", c.action), &c.actor, details, c.at)
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
        severity: r.alert.severity.clone(),
        title: storable(&r.alert.title),
        dedup_key: storable(&r.alert.dedup_key),
        status: "open".into(),
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

/// How long the writer keeps retrying an alert it could not store.
pub const ALERT_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(300);
