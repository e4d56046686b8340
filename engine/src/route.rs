//! Routing and delivery, downstream of `alerts`: which receivers an alert goes to (Wasm
//! routing rules, else `[routing] default_receivers`), escalation policies, and the
//! outbox worker that delivers notifications (`receivers`) through a circuit breaker per
//! receiver (`breaker`), with retries, dead letters, storm control and the daily digest.
//!
//! A broken router never silences an alert: with no routing rule active, or when one
//! faults or names no receiver that exists, the alert goes to the default receivers.

pub mod breaker;
pub mod receivers;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc};

use crate::alerts::{AlertService, FollowUp, Routed, Routing};
use crate::clock::Clock;
use crate::config::{Config, EscalationLevel, EscalationPolicy, OutboxConfig, parse_duration_ms};
use crate::detect::Evaluator;
use crate::event::CommittedEvent;
use crate::finding::Evaluated;
use crate::rules::RuleRegistry;
use crate::store::{AlertRow, EscalationRow, NotificationFilter, NotificationRow, StatsFilter, Store};
use crate::telemetry::label;
use breaker::Breaker;
use receivers::{Kind, Outcome, Receiver};

/// A route to this prefix names an escalation policy, not a receiver.
pub const POLICY_PREFIX: &str = "policy:";

/// Routing counters (for `/metrics`).
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Alerts routed by a routing rule.
    pub routed: AtomicU64,
    /// Alerts sent to the default receivers (no routing rule, or it failed).
    pub fallback: AtomicU64,
    /// Notifications delivered.
    pub delivered: AtomicU64,
    /// Attempts that failed and will be retried.
    pub retried: AtomicU64,
    /// Notifications failed for good (4xx).
    pub failed: AtomicU64,
    /// Notifications dead-lettered.
    pub dead: AtomicU64,
    /// Notifications folded into storm summaries.
    pub folded: AtomicU64,
}

/// Implements [`Routing`] for the lifecycle.
pub struct Router {
    registry: Arc<RuleRegistry>,
    evaluator: Mutex<Evaluator>,
    receivers: Arc<HashMap<String, Receiver>>,
    defaults: Vec<String>,
    policies: Vec<(String, EscalationPolicy)>,
    wake: Arc<Notify>,
    /// Quarantines of routing rules go to the alert writer like detection ones.
    quarantines: mpsc::UnboundedSender<Evaluated>,
    /// Counters.
    pub stats: Arc<RouteStats>,
}

impl Router {
    /// A router over the configured receivers.
    pub fn new(
        config: &Config,
        registry: Arc<RuleRegistry>,
        receivers: Arc<HashMap<String, Receiver>>,
        wake: Arc<Notify>,
        quarantines: mpsc::UnboundedSender<Evaluated>,
        stats: Arc<RouteStats>,
    ) -> Self {
        let defaults = config.routing.default_receivers.clone().unwrap_or_else(|| {
            config.receivers.iter().filter(|r| r.kind != "digest").map(|r| r.name.clone()).collect()
        });
        let policies = if config.escalation.is_empty() {
            // Without configured policies: an unacknowledged P1 is notified again after
            // 15 minutes, a P2 after an hour, to its own receivers.
            [("P1", "15m"), ("P2", "1h")]
                .into_iter()
                .map(|(sev, after)| {
                    let p = EscalationPolicy {
                        name: None,
                        severity: Some(sev.into()),
                        repeat: 0,
                        levels: vec![EscalationLevel { after: after.into(), receivers: vec![] }],
                    };
                    (format!("severity:{sev}"), p)
                })
                .collect()
        } else {
            config
                .escalation
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let name = p.name.clone().unwrap_or_else(|| match &p.severity {
                        Some(s) => format!("severity:{s}"),
                        None => format!("policy:{i}"),
                    });
                    (name, p.clone())
                })
                .collect()
        };
        Self {
            evaluator: Mutex::new(Evaluator::new(registry.clone())),
            registry,
            receivers,
            defaults,
            policies,
            wake,
            quarantines,
            stats,
        }
    }

    fn record(alert: &AlertRow) -> CommittedEvent {
        let mut m = Map::new();
        for (k, v) in [
            ("rule", &alert.rule),
            ("severity", &alert.severity),
            ("title", &alert.title),
            ("dedup_key", &alert.dedup_key),
            ("status", &alert.status),
        ] {
            m.insert(k.into(), Value::String(v.clone()));
        }
        m.insert("count".into(), json!(alert.count));
        m.insert("timestamp".into(), json!(alert.last_seen));
        CommittedEvent::new(alert.id, m, None, 0)
    }

    fn policy(&self, name: &str) -> Option<&EscalationPolicy> {
        self.policies.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }
}

