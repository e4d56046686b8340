//! The [`Router`]: the lifecycle's [`Routing`], which runs the Wasm routing rules (through
//! `detect`'s evaluator) over an alert to pick its receivers and escalation policy, falls
//! back to the default receivers, and answers escalation questions from `escalate`.
//! Quarantines of routing rules go back to the alert writer over a channel.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc};

use super::RouteStats;
use super::escalate::{self, Policies};
use super::receivers::Receiver;
use crate::alerts::{FollowUp, Routed, Routing};
use crate::config::Config;
use crate::detect::Evaluator;
use crate::event::CommittedEvent;
use crate::finding::Evaluated;
use crate::rules::RuleRegistry;
use crate::store::{AlertRow, EscalationRow};

/// A route to this prefix names an escalation policy, not a receiver.
pub const POLICY_PREFIX: &str = "policy:";

/// Implements [`Routing`] for the lifecycle.
pub struct Router {
    registry: Arc<RuleRegistry>,
    evaluator: Mutex<Evaluator>,
    receivers: Arc<HashMap<String, Receiver>>,
    defaults: Vec<String>,
    policies: Policies,
    wake: Arc<Notify>,
    /// Quarantines of routing rules go to the alert writer like detection ones.
    quarantines: mpsc::UnboundedSender<Evaluated>,
    /// Shared with the outbox.
    pub stats: Arc<RouteStats>,
    /// Unknown receiver and policy names already warned about (each is logged once, not
    /// once per alert; bounded so a rule inventing names cannot grow it).
    warned: Mutex<std::collections::HashSet<String>>,
}

/// Most distinct unknown names the router remembers having warned about.
const MAX_WARNED: usize = 256;

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
        let policies = escalate::from_config(config);
        Self {
            evaluator: Mutex::new(Evaluator::new(registry.clone())),
            registry,
            receivers,
            defaults,
            policies,
            wake,
            quarantines,
            stats,
            warned: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Whether `name` (of `kind`) has not been warned about yet; records it.
    fn first_warning(&self, kind: &str, name: &str) -> bool {
        let mut warned = self.warned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = format!("{kind}:{name}");
        if warned.contains(&key) || warned.len() > MAX_WARNED {
            return false;
        }
        if warned.len() == MAX_WARNED {
            warned.insert(String::new());
            tracing::warn!("Routing rules named {MAX_WARNED} unknown receivers or policies; no more are logged");
            return false;
        }
        warned.insert(key)
    }

    /// The alert as the record routing rules see.
    fn record(alert: &AlertRow) -> CommittedEvent {
        let mut m = Map::new();
        for (k, v) in [
            ("rule", alert.rule.as_str()),
            ("severity", alert.severity.as_str()),
            ("title", alert.title.as_str()),
            ("dedup_key", alert.dedup_key.as_str()),
            ("status", alert.status.as_str()),
        ] {
            m.insert(k.into(), Value::String(v.to_owned()));
        }
        m.insert("count".into(), json!(alert.count));
        m.insert("timestamp".into(), json!(alert.last_seen));
        CommittedEvent::from_map(alert.id, m, 0)
    }
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
                if escalate::find(&self.policies, p).is_some() {
                    policy = Some(p.to_owned());
                } else if self.first_warning("policy", p) {
                    tracing::warn!(
                        policy = %p,
                        "A routing rule named an escalation policy that is not configured (logged once per name)"
                    );
                }
                continue;
            }
            if !self.receivers.contains_key(r) {
                if self.first_warning("receiver", r) {
                    tracing::warn!(
                        receiver = %r,
                        "A routing rule named a receiver that is not configured; alerts routed to it go to the other \
                         receivers named, else the default receivers (logged once per name: add a [[receivers]] \
                         entry with this name, or change the routing rule's configuration)"
                    );
                }
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
        escalate::start(&self.policies, alert, now)
    }

    fn escalation_step(
        &self,
        timer: &EscalationRow,
        _alert: &AlertRow,
    ) -> Option<(Vec<String>, Option<EscalationRow>)> {
        escalate::step(&self.policies, timer)
    }

    fn wake(&self) {
        self.wake.notify_waiters();
    }
}
