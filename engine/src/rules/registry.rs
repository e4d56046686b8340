//! The `RuleRegistry`: the active rule set, swapped atomically (arc-swap) on every deploy,
//! delete and quarantine, so a batch in flight finishes on the set it started with and the
//! next batch sees the new one: no event is skipped or evaluated twice. Holds the per-rule
//! state (kept across hot reloads of the same rule name), per-rule statistics, and the
//! subscription index that offers an event only to the rules that asked for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;
use vigil_sdk::state::{StateLimits, StateStore};

use super::module::{CompiledRule, Sandbox};
use super::{RuleError, RuleKind};

/// Counters of one rule name (across its versions).
#[derive(Debug, Default)]
pub struct RuleStats {
    /// Evaluate calls.
    pub calls: AtomicU64,
    /// Events offered.
    pub events: AtomicU64,
    /// Events the rule matched.
    pub matches: AtomicU64,
    /// Alerts emitted.
    pub alerts: AtomicU64,
    /// Alerts dropped (cap or invalid).
    pub alerts_dropped: AtomicU64,
    /// Faults (traps, timeouts, memory cap, bad returns).
    pub faults: AtomicU64,
    /// Time spent in the rule, ns.
    pub time_ns: AtomicU64,
}

impl RuleStats {
    fn snapshot(&self) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "calls": g(&self.calls), "events": g(&self.events), "matches": g(&self.matches),
            "alerts": g(&self.alerts), "alerts_dropped": g(&self.alerts_dropped), "faults": g(&self.faults),
            "time_ns": g(&self.time_ns),
            "ns_per_event": g(&self.time_ns).checked_div(g(&self.events)).unwrap_or(0),
        })
    }
}

/// A deployed rule version.
pub struct LoadedRule {
    /// Compiled module, manifest, config.
    pub compiled: CompiledRule,
    /// Unique per deploy (instances are keyed by it).
    pub generation: u64,
    /// When it was deployed (epoch ms).
    pub deployed_at: i64,
    /// Where it came from (`api` or the file path).
    pub source: String,
    /// The rule's state (shared by all versions of the name).
    pub state: Arc<Mutex<StateStore>>,
    /// The rule's counters.
    pub stats: Arc<RuleStats>,
    /// Faults of this deployment (quarantine after `max_faults`).
    pub strikes: AtomicU64,
    /// Set once quarantined (the set no longer holds it).
    pub quarantined: AtomicBool,
}

impl LoadedRule {
    /// Rule name.
    pub fn name(&self) -> &str {
        &self.compiled.manifest.name
    }

    /// Lowercase hex SHA-256 of the module.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.compiled.sha256)
    }
}

/// Index from event values to the detection rules that subscribed to them.
#[derive(Default)]
pub struct SubscriptionIndex {
    by_action: HashMap<String, Vec<usize>>,
    by_category: HashMap<String, Vec<usize>>,
    by_outcome: HashMap<String, Vec<usize>>,
    any: Vec<usize>,
}

impl SubscriptionIndex {
    fn build(rules: &[Arc<LoadedRule>]) -> Self {
        let mut index = Self::default();
        for (i, rule) in rules.iter().enumerate() {
            for clause in &rule.compiled.manifest.subscribe {
                // Index each clause by its most selective non-empty list.
                let (map, keys) = if !clause.actions.is_empty() {
                    (&mut index.by_action, &clause.actions)
                } else if !clause.categories.is_empty() {
                    (&mut index.by_category, &clause.categories)
                } else if !clause.outcomes.is_empty() {
                    (&mut index.by_outcome, &clause.outcomes)
                } else {
                    index.any.push(i);
                    continue;
                };
                for key in keys {
                    map.entry(key.clone()).or_default().push(i);
                }
            }
        }
        index
    }

