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

use vigil_sdk::Severity;

use crate::event::CommittedEvent;
use crate::event::{SLOT_ACTION, SLOT_CATEGORY, SLOT_OUTCOME};
use crate::finding::{EmittedAlert, Evaluated, QuarantineNotice, RaisedAlert, RaisedDecision, RefusedDecision};
use crate::rules::RuleRegistry;
use crate::rules::instance::{BatchColumns, RuleInstance};
use crate::rules::limits::batch_budget;
use crate::rules::registry::{LoadedRule, RuleSet, SubscriptionIndex};

/// An event's (category, action, outcome) bytes: what decides which rules it is offered to.
type Triple<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// Which detection rules an evaluator runs, by rule name (cluster mode runs each detection
/// slot's rules on their own evaluator, docs/cluster.md "Detection").
pub type RuleFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The detection rules an evaluator runs out of one rule set, and their subscription index.
struct Selected {
    set: Arc<RuleSet>,
    rules: Arc<[Arc<LoadedRule>]>,
    index: SubscriptionIndex,
}

/// Evaluates batches; owns the instances (one per rule version).
pub struct Evaluator {
    registry: Arc<RuleRegistry>,
    /// None: every active detection rule.
    filter: Option<RuleFilter>,
    instances: HashMap<u64, RuleInstance>,
    columns: BatchColumns,
    /// The rules and subscription index of the set it was built for (rebuilt when the set
    /// changes).
    index: Option<Selected>,
    /// Per rule, the batch positions of the events it is offered (reused across batches).
    buckets: Vec<Vec<usize>>,
}

impl Evaluator {
    /// A fresh evaluator of every active detection rule.
    pub fn new(registry: Arc<RuleRegistry>) -> Self {
        Self {
            registry,
            filter: None,
            instances: HashMap::new(),
            columns: BatchColumns::default(),
            index: None,
            buckets: Vec::new(),
        }
    }

    /// A fresh evaluator of the active detection rules whose name `filter` accepts (the
    /// registry's compiled modules are shared, only the instances are this evaluator's).
    /// Routing ([`Self::route`]) is not filtered.
    pub fn with_filter(registry: Arc<RuleRegistry>, filter: RuleFilter) -> Self {
        Self { filter: Some(filter), ..Self::new(registry) }
    }

    /// The active detection rules this evaluator runs now.
    pub fn rules(&self) -> Vec<Arc<LoadedRule>> {
        let set = self.registry.current();
        set.detection.iter().filter(|r| self.filter.as_ref().is_none_or(|f| f(r.name()))).cloned().collect()
    }

    /// Longest window the active detection rules this evaluator runs declare, ms.
    pub fn longest_window_ms(&self) -> i64 {
        self.rules().iter().map(|r| r.compiled.manifest.longest_window_ms()).max().unwrap_or(0)
    }

    /// How many of the current set's detection rules this evaluator runs (cached per set).
    pub fn rule_count(&mut self) -> usize {
        self.select().len()
    }

    /// The rules of the current set this evaluator runs, with their index (rebuilt only
    /// when the set changed).
    fn select(&mut self) -> Arc<[Arc<LoadedRule>]> {
        let set = self.registry.current();
        if !self.index.as_ref().is_some_and(|s| Arc::ptr_eq(&s.set, &set)) {
            let rules: Arc<[Arc<LoadedRule>]> = match &self.filter {
                None => set.detection.clone().into(),
                Some(f) => set.detection.iter().filter(|r| f(r.name())).cloned().collect(),
            };
            let index = SubscriptionIndex::build(&rules);
            self.index = Some(Selected { set, rules, index });
        }
        self.index.as_ref().expect("built above").rules.clone()
    }