fn after_ms(level: &EscalationLevel) -> i64 {
    parse_duration_ms(&level.after).unwrap_or(i64::MAX / 4)
}

impl Routing for Router {
    fn receivers_for(&self, alert: &AlertRow) -> Routed {
        if self.registry.current().routing.is_empty() {
            self.stats.fallback.fetch_add(1, Ordering::Relaxed);
            return Routed { receivers: self.defaults.clone(), policy: None };
        }
        let mut records = vec![Self::record(alert)];
        let out = {
            let mut evaluator = self.evaluator.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            evaluator.route(&mut records)
        };
        let faulted = out.faulted > 0;
        let mut named: Vec<String> = Vec::new();
        let mut policy = None;
        for (_, r) in &out.routes {
            // `policy:<name>` (the SDK's `ctx.escalation_policy`) picks a configured policy.
            if let Some(p) = r.strip_prefix(POLICY_PREFIX) {
                if self.policy(p).is_some() {
                    policy = Some(p.to_owned());
                } else {
                    tracing::warn!(policy = %p, "A routing rule named an escalation policy that is not configured");
                }
                continue;
            }
            if !self.receivers.contains_key(r) {
                tracing::warn!(receiver = %r, "A routing rule named a receiver that is not configured");
                continue;
            }
            if !named.contains(r) {
                named.push(r.clone());
            }
        }
        // Naming no receiver at all is treated like naming only unknown ones: a routing rule
        // can never silence an alert (silences do that, visibly).
        let named_unknown_only = named.is_empty();
        if !out.quarantined.is_empty() {
            let _ = self.quarantines.send(Evaluated { quarantined: out.quarantined, ..Default::default() });
        }
        if faulted || named_unknown_only {
            self.stats.fallback.fetch_add(1, Ordering::Relaxed);
            for d in &self.defaults {
                if !named.contains(d) {
                    named.push(d.clone());
                }
            }
            return Routed { receivers: named, policy };
        }
        self.stats.routed.fetch_add(1, Ordering::Relaxed);
        Routed { receivers: named, policy }
    }

    fn follows_up(&self, receiver: &str, what: FollowUp) -> bool {
        self.receivers.get(receiver).is_some_and(|r| r.follows_up(what))
    }

    fn escalation_start(&self, alert: &AlertRow, now: i64) -> Option<EscalationRow> {
        // The policy a routing rule named, else the one for the alert's severity.
        let chosen = alert.escalation_policy.as_deref().and_then(|n| self.policies.iter().find(|(name, _)| name == n));
        let (name, policy) = chosen
            .or_else(|| self.policies.iter().find(|(_, p)| p.severity.as_deref() == Some(alert.severity.as_str())))?;
        let first = policy.levels.first()?;
        Some(EscalationRow {
            policy: name.clone(),
            level: 0,
            round: 0,
            due_at: now.saturating_add(after_ms(first)),
            status: "pending".into(),
            ..Default::default()
        })
    }

    fn escalation_step(
        &self,
        timer: &EscalationRow,
        _alert: &AlertRow,
    ) -> Option<(Vec<String>, Option<EscalationRow>)> {
        let policy = self.policy(&timer.policy)?;
        let level = policy.levels.get(timer.level as usize)?;
        let pass_start = timer.due_at - after_ms(level);
        let next = if let Some(next_level) = policy.levels.get(timer.level as usize + 1) {
            Some(EscalationRow {
                level: timer.level + 1,
                due_at: pass_start.saturating_add(after_ms(next_level)),
                ..timer.clone()
            })
        } else if (timer.round as u32) < policy.repeat {
            Some(EscalationRow {
                level: 0,
                round: timer.round + 1,
                due_at: timer.due_at.saturating_add(after_ms(&policy.levels[0])),
                ..timer.clone()
            })
        } else {
            None
        };
        let next = next.map(|n| EscalationRow { id: 0, status: "pending".into(), ..n });
        Some((level.receivers.clone(), next))
    }

    fn wake(&self) {
        self.wake.notify_waiters();
    }
}