    /// Appends to `out` the (deduplicated, ascending) indexes of rules that want this event.
    pub fn lookup(&self, rules: &[Arc<LoadedRule>], category: &str, action: &str, outcome: &str, out: &mut Vec<usize>) {
        out.clear();
        let empty: &[usize] = &[];
        let candidates = self
            .by_action
            .get(action)
            .map_or(empty, Vec::as_slice)
            .iter()
            .chain(self.by_category.get(category).map_or(empty, Vec::as_slice))
            .chain(self.by_outcome.get(outcome).map_or(empty, Vec::as_slice))
            .chain(&self.any);
        for &i in candidates {
            if rules[i].compiled.manifest.matches(category, action, outcome) {
                out.push(i);
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

/// An immutable snapshot of the active rules.
#[derive(Default)]
pub struct RuleSet {
    /// Detection rules.
    pub detection: Vec<Arc<LoadedRule>>,
    /// Routing rules.
    pub routing: Vec<Arc<LoadedRule>>,
    /// Subscription index over `detection`.
    pub index: SubscriptionIndex,
}

impl RuleSet {
    fn with(rules: Vec<Arc<LoadedRule>>) -> Self {
        let (detection, routing): (Vec<_>, Vec<_>) =
            rules.into_iter().partition(|r| r.compiled.manifest.kind == RuleKind::Detection);
        let index = SubscriptionIndex::build(&detection);
        Self { detection, routing, index }
    }

    fn all(&self) -> impl Iterator<Item = &Arc<LoadedRule>> {
        self.detection.iter().chain(&self.routing)
    }

    /// Longest window any detection rule declares, ms.
    pub fn longest_window_ms(&self) -> i64 {
        self.detection.iter().map(|r| r.compiled.manifest.longest_window_ms()).max().unwrap_or(0)
    }
}

/// What a deploy did.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    /// Rule name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Module SHA-256 (hex).
    pub sha256: String,
    /// SHA-256 of the version it replaced, if any.
    pub replaced: Option<String>,
    /// Whether compilation was skipped (module cache hit).
    pub cached: bool,
}

/// Quarantine record of a rule name.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantine {
    /// Module SHA-256 (hex).
    pub sha256: String,
    /// Why.
    pub reason: String,
    /// When (epoch ms).
    pub at: i64,
}

/// Settings of the registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Faults of one deployment before it is quarantined.
    pub max_faults: u64,
    /// Bounds of each rule's state.
    pub state_limits: StateLimits,
    /// Configuration JSON per rule name (`{}` when absent).
    pub rule_config: HashMap<String, String>,
}

/// The registry.
pub struct RuleRegistry {
    sandbox: Sandbox,
    current: ArcSwap<RuleSet>,
    states: Mutex<HashMap<String, Arc<Mutex<StateStore>>>>,
    stats: Mutex<HashMap<String, Arc<RuleStats>>>,
    quarantined: Mutex<HashMap<String, Quarantine>>,
    swap: Mutex<()>,
    generation: AtomicU64,
    config: RegistryConfig,
}

impl RuleRegistry {
    /// An empty registry.
    pub fn new(sandbox: Sandbox, config: RegistryConfig) -> Self {
        Self {
            sandbox,
            current: ArcSwap::from_pointee(RuleSet::default()),
            states: Mutex::default(),
            stats: Mutex::default(),
            quarantined: Mutex::default(),
            swap: Mutex::default(),
            generation: AtomicU64::new(1),
            config,
        }
    }

