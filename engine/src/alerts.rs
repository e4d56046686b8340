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
//!
//! Submodules: `raise` (detected and Vigil's own alerts), `manual`, `lifecycle` (ack,
//! resolve, reopen, notes), `escalate` (reminders and escalation timers), `silence`, and
//! `chain` (commits and their chain events).

mod chain;
mod escalate;
mod lifecycle;
mod manual;
mod raise;
pub mod silence;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock::Clock;
use crate::config::AlertsConfig;
use crate::ledger::sequencer::SequencerHandle;
use crate::store::{AlertRow, EscalationRow, NotificationRow, NotificationStatus, Store, StoreError};

pub use manual::{ManualAlert, integral};
pub use raise::{row_from_raised, storable};

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
    /// The notification kind it is sent as (`repeat` for a reminder).
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
    /// Names of the receivers it goes to.
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
    /// Active silences, compiled once each.
    silences: silence::SilenceCache,
    /// Alerts raised by rule and severity (`/metrics`).
    security: Arc<crate::telemetry::SecurityCounters>,
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
        Self {
            inner: Arc::new(Inner {
                store,
                sequencer,
                clock,
                config,
                routing,
                lock: Default::default(),
                silences: Default::default(),
                security: Default::default(),
            }),
        }
    }

    /// Counts the alerts it raises in `counters` (those of `/metrics`). Call right after
    /// [`AlertService::new`], before the service is cloned.
    pub fn with_security_counters(mut self, counters: Arc<crate::telemetry::SecurityCounters>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.security = counters;
        }
        self
    }

    /// The clock lifecycle times come from.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_ms()
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
                status: NotificationStatus::Pending,
                next_attempt_at: now,
                created_at: now,
                updated_at: now,
                ..NotificationRow::default()
            })
            .collect()
    }
}

/// How long the writer keeps retrying an alert it could not store.
pub const ALERT_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(300);