    /// Evaluates a batch of committed events against the current rule set. The events are
    /// lent to each rule's instance during its calls (for lazy field reads) and are back,
    /// unchanged, when this returns.
    pub fn evaluate(&mut self, events: &mut Vec<CommittedEvent>) -> Evaluated {
        let rules = self.select();
        let mut out = Evaluated::default();
        if rules.is_empty() {
            self.instances.clear();
            return out;
        }
        let index = &mut self.index.as_mut().expect("built by select").index;
        let buckets = &mut self.buckets;
        buckets.iter_mut().for_each(Vec::clear);
        buckets.resize_with(rules.len(), Vec::new);
        let mut last: Option<(Triple<'_>, Arc<[u32]>)> = None;
        for (i, ev) in events.iter().enumerate() {
            let f = ev.flat();
            let key = (
                f.get(SLOT_CATEGORY).unwrap_or(b""),
                f.get(SLOT_ACTION).unwrap_or(b""),
                f.get(SLOT_OUTCOME).unwrap_or(b""),
            );
            // The server's own events (alert history, silences, decisions: ids in the
            // reserved namespace) are never offered, so an alert's history cannot raise
            // more alerts, nor a decision more decisions.
            if (key.0 == b"alert" || key.0 == b"response") && is_reserved(ev) {
                continue;
            }
            // Runs of events of one kind are common: reuse the previous answer.
            let wanted = match &last {
                Some((k, w)) if *k == key => w.clone(),
                _ => {
                    let w = index.lookup(f.str(SLOT_CATEGORY), f.str(SLOT_ACTION), f.str(SLOT_OUTCOME));
                    last = Some((key, w.clone()));
                    w
                }
            };
            for &r in wanted.iter() {
                buckets[r as usize].push(i);
            }
        }
        drop(last);
        self.columns.reset(events.len());

        let buckets = std::mem::take(&mut self.buckets);
        for (rule, picked) in rules.iter().zip(&buckets) {
            if !picked.is_empty() {
                self.run_rule(rule, events, picked, &mut out);
            }
        }
        self.buckets = buckets;
        // Drop instances of versions no longer active.
        if self.instances.len() > rules.len() {
            self.instances.retain(|g, _| rules.iter().any(|r| r.generation == *g));
        }
        out
    }

    /// Offers alert records to every active routing rule (each record to each rule, one
    /// call per rule); the receivers they name are in `routes`. Alerts a routing rule
    /// emits are ignored.
    pub fn route(&mut self, records: &mut Vec<CommittedEvent>) -> Evaluated {
        let set = self.registry.current();
        let mut out = Evaluated::default();
        if records.is_empty() {
            return out;
        }
        let picked: Vec<usize> = (0..records.len()).collect();
        self.columns.reset(records.len());
        for rule in &set.routing {
            self.run_rule(rule, records, &picked, &mut out);
        }
        out.alerts.clear();
        out.decisions.clear();
        out.refused_decisions.clear();
        if self.instances.len() > set.detection.len() + set.routing.len() {
            self.instances.retain(|g, _| set.all().any(|r| r.generation == *g));
        }
        out
    }

    fn run_rule(
        &mut self,
        rule: &Arc<LoadedRule>,
        events: &mut Vec<CommittedEvent>,
        picked: &[usize],
        out: &mut Evaluated,
    ) {
        let stats = &rule.stats;
        let instance = match self.instances.entry(rule.generation) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let (gate, lists) =
                    (self.registry.config().decision_gate.clone(), self.registry.config().lists.clone());
                match self.registry.sandbox().instantiate(&rule.compiled, rule.governor.clone(), gate, lists) {
                    Ok(i) => v.insert(i),
                    Err(e) => {
                        stats.skipped.fetch_add(picked.len() as u64, Ordering::Relaxed);
                        self.fault(rule, &format!("instantiation failed: {e}"), out);
                        return;
                    }
                }
            }
        };
        let fields = &rule.compiled.fields;
        let col_ids: Vec<usize> =
            fields.iter().map(|f| if f.is_flat() { usize::MAX } else { self.columns.column(f) }).collect();
        let config = self.registry.config();
        let budget = batch_budget(config.batch_budget_base, config.batch_budget_per_event, picked.len());
        let started = Instant::now();
        let (outcome, fault) =
            instance.evaluate(fields, &col_ids, picked, events, &mut self.columns, budget, &rule.state);
        stats.time_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.events.fetch_add(picked.len() as u64, Ordering::Relaxed);
        stats.skipped.fetch_add(outcome.skipped, Ordering::Relaxed);
        stats.matches.fetch_add(outcome.matched, Ordering::Relaxed);
        stats.alerts.fetch_add(outcome.alerts.len() as u64, Ordering::Relaxed);
        stats.alerts_dropped.fetch_add(outcome.alerts_dropped, Ordering::Relaxed);
        stats.alerts_rate_limited.fetch_add(outcome.alerts_rate_limited, Ordering::Relaxed);
        stats.logs_dropped.fetch_add(outcome.logs_dropped, Ordering::Relaxed);
        stats.decisions.fetch_add(outcome.decisions.len() as u64, Ordering::Relaxed);
        stats.decisions_refused.fetch_add(outcome.decisions_refused, Ordering::Relaxed);
        let (keys, bytes, evictions) = outcome.state;
        stats.state_keys.store(keys, Ordering::Relaxed);
        stats.state_bytes.store(bytes, Ordering::Relaxed);
        stats.state_evictions.store(evictions, Ordering::Relaxed);
        out.evaluations += outcome.evaluated;
        out.routes.extend(outcome.routes);
        let latest = picked.last().map_or_else(crate::event::now_ms, |&i| events[i].flat().time_ms);
        for alert in outcome.alerts {
            // Picked events are in seq order: each named seq is found by binary search.
            let at = alert
                .event_seqs
                .iter()
                .filter_map(|s| picked.binary_search_by_key(s, |&i| events[i].seq).ok())
                .map(|p| events[picked[p]].flat().time_ms)
                .max()
                .unwrap_or(latest);
            out.alerts.push(RaisedAlert {
                rule: rule.name().to_owned(),
                rule_version: rule.compiled.manifest.version.clone(),
                rule_sha256: rule.sha256_hex(),
                alert,
                at,
            });
        }
        let sha = rule.sha256_hex();
        out.decisions.extend(outcome.decisions.into_iter().map(|decision| RaisedDecision {
            rule: rule.name().to_owned(),
            rule_sha256: sha.clone(),
            decision,
        }));
        out.refused_decisions.extend(outcome.decisions_noted.into_iter().map(|(decision, reason, note)| {
            RefusedDecision {
                rule: rule.name().to_owned(),
                rule_sha256: sha.clone(),
                decision,
                reason: reason.into(),
                note,
            }
        }));
        if outcome.decision_flood_started {
            out.alerts.push(decision_flood_alert(rule, latest));
        }
        if outcome.flood_started {
            out.alerts.push(flood_alert(rule, self.registry.config().rate_limits.alerts_per_minute, latest));
        }
        if let Some(fault) = fault {
            // The instance may be corrupt: drop it; the next batch gets a fresh one.
            self.instances.remove(&rule.generation);
            tracing::warn!(rule = rule.name(), kind = fault.kind, detail = ?fault.detail, skipped = outcome.skipped, "Rule faulted; its instance was reset");
            self.fault(rule, &format!("{}: {}", fault.kind, fault.detail), out);
        }
    }

    fn fault(&mut self, rule: &Arc<LoadedRule>, reason: &str, out: &mut Evaluated) {
        out.faulted += 1;
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

/// Whether an event is one of the server's own reserved-id events (never offered to rules).
fn is_reserved(ev: &CommittedEvent) -> bool {
    ev.event_id().starts_with(crate::event::RESERVED_ID_PREFIX)
}

/// The P3 alert that reports a rule whose decisions are being refused (over its rate or the
/// `[decisions]` limits), raised once per flood (a refusal after a quiet minute).
fn decision_flood_alert(rule: &LoadedRule, at: i64) -> RaisedAlert {
    let name = rule.name();
    RaisedAlert::by_vigil(
        rule.sha256_hex(),
        EmittedAlert {
            title: format!("Decision flood: rule {name} issues decisions past its limits"),
            severity: Severity::P3,
            dedup_key: format!("decision_flood:{name}"),
            fields: serde_json::json!({"rule": name, "sha256": rule.sha256_hex()}),
            event_seqs: vec![],
            actions: vec![
                format!("GET /v1/rules/{name}/stats shows how many decisions were refused (decisions_refused)"),
                "Check the rule's thresholds, or the [decisions] limits (per_rule_per_minute, max_active_per_rule)"
                    .into(),
            ],
        },
        at,
    )
}

/// The one P3 alert that reports a rule's alert flood (raised by Vigil itself).
fn flood_alert(rule: &LoadedRule, per_minute: u32, at: i64) -> RaisedAlert {
    let name = rule.name();
    RaisedAlert::by_vigil(
        rule.sha256_hex(),
        EmittedAlert {
            title: format!("Alert flood: rule {name} emitted more than {per_minute} alerts in a minute"),
            severity: Severity::P3,
            dedup_key: format!("alert_flood:{name}"),
            fields: serde_json::json!({"rule": name, "alerts_per_minute": per_minute, "sha256": rule.sha256_hex()}),
            event_seqs: vec![],
            actions: vec![
                format!("GET /v1/rules/{name}/stats shows how many alerts were dropped (alerts_rate_limited)"),
                "Tune the rule's thresholds or dedup keys, or raise [rules] alerts_per_minute".into(),
            ],
        },
        at,
    )
}