    /// The sandbox (engine, instance budgets).
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The active set (a consistent snapshot).
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    /// Compiles, validates and activates a module. CPU heavy: call from a blocking thread.
    /// When `expected_name` is given the manifest name must equal it.
    pub fn deploy(&self, bytes: &[u8], expected_name: Option<&str>, source: &str) -> Result<Deployed, RuleError> {
        let sha: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), bytes)).into();
        let cached = self.sandbox.is_cached(&sha);
        let config = |name: &str| self.config.rule_config.get(name).cloned().unwrap_or_else(|| "{}".into());
        let compiled = self.sandbox.compile(bytes, &config)?;
        let name = compiled.manifest.name.clone();
        if let Some(expected) = expected_name
            && expected != name
        {
            return Err(RuleError::Invalid(format!(
                "the module's manifest names the rule {name:?}, but it was uploaded as {expected:?}"
            )));
        }
        let limits = self.config.state_limits;
        let state = self
            .states
            .lock()
            .expect("states lock")
            .entry(name.clone())
            .or_insert_with(|| Arc::new(Mutex::new(StateStore::new(limits))))
            .clone();
        let stats = self.stats.lock().expect("stats lock").entry(name.clone()).or_default().clone();
        let rule = Arc::new(LoadedRule {
            compiled,
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            deployed_at: crate::ingest::now_ms(),
            source: source.into(),
            state,
            stats,
            strikes: AtomicU64::new(0),
            quarantined: AtomicBool::new(false),
        });
        let _guard = self.swap.lock().expect("swap lock");
        let old = self.current.load_full();
        let replaced = old.all().find(|r| r.name() == name).map(|r| r.sha256_hex());
        let mut rules: Vec<Arc<LoadedRule>> = old.all().filter(|r| r.name() != name).cloned().collect();
        let deployed = Deployed {
            name: name.clone(),
            version: rule.compiled.manifest.version.clone(),
            sha256: rule.sha256_hex(),
            replaced,
            cached,
        };
        rules.push(rule);
        rules.sort_by(|a, b| a.name().cmp(b.name()));
        self.current.store(Arc::new(RuleSet::with(rules)));
        self.quarantined.lock().expect("quarantine lock").remove(&name);
        Ok(deployed)
    }

    /// Removes a rule (and its state). Returns the removed version's SHA-256.
    pub fn delete(&self, name: &str) -> Result<String, RuleError> {
        let _guard = self.swap.lock().expect("swap lock");
        let old = self.current.load_full();
        let Some(removed) = old.all().find(|r| r.name() == name).cloned() else {
            return match self.quarantined.lock().expect("quarantine lock").remove(name) {
                Some(q) => Ok(q.sha256),
                None => Err(RuleError::NotFound(name.into())),
            };
        };
        let rules = old.all().filter(|r| r.name() != name).cloned().collect();
        self.current.store(Arc::new(RuleSet::with(rules)));
        self.states.lock().expect("states lock").remove(name);
        Ok(removed.sha256_hex())
    }

    /// Counts a fault of `rule`; when it reaches the limit, the rule is taken out of the set
    /// and `true` is returned (once).
    pub fn strike(&self, rule: &LoadedRule, reason: &str) -> bool {
        rule.stats.faults.fetch_add(1, Ordering::Relaxed);
        let strikes = rule.strikes.fetch_add(1, Ordering::Relaxed) + 1;
        if strikes < self.config.max_faults || rule.quarantined.swap(true, Ordering::SeqCst) {
            return false;
        }
        let _guard = self.swap.lock().expect("swap lock");
        let old = self.current.load_full();
        let rules = old.all().filter(|r| r.generation != rule.generation).cloned().collect();
        self.current.store(Arc::new(RuleSet::with(rules)));
        self.quarantined.lock().expect("quarantine lock").insert(
            rule.name().into(),
            Quarantine { sha256: rule.sha256_hex(), reason: reason.into(), at: crate::ingest::now_ms() },
        );
        true
    }

    /// Description of every rule (active and quarantined) for `GET /v1/rules`.
    pub fn describe(&self) -> Vec<serde_json::Value> {
        let set = self.current();
        let mut out: Vec<serde_json::Value> = set.all().map(|r| self.describe_rule(r)).collect();
        for (name, q) in self.quarantined.lock().expect("quarantine lock").iter() {
            out.push(serde_json::json!({"name": name, "status": "quarantined", "sha256": q.sha256,
                "quarantine": q, "stats": self.stats_of(name)}));
        }
        out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        out
    }

    fn describe_rule(&self, r: &LoadedRule) -> serde_json::Value {
        let m = super::manifest_json(&r.compiled.manifest);
        let state = r.state.lock().expect("rule state lock");
        serde_json::json!({
            "name": m["name"], "version": m["version"], "kind": m["kind"], "status": "active",
            "sha256": r.sha256_hex(), "description": m["description"], "severity": m["severity"],
            "mitre": m["mitre"], "fields": m["fields"], "subscribe": m["subscribe"], "windows_ms": m["windows_ms"],
            "abi_minor": r.compiled.abi_minor, "source": r.source,
            "deployed_at": crate::ingest::format_rfc3339_ms(r.deployed_at),
            "state": {"keys": state.len(), "bytes": state.approx_bytes(), "evictions": state.evictions()},
            "stats": r.stats.snapshot(),
        })
    }

    /// One rule's description, or None.
    pub fn describe_one(&self, name: &str) -> Option<serde_json::Value> {
        self.describe().into_iter().find(|r| r["name"] == name)
    }

    /// Counters of a rule name, if it ever ran.
    pub fn stats_of(&self, name: &str) -> Option<serde_json::Value> {
        self.stats.lock().expect("stats lock").get(name).map(|s| s.snapshot())
    }

    /// Prometheus series per rule.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let set = self.current();
        let _ = writeln!(out, "# TYPE vigil_rule_events_total counter\n# TYPE vigil_rule_faults_total counter");
        let _ = writeln!(out, "# TYPE vigil_rule_alerts_total counter\n# TYPE vigil_rule_state_keys gauge");
        for r in set.all() {
            let (name, s) = (r.name(), &r.stats);
            let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let keys = r.state.lock().expect("rule state lock").len();
            let _ = writeln!(out, "vigil_rule_events_total{{rule=\"{name}\"}} {}", g(&s.events));
            let _ = writeln!(out, "vigil_rule_matches_total{{rule=\"{name}\"}} {}", g(&s.matches));
            let _ = writeln!(out, "vigil_rule_alerts_total{{rule=\"{name}\"}} {}", g(&s.alerts));
            let _ = writeln!(out, "vigil_rule_faults_total{{rule=\"{name}\"}} {}", g(&s.faults));
            let _ = writeln!(out, "vigil_rule_time_ns_total{{rule=\"{name}\"}} {}", g(&s.time_ns));
            let _ = writeln!(out, "vigil_rule_state_keys{{rule=\"{name}\"}} {keys}");
        }
    }
}