/// Delivers notifications: the outbox worker, the breakers, storm control, escalation
/// timers and the daily digest.
pub struct Outbox {
    store: Store,
    clock: Clock,
    receivers: Arc<HashMap<String, Receiver>>,
    breakers: Mutex<HashMap<String, Breaker>>,
    http: reqwest::Client,
    config: OutboxConfig,
    ctx: receivers::Context,
    wake: Arc<Notify>,
    /// Per receiver: when its recent deliveries went (storm control).
    sent: Mutex<HashMap<String, VecDeque<i64>>>,
    started_at: i64,
    stopped: std::sync::atomic::AtomicBool,
    /// Counters.
    pub stats: Arc<RouteStats>,
}

impl Outbox {
    /// An outbox over the configured receivers.
    pub fn new(
        config: &Config,
        store: Store,
        receivers: Arc<HashMap<String, Receiver>>,
        wake: Arc<Notify>,
        stats: Arc<RouteStats>,
    ) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(config.outbox.timeout_secs.max(1));
        let http = crate::net::http_client(timeout).build()?;
        let breakers = receivers.keys().map(|name| (name.clone(), Breaker::new(config.breaker.clone()))).collect();
        Ok(Self {
            store,
            clock: config.clock.clone(),
            receivers,
            breakers: Mutex::new(breakers),
            http,
            config: config.outbox.clone(),
            ctx: receivers::Context { external_url: config.alerts.external_url.clone(), timeout },
            wake,
            sent: Mutex::default(),
            started_at: config.clock.now_ms(),
            stopped: std::sync::atomic::AtomicBool::new(false),
            stats,
        })
    }

    fn breakers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
        self.breakers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `GET /v1/receivers`.
    pub fn describe(&self) -> Vec<Value> {
        let now = self.clock.now_ms();
        let mut breakers = self.breakers();
        let mut names: Vec<&String> = self.receivers.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let r = &self.receivers[name];
                let circuit = breakers.get_mut(name).map(|b| b.to_json(now));
                json!({"name": name, "kind": r.kind.as_str(), "via": r.via, "circuit": circuit})
            })
            .collect()
    }

    /// `POST /v1/receivers/{name}/circuit`.
    pub fn circuit(&self, name: &str, action: &str) -> Result<Value, String> {
        let now = self.clock.now_ms();
        let mut breakers = self.breakers();
        let b = breakers.get_mut(name).ok_or_else(|| format!("no receiver named `{name}`"))?;
        b.command(action, now)?;
        let state = b.to_json(now);
        drop(breakers);
        self.wake.notify_waiters();
        Ok(state)
    }

    /// Stops the worker after its current pass (graceful shutdown); what is pending stays in
    /// the outbox for the next start.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }

    /// Wakes the worker (new or re-queued notifications).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Delivery counters and circuit states in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = &self.stats;
        for (name, help, v) in [
            ("vigil_notifications_delivered_total", "Notifications delivered.", &s.delivered),
            (
                "vigil_notifications_retried_total",
                "Delivery attempts that failed and were scheduled again.",
                &s.retried,
            ),
            (
                "vigil_notifications_failed_total",
                "Notifications refused by their receiver (4xx, not retried).",
                &s.failed,
            ),
            ("vigil_notifications_dead_total", "Notifications dead-lettered after max_age.", &s.dead),
            ("vigil_notifications_folded_total", "Notifications folded into storm summaries.", &s.folded),
            ("vigil_alerts_routed_total", "Alerts routed by a routing rule.", &s.routed),
            (
                "vigil_alerts_default_routed_total",
                "Alerts sent to the default receivers (no routing rule, or it failed).",
                &s.fallback,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        let now = self.clock.now_ms();
        let mut breakers = self.breakers();
        let mut rows: Vec<_> =
            breakers.iter_mut().map(|(n, b)| (n.clone(), b.state(now), b.delivered, b.failed)).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(
            out,
            "# HELP vigil_receiver_circuit_open 1 when the receiver's circuit is open or half-open.\n\
             # TYPE vigil_receiver_circuit_open gauge"
        );
        for (name, state, _, _) in &rows {
            let open = u8::from(*state != breaker::State::Closed);
            let _ = writeln!(
                out,
                "vigil_receiver_circuit_open{{receiver=\"{}\",state=\"{}\"}} {open}",
                label(name),
                state.as_str()
            );
        }
    }

    /// Runs forever: escalation timers, unchained history, digests, deliveries.
    pub fn spawn(self: Arc<Self>, alerts: AlertService) {
        // Timers (escalation, reminders, digests, chain back-fill) in one task, deliveries in
        // one task per receiver: a slow receiver delays neither the others nor the timers.
        let timers = self.clone();
        tokio::spawn(async move {
            let mut ticks: u64 = 0;
            while !timers.stopped.load(Ordering::Acquire) {
                if ticks.is_multiple_of(40) {
                    if let Err(e) = alerts.chain_pending().await {
                        tracing::warn!(error = %e, "Writing pending alert history to the chain failed");
                    }
                    if let Err(e) = timers.fail_orphans().await {
                        tracing::warn!(error = %e, "Checking notifications of removed receivers failed");
                    }
                }
                ticks += 1;
                if let Err(e) = alerts.escalate_due().await {
                    tracing::warn!(error = %e, "Escalation timers failed; retried next tick");
                }
                if let Err(e) = alerts.remind_due().await {
                    tracing::warn!(error = %e, "Reminders failed; retried next tick");
                }
                if let Err(e) = timers.digests().await {
                    tracing::warn!(error = %e, "Digest failed; retried next tick");
                }
                timers.idle().await;
            }
        });
        for name in self.receivers.keys() {
            let (worker, name) = (self.clone(), name.clone());
            tokio::spawn(async move {
                while !worker.stopped.load(Ordering::Acquire) {
                    match worker.deliver_receiver(&name).await {
                        Ok(n) if n > 0 => continue,
                        Ok(_) => {}
                        Err(e) => tracing::warn!(receiver = %name, error = %e, "Outbox pass failed; retried next tick"),
                    }
                    worker.idle().await;
                }
            });
        }
    }

    /// Waits for the next poll, a wake-up (new rows) or a move of a manual clock.
    async fn idle(&self) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(self.config.poll_interval_ms)) => {}
            _ = self.wake.notified() => {}
            _ = self.clock.moved() => {}
        }
    }

    /// One pass over one receiver's due notifications; returns how many were attempted.
    /// Nothing is fetched while its circuit is open.
    pub async fn deliver_receiver(&self, name: &str) -> Result<usize, crate::store::StoreError> {
        let now = self.clock.now_ms();
        let blocked = self.breakers().get_mut(name).is_some_and(|b| b.state(now) == breaker::State::Open);
        if blocked {
            return Ok(0);
        }
        let rows = self.store.due_notifications(Some(name), now, 200).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // An alert whose older notification to this receiver is still waiting (backing off)
        // waits too: a resolve never overtakes its trigger.
        let pending = self
            .store
            .list_notifications(&NotificationFilter {
                status: Some("pending".into()),
                receiver: Some(name.to_owned()),
                limit: 1000,
                ..Default::default()
            })
            .await?;
        // Per alert, its oldest notification here that is waiting for a retry.
        let mut waiting: HashMap<i64, i64> = HashMap::new();
        for p in pending.iter().filter(|p| p.next_attempt_at > now) {
            if let Some(a) = p.alert_id {
                let oldest = waiting.entry(a).or_insert(p.id);
                *oldest = (*oldest).min(p.id);
            }
        }
        Ok(self.deliver_to(name.to_owned(), rows, now, waiting).await)
    }

    /// Marks pending rows addressed to receivers that are no longer configured as failed.
    async fn fail_orphans(&self) -> Result<(), crate::store::StoreError> {
        let now = self.clock.now_ms();
        let orphans: Vec<NotificationRow> = self
            .store
            .due_notifications(None, i64::MAX, 1000)
            .await?
            .into_iter()
            .filter(|n| !self.receivers.contains_key(&n.receiver))
            .collect();
        for mut n in orphans {
            n.status = "failed".into();
            n.last_error = Some(format!("no receiver named `{}` is configured", n.receiver));
            n.updated_at = now;
            self.save(&n).await;
        }
        Ok(())
    }

    async fn deliver_to(
        &self,
        name: String,
        mut rows: Vec<NotificationRow>,
        now: i64,
        mut waiting: HashMap<i64, i64>,
    ) -> usize {
        let Some(receiver) = self.receivers.get(&name) else { return 0 };
        if receiver.kind == Kind::Digest {
            let ids: Vec<i64> = rows.iter().map(|n| n.id).collect();
            if let Err(e) = self.store.set_notification_status(&ids, "digest", now).await {
                tracing::warn!(error = %e, "Could not hold notifications for the digest");
            }
            return 0;
        }
        self.hydrate(&mut rows).await;
        // Rows behind an older waiting row of their alert are not sent (nor folded) now.
        let held_back = |n: &NotificationRow, waiting: &HashMap<i64, i64>| {
            n.alert_id.and_then(|a| waiting.get(&a)).is_some_and(|&oldest| oldest < n.id)
        };
        rows.retain(|n| !held_back(n, &waiting));
        rows = self.storm_control(&name, rows, now).await;
        let mut attempted = 0;
        for mut n in rows {
            if held_back(&n, &waiting) {
                continue;
            }
            if !self.breakers().get_mut(&name).is_none_or(|b| b.allow(now)) {
                // Open circuit: everything left waits in the outbox.
                break;
            }
            attempted += 1;
            let outcome = receiver.deliver(&self.http, &n, &self.ctx, now).await;
            let done_at = self.clock.now_ms();
            n.attempts += 1;
            n.updated_at = done_at;
            match outcome {
                Outcome::Delivered => {
                    n.status = "delivered".into();
                    n.delivered_at = Some(done_at);
                    n.last_error = None;
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    if let Some(b) = self.breakers().get_mut(&name) {
                        b.success(done_at);
                    }
                    self.sent
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(name.clone())
                        .or_default()
                        .push_back(done_at);
                }
                Outcome::Failed { error } => {
                    n.status = "failed".into();
                    n.last_error = Some(error.clone());
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    if let Some(b) = self.breakers().get_mut(&name) {
                        b.rejected(done_at, &error);
                    }
                    tracing::warn!(receiver = %name, notification = n.id, error = %error, "Notification rejected; not retried");
                }
                Outcome::Retry { after, error } => {
                    if let Some(b) = self.breakers().get_mut(&name) {
                        b.failure(done_at, &error);
                    }
                    if let Some(a) = n.alert_id {
                        // Later rows of this alert wait for this one.
                        let oldest = waiting.entry(a).or_insert(n.id);
                        *oldest = (*oldest).min(n.id);
                    }
                    n.last_error = Some(error.clone());
                    let max_age = self.config.max_age_secs as i64 * 1000;
                    if done_at - n.created_at >= max_age {
                        n.status = "dead".into();
                        self.stats.dead.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(receiver = %name, notification = n.id, error = %error, "Notification dead-lettered after max_age");
                    } else {
                        self.stats.retried.fetch_add(1, Ordering::Relaxed);
                        n.next_attempt_at = done_at + self.backoff(n.attempts, after);
                    }
                }
            }
            self.save(&n).await;
        }
        attempted
    }

    /// Exponential backoff with jitter, or the receiver's `Retry-After` (capped).
    fn backoff(&self, attempts: i64, retry_after: Option<Duration>) -> i64 {
        if let Some(after) = retry_after {
            let cap = (self.config.max_retry_after_secs as i64).saturating_mul(1000).max(1);
            return i64::try_from(after.as_millis()).unwrap_or(i64::MAX).clamp(1, cap);
        }
        let exp = (attempts - 1).clamp(0, 30) as u32;
        let full =
            (self.config.base_backoff_ms as i64).saturating_mul(1i64 << exp).min(self.config.max_backoff_ms as i64);
        let mut r = [0u8; 8];
        let _ = getrandom::fill(&mut r);
        let jitter = (u64::from_le_bytes(r) % (full as u64 / 2 + 1)) as i64;
        full / 2 + jitter
    }

    /// Puts the current state of each notification's alert into its payload (`alert`).
    async fn hydrate(&self, rows: &mut [NotificationRow]) {
        let mut cache: HashMap<i64, Value> = HashMap::new();
        for n in rows.iter_mut() {
            let Some(id) = n.alert_id else { continue };
            let alert = match cache.get(&id) {
                Some(a) => a.clone(),
                None => {
                    let a = match self.store.alert(id).await {
                        Ok(Some(row)) => row.to_api_json(),
                        Ok(None) => Value::Null,
                        Err(e) => {
                            tracing::warn!(error = %e, alert = id, "Could not read the alert of a notification");
                            Value::Null
                        }
                    };
                    cache.insert(id, a.clone());
                    a
                }
            };
            let mut payload: Value = serde_json::from_str(&n.payload).unwrap_or_else(|_| json!({}));
            if payload.get("alert").is_none_or(Value::is_null) {
                payload["alert"] = alert;
                n.payload = payload.to_string();
            }
        }
    }

    async fn save(&self, n: &NotificationRow) {
        if let Err(e) = self.store.update_notification(n).await {
            tracing::error!(error = %e, notification = n.id, "Could not record a delivery result; it will be attempted again");
        }
    }

    /// Storm control: past `storm_threshold` deliveries to one receiver within a minute,
    /// the rest of the alert notifications fold into one summary message.
    async fn storm_control(&self, name: &str, rows: Vec<NotificationRow>, now: i64) -> Vec<NotificationRow> {
        let threshold = self.config.storm_threshold as usize;
        if threshold == 0 {
            return rows;
        }
        let recent = {
            let mut sent = self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let q = sent.entry(name.to_owned()).or_default();
            while q.front().is_some_and(|t| now - t >= 60_000) {
                q.pop_front();
            }
            q.len()
        };
        let room = threshold.saturating_sub(recent);
        // Only never-attempted rows fold: one already tried may have reached the receiver
        // (a timeout after it accepted), and must keep its idempotency key.
        let foldable =
            |n: &NotificationRow| n.attempts == 0 && matches!(n.kind.as_str(), "trigger" | "repeat" | "escalation");
        if rows.iter().filter(|n| foldable(n)).count() <= room {
            return rows;
        }
        let (mut keep, mut fold) = (Vec::new(), Vec::new());
        let mut allowed = room;
        for n in rows {
            if !foldable(&n) {
                keep.push(n);
            } else if allowed > 0 {
                allowed -= 1;
                keep.push(n);
            } else {
                fold.push(n);
            }
        }
        if fold.is_empty() {
            return keep;
        }
        let items: Vec<Value> = fold
            .iter()
            .map(|n| {
                let p: Value = serde_json::from_str(&n.payload).unwrap_or(Value::Null);
                json!({"notification_id": n.idempotency_key, "kind": n.kind, "alert": p["alert"]})
            })
            .collect();
        let mut summary = vec![NotificationRow {
            receiver: name.to_owned(),
            kind: "summary".into(),
            idempotency_key: format!("summary-{}-{}", name, fold[0].id),
            payload: json!({"items": items, "folded": fold.len()}).to_string(),
            status: "pending".into(),
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
            ..Default::default()
        }];
        let ids: Vec<i64> = fold.iter().map(|n| n.id).collect();
        // The summary and the folding of the originals are one transaction.
        if let Err(e) = self.store.replace_notifications(&mut summary, &ids, "folded", now).await {
            tracing::warn!(error = %e, "Could not store a storm summary; notifications stay pending");
            return keep;
        }
        self.stats.folded.fetch_add(ids.len() as u64, Ordering::Relaxed);
        tracing::info!(receiver = name, folded = ids.len(), "Storm control: notifications folded into one summary");
        keep.extend(summary);
        keep
    }

    /// Sends each digest that is due: once a day at its `at` time (UTC), through its `via`
    /// receiver: the P4 alerts held for it and the daily security report.
    async fn digests(&self) -> Result<(), crate::store::StoreError> {
        let now = self.clock.now_ms();
        for r in self.receivers.values().filter(|r| r.kind == Kind::Digest) {
            let Some(via) = &r.via else { continue };
            let day = 86_400_000;
            let mut last_due = now - now.rem_euclid(day) + r.at_ms;
            if last_due > now {
                last_due -= day;
            }
            // Once per digest and day (its key names both); the very first one is the first
            // `at` after the server started.
            let day_name = crate::event::format_rfc3339_ms(last_due);
            let key = format!("digest-{}-{}", r.name, &day_name[..10]);
            if self.store.notification_by_key(&key).await?.is_some() {
                continue;
            }
            if self.store.last_notification_at(via, "digest").await?.is_none() && last_due < self.started_at {
                continue;
            }
            let held = self
                .store
                .list_notifications(&NotificationFilter {
                    status: Some("digest".into()),
                    receiver: Some(r.name.clone()),
                    limit: 1000,
                    ..Default::default()
                })
                .await?;
            let mut held = held;
            self.hydrate(&mut held).await;
            let items: Vec<Value> = held
                .iter()
                .rev()
                .map(|n| {
                    let p: Value = serde_json::from_str(&n.payload).unwrap_or(Value::Null);
                    json!({"notification_id": n.idempotency_key, "kind": n.kind, "alert": p["alert"]})
                })
                .collect();
            let report = self.daily_report(last_due - day, last_due).await?;
            let mut digest = vec![NotificationRow {
                receiver: via.clone(),
                kind: "digest".into(),
                idempotency_key: key,
                payload: json!({"day": &day_name[..10], "digest": r.name, "items": items, "report": report})
                    .to_string(),
                status: "pending".into(),
                next_attempt_at: now,
                created_at: now,
                updated_at: now,
                ..Default::default()
            }];
            let ids: Vec<i64> = held.iter().map(|n| n.id).collect();
            self.store.replace_notifications(&mut digest, &ids, "digested", now).await?;
            tracing::info!(digest = %r.name, alerts = ids.len(), "Daily digest queued");
        }
        Ok(())
    }

    /// The daily security report: events by category, failure rate, alerts by severity and
    /// rule, MTTA/MTTR, top IPs and users, for `[from, to)`.
    pub async fn daily_report(&self, from: i64, to: i64) -> Result<Value, crate::store::StoreError> {
        let stats = self
            .store
            .stats(&StatsFilter {
                since: Some(from),
                until: Some(to),
                organization_id: None,
                category: None,
                bucket_ms: 3_600_000,
                top: 10,
            })
            .await?;
        let alerts = self.store.alert_stats(Some(from)).await?.to_json();
        Ok(json!({
            "from": crate::event::format_rfc3339_ms(from), "to": crate::event::format_rfc3339_ms(to),
            "events": {"total": stats.total, "by_category": stats.by_category, "failure_rate": stats.failure_rate,
                "high_risk": stats.high_risk, "top_ips": stats.top_ips, "top_users": stats.top_users},
            "alerts": alerts,
        }))
    }
}

