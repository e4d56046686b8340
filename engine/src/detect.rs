//! Detection: runs the active detection rules over committed events.
//!
//! The `Evaluator` (sync) holds one long-lived instance per rule version and evaluates a
//! batch: each event is offered only to the rules whose subscription matches (the index in
//! `rules::registry`), each rule gets all its events of the batch in one call, faults are
//! counted and a rule that keeps faulting is quarantined. `pipeline` runs an Evaluator on
//! its own thread fed by the `Sequencer`; `replay` rebuilds rule state from stored history
//! at start and powers `vigil rules backtest`. The state itself lives in the host
//! (`vigil_sdk::state`, one `StateStore` per rule name, see `rules::abi`).

pub mod pipeline;
pub mod replay;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::rules::RuleRegistry;
use crate::rules::abi::EmittedAlert;
use crate::rules::instance::{Batch, BatchColumns, RuleInstance};
use crate::rules::registry::LoadedRule;
use crate::store::sequencer::CommittedEvent;

/// An alert as raised by a rule, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct RaisedAlert {
    /// Rule name.
    pub rule: String,
    /// Rule version.
    pub rule_version: String,
    /// Module SHA-256 (hex).
    pub rule_sha256: String,
    /// The alert.
    pub alert: EmittedAlert,
    /// Event time of the latest triggering event in the batch (epoch ms).
    pub at: i64,
}

/// A rule was quarantined during a batch.
#[derive(Debug, Clone)]
pub struct QuarantineNotice {
    /// Rule name.
    pub rule: String,
    /// Module SHA-256 (hex).
    pub sha256: String,
    /// Last fault.
    pub reason: String,
}

/// Output of one batch.
#[derive(Debug, Default)]
pub struct Evaluated {
    /// Alerts raised.
    pub alerts: Vec<RaisedAlert>,
    /// Rules quarantined.
    pub quarantined: Vec<QuarantineNotice>,
    /// Rule evaluations (event x rule) done.
    pub evaluations: u64,
}

/// Evaluates batches; owns the instances (one per rule version).
pub struct Evaluator {
    registry: Arc<RuleRegistry>,
    instances: HashMap<u64, RuleInstance>,
    scratch: Vec<usize>,
    columns: BatchColumns,
}

fn str_of<'a>(ev: &'a Map<String, Value>, key: &str) -> &'a str {
    ev.get(key).and_then(Value::as_str).unwrap_or("")
}

impl Evaluator {
    /// A fresh evaluator.
    pub fn new(registry: Arc<RuleRegistry>) -> Self {
        Self { registry, instances: HashMap::new(), scratch: Vec::new(), columns: BatchColumns::default() }
    }

    /// Longest window the active detection rules declare, ms.
    pub fn longest_window_ms(&self) -> i64 {
        self.registry.current().longest_window_ms()
    }

    /// Evaluates a batch of committed events against the current rule set.
    pub fn evaluate(&mut self, events: &[CommittedEvent]) -> Evaluated {
        let set = self.registry.current();
        let mut out = Evaluated::default();
        if set.detection.is_empty() {
            self.instances.clear();
            return out;
        }
        let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); set.detection.len()];
        let mut times = Vec::with_capacity(events.len());
        for (i, ev) in events.iter().enumerate() {
            let e = &ev.event;
            times.push(e.get("timestamp").and_then(Value::as_i64).unwrap_or(0));
            set.index.lookup(
                &set.detection,
                str_of(e, "category"),
                str_of(e, "action"),
                str_of(e, "outcome"),
                &mut self.scratch,
            );
            for &r in &self.scratch {
                buckets[r].push(i);
            }
        }
        let maps: crate::rules::abi::SharedEvents = events.iter().map(|e| e.event.clone()).collect();
        let batch = Batch { events, times: &times, maps: &maps };
        self.columns.reset(events.len());
        for (rule, picked) in set.detection.iter().zip(buckets) {
            if !picked.is_empty() {
                self.run_rule(rule, &batch, &picked, &mut out);
            }
        }
        // Drop instances of versions no longer active.
        if self.instances.len() > set.detection.len() {
            self.instances.retain(|g, _| set.detection.iter().any(|r| r.generation == *g));
        }
        out
    }

    fn run_rule(&mut self, rule: &Arc<LoadedRule>, batch: &Batch<'_>, picked: &[usize], out: &mut Evaluated) {
        let instance = match self.instances.entry(rule.generation) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                match self.registry.sandbox().instantiate(&rule.compiled, rule.state.clone()) {
                    Ok(i) => v.insert(i),
                    Err(e) => {
                        self.fault(rule, &format!("instantiation failed: {e}"), out);
                        return;
                    }
                }
            }
        };
        let fields = &rule.compiled.fields;
        let col_ids: Vec<usize> = fields.iter().map(|f| self.columns.column(f)).collect();
        let started = Instant::now();
        let result = instance.evaluate(fields, &col_ids, picked, batch, &mut self.columns);
        let stats = &rule.stats;
        stats.time_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.events.fetch_add(picked.len() as u64, Ordering::Relaxed);
        out.evaluations += picked.len() as u64;
        match result {
            Ok(outcome) => {
                stats.matches.fetch_add(outcome.matched, Ordering::Relaxed);
                stats.alerts.fetch_add(outcome.alerts.len() as u64, Ordering::Relaxed);
                stats.alerts_dropped.fetch_add(outcome.alerts_dropped, Ordering::Relaxed);
                for alert in outcome.alerts {
                    let at = alert
                        .event_seqs
                        .iter()
                        .filter_map(|s| picked.iter().find(|&&i| batch.events[i].seq == *s).map(|&i| batch.times[i]))
                        .max()
                        .unwrap_or_else(|| picked.last().map_or_else(crate::ingest::now_ms, |&i| batch.times[i]));
                    out.alerts.push(RaisedAlert {
                        rule: rule.name().to_owned(),
                        rule_version: rule.compiled.manifest.version.clone(),
                        rule_sha256: rule.sha256_hex(),
                        alert,
                        at,
                    });
                }
            }
            Err(fault) => {
                // The instance may be corrupt: drop it; the next batch gets a fresh one.
                self.instances.remove(&rule.generation);
                tracing::warn!(rule = rule.name(), kind = fault.kind, detail = %fault.detail, "Rule faulted; its instance was reset");
                self.fault(rule, &format!("{}: {}", fault.kind, fault.detail), out);
            }
        }
    }

    fn fault(&mut self, rule: &Arc<LoadedRule>, reason: &str, out: &mut Evaluated) {
        if self.registry.strike(rule, reason) {
            self.instances.remove(&rule.generation);
            tracing::error!(rule = rule.name(), reason, "Rule quarantined after repeated faults");
            out.quarantined.push(QuarantineNotice {
                rule: rule.name().into(),
                sha256: rule.sha256_hex(),
                reason: reason.into(),
            });
        }
    }
}
