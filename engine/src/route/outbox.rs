//! The [`Outbox`] worker: one delivery task per receiver and one timer task (escalation
//! timers, reminders and chain back-fill from `alerts`, digests from `digest`). Each pass
//! claims a receiver's due notifications from the store, holds back those behind an older
//! waiting one of the same alert, folds storms (`storm`), and sends the rest through the
//! receiver's circuit breaker (`breaker`), recording the outcome with retries and backoff.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use super::RouteStats;
use super::breaker::{self, Breaker};
use super::receivers::{self, Kind, Outcome, Receiver};
use crate::alerts::AlertService;
use crate::clock::Clock;
use crate::config::{Config, OutboxConfig};
use crate::store::{NotificationFilter, NotificationRow, NotificationStatus, Store};

/// Delivers notifications: the outbox worker, the breakers, storm control, escalation
/// timers and the daily digest.
pub struct Outbox {
    pub(super) store: Store,
    pub(super) clock: Clock,
    pub(super) receivers: Arc<HashMap<String, Receiver>>,
    breakers: Mutex<HashMap<String, Breaker>>,
    http: reqwest::Client,
    pub(super) config: OutboxConfig,
    ctx: receivers::Context,
    wake: Arc<Notify>,
    /// Per receiver: when its recent deliveries went (storm control).
    pub(super) sent: Mutex<HashMap<String, VecDeque<i64>>>,
    /// The first digest due after this is the first one sent.
    pub(super) started_at: i64,
    stopped: AtomicBool,
    /// The name this worker claims notifications under (the cluster node id, else the host
    /// name): several nodes' workers deliver from one outbox, each row once at a time.
    node: String,
    /// How long a claim lasts without renewal: two delivery timeouts and 5 s (a delivery
    /// and its recording fit; a dead node's rows are free again after it).
    claim_ms: i64,
    /// Shared with the router.
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
        rules: Option<Arc<crate::rules::RuleRegistry>>,
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
            ctx: receivers::Context { external_url: config.alerts.external_url.clone(), timeout, rules },
            wake,
            sent: Mutex::default(),
            started_at: config.clock.now_ms(),
            stopped: AtomicBool::new(false),
            node: config.cluster.node_id_or_hostname(),
            claim_ms: i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 4).saturating_mul(2) + 5_000,
            stats,
        })
    }

    pub(super) fn breakers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
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
                let mut out = json!({"name": name, "kind": r.kind.as_str(), "via": r.via, "circuit": circuit});
                if let Some(key) = r.public_key() {
                    out["public_key"] = json!(key);
                }
                out
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

    /// Runs forever: escalation timers, unchained history, digests, deliveries.
    pub fn spawn(self: Arc<Self>, alerts: AlertService) {
        tokio::spawn(async move {
            // Claims under this node's name are a previous life's (it was killed mid-pass):
            // released before this life claims anything.
            match self.store.release_all_notification_claims(&self.node).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(notifications = n, "Outbox claims of this node's previous run released"),
                Err(e) => tracing::warn!(error = %e, "Could not release this node's old outbox claims; they expire"),
            }
            // Timers (escalation, reminders, digests, chain back-fill) in one task, deliveries
            // in one task per receiver: a slow receiver delays neither the others nor the timers.
            tokio::spawn(self.clone().run_timers(alerts));
            for name in self.receivers.keys() {
                let (worker, name) = (self.clone(), name.clone());
                tokio::spawn(async move {
                    while !worker.stopped.load(Ordering::Acquire) {
                        match worker.deliver_receiver(&name).await {
                            Ok(n) if n > 0 => continue,
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(receiver = %name, error = %e, "Outbox pass failed; retried next tick")
                            }
                        }
                        worker.idle().await;
                    }
                });
            }
        });
    }

    /// The timer task: chain back-fill and orphans now and then, escalations, reminders and
    /// digests every poll. With several nodes each runs it: every write claims what it fires
    /// (docs/cluster.md, "Timers and the outbox").
    async fn run_timers(self: Arc<Self>, alerts: AlertService) {
        let mut ticks: u64 = 0;
        while !self.stopped.load(Ordering::Acquire) {
            if ticks.is_multiple_of(40) {
                if let Err(e) = alerts.chain_pending().await {
                    tracing::warn!(error = %e, "Writing pending alert history to the chain failed");
                }
                if let Err(e) = self.fail_orphans().await {
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
            if let Err(e) = self.digests().await {
                tracing::warn!(error = %e, "Digest failed; retried next tick");
            }
            self.idle().await;
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
    /// Nothing is fetched while its circuit is open. The rows are claimed for this node
    /// (another node's worker skips them); those not attempted are released at the end.
    pub async fn deliver_receiver(&self, name: &str) -> Result<usize, crate::store::StoreError> {
        let now = self.clock.now_ms();
        let blocked = self.breakers().get_mut(name).is_some_and(|b| b.state(now) == breaker::State::Open);
        if blocked {
            return Ok(0);
        }
        let rows = self.store.claim_due_notifications(name, &self.node, now, self.claim_ms, 200).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let claimed: Vec<i64> = rows.iter().map(|n| n.id).collect();
        // An alert whose older notification to this receiver is still waiting (backing off)
        // waits too: a resolve never overtakes its trigger.
        let pending = self
            .store
            .list_notifications(&NotificationFilter {
                status: Some(NotificationStatus::Pending),
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
        let attempted = self.deliver_to(name.to_owned(), rows, now, waiting).await;
        // Rows recorded above carry no claim any more; the rest (held back, behind an open
        // circuit) are free again for any node.
        self.store.release_notification_claims(&claimed, &self.node).await?;
        Ok(attempted)
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
            n.status = NotificationStatus::Failed;
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
            if let Err(e) = self.store.set_notification_status(&ids, NotificationStatus::Digest, now).await {
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
            // Still this node's (renewed for one delivery): a node paused past its claim
            // leaves the row to the node that took it over.
            match self.store.renew_notification_claim(n.id, &self.node, self.claim_ms).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, notification = n.id, "Could not renew an outbox claim; retried next pass");
                    break;
                }
            }
            attempted += 1;
            let outcome = receiver.deliver(&self.http, &n, &self.ctx, now).await;
            let done_at = self.clock.now_ms();
            n.attempts += 1;
            n.updated_at = done_at;
            match outcome {
                Outcome::Delivered => {
                    n.status = NotificationStatus::Delivered;
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
                    n.status = NotificationStatus::Failed;
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
                        n.status = NotificationStatus::Dead;
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
    pub(super) async fn hydrate(&self, rows: &mut [NotificationRow]) {
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
}