/// Alert counts and response times in Prometheus text format.
pub fn render_alert_metrics(out: &mut String, stats: &crate::store::AlertStats) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP vigil_alerts Alerts by status.\n# TYPE vigil_alerts gauge");
    for (status, n) in &stats.by_status {
        let _ = writeln!(out, "vigil_alerts{{status=\"{}\"}} {n}", label(status));
    }
    let _ = writeln!(out, "# HELP vigil_alerts_by_severity Alerts by severity.\n# TYPE vigil_alerts_by_severity gauge");
    for (sev, n) in &stats.by_severity {
        let _ = writeln!(out, "vigil_alerts_by_severity{{severity=\"{}\"}} {n}", label(sev));
    }
    let _ = writeln!(
        out,
        "# HELP vigil_rule_alerts Alerts per rule.\n# TYPE vigil_rule_alerts gauge\n\
         # HELP vigil_rule_mtta_seconds Mean time to acknowledge per rule.\n# TYPE vigil_rule_mtta_seconds gauge\n\
         # HELP vigil_rule_mttr_seconds Mean time to resolve per rule.\n# TYPE vigil_rule_mttr_seconds gauge\n\
         # HELP vigil_rule_false_positive_ratio False positives / alerts resolved with a disposition.\n\
         # TYPE vigil_rule_false_positive_ratio gauge"
    );
    for r in &stats.by_rule {
        let rule = label(&r.rule);
        let _ = writeln!(out, "vigil_rule_alerts{{rule=\"{rule}\"}} {}", r.alerts);
        if r.acked > 0 {
            let _ = writeln!(
                out,
                "vigil_rule_mtta_seconds{{rule=\"{rule}\"}} {}",
                r.ack_ms as f64 / r.acked as f64 / 1000.0
            );
        }
        if r.resolved > 0 {
            let _ = writeln!(
                out,
                "vigil_rule_mttr_seconds{{rule=\"{rule}\"}} {}",
                r.resolve_ms as f64 / r.resolved as f64 / 1000.0
            );
        }
        if r.dispositions > 0 {
            let _ = writeln!(
                out,
                "vigil_rule_false_positive_ratio{{rule=\"{rule}\"}} {}",
                r.false_positives as f64 / r.dispositions as f64
            );
        }
    }
}

/// Resolves the configured receivers (secrets from the environment).
pub fn build_receivers(config: &Config) -> anyhow::Result<Arc<HashMap<String, Receiver>>> {
    let mut out = HashMap::new();
    for c in &config.receivers {
        let timeout = Duration::from_secs(config.outbox.timeout_secs.max(1));
        out.insert(c.name.clone(), Receiver::from_config(c, timeout)?);
    }
    Ok(Arc::new(out))
}
