//! The `RuleRegistry`: the active rule set, swapped atomically (arc-swap) on every deploy,
//! delete and quarantine, so a batch in flight finishes on the set it started with and the
//! next batch sees the new one: no event is skipped or evaluated twice. Holds the per-rule
//! state (kept across hot reloads of the same rule name), per-rule statistics and rate
//! limits, and the subscription index that offers an event only to the rules that asked
//! for it. Deploying is two steps, `prepare` (compile and validate) then `activate`, so the
//! caller can record the change durably (`deploy::RuleJournal`) before it takes effect; the registry
//! itself never touches the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;
use vigil_sdk::state::{StateLimits, StateStore};

use super::limits::{Governor, RateLimits, Strikes};
use super::module::{CompiledRule, Sandbox};
use super::{RuleError, RuleFormat, RuleKind};

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
    /// Alerts dropped as invalid.
    pub alerts_dropped: AtomicU64,
    /// Alerts dropped by the per-minute rate limit.
    pub alerts_rate_limited: AtomicU64,
    /// Decisions accepted from the rule.
    pub decisions: AtomicU64,
    /// Decisions refused: invalid JSON, over the rate, past the policy (scope, duration, caps).
    pub decisions_refused: AtomicU64,
    /// Log lines dropped by the rate limit.
    pub logs_dropped: AtomicU64,
    /// Events offered but not evaluated (after a fault in their batch, or too large).
    pub skipped: AtomicU64,
    /// Faults (traps, timeouts, memory cap, bad returns).
    pub faults: AtomicU64,
    /// Time spent in the rule, ns.
    pub time_ns: AtomicU64,
    /// State entries after the last batch (read without touching the state itself).
    pub state_keys: AtomicU64,
    /// Approximate state bytes after the last batch.
    pub state_bytes: AtomicU64,
    /// State entries evicted so far.
    pub state_evictions: AtomicU64,
}

impl RuleStats {
    fn snapshot(&self) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "calls": g(&self.calls), "events": g(&self.events), "matches": g(&self.matches),
            "alerts": g(&self.alerts), "alerts_dropped": g(&self.alerts_dropped),
            "alerts_rate_limited": g(&self.alerts_rate_limited), "logs_dropped": g(&self.logs_dropped),
            "decisions": g(&self.decisions), "decisions_refused": g(&self.decisions_refused),
            "skipped": g(&self.skipped), "faults": g(&self.faults),
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
    /// The rule's rate limits (shared by all versions of the name).
    pub governor: Arc<Mutex<Governor>>,
    /// Faults of this deployment (quarantine after `max_faults` standing strikes).
    pub strikes: Mutex<Strikes>,
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

mod subscriptions;
pub use subscriptions::SubscriptionIndex;

/// An immutable snapshot of the active rules.
#[derive(Default)]
pub struct RuleSet {
    /// Detection rules.
    pub detection: Vec<Arc<LoadedRule>>,
    /// Routing rules.
    pub routing: Vec<Arc<LoadedRule>>,
}

impl RuleSet {
    fn with(rules: Vec<Arc<LoadedRule>>) -> Self {
        let (detection, routing): (Vec<_>, Vec<_>) =
            rules.into_iter().partition(|r| r.compiled.manifest.kind == RuleKind::Detection);
        Self { detection, routing }
    }

    /// Every rule, detection then routing.
    pub fn all(&self) -> impl Iterator<Item = &Arc<LoadedRule>> {
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
    pub version: String,
    /// Module SHA-256 (hex).
    pub sha256: String,
    /// SHA-256 of the version it replaced, if any.
    pub replaced: Option<String>,
    /// Whether compilation was skipped (module cache hit).
    pub cached: bool,
    /// `wasm` or `sigma`.
    pub format: RuleFormat,
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
    /// Where the quarantined version came from (`api`, `file:...`).
    pub source: String,
}

/// Settings of the registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Standing strikes of one deployment before it is quarantined.
    pub max_faults: u64,
    /// Strikes are forgiven after this long without a fault.
    pub fault_decay: Duration,
    /// Bounds of each rule's state.
    pub state_limits: StateLimits,
    /// Rate limits of each rule.
    pub rate_limits: RateLimits,
    /// Time budget of one rule over one batch: base...
    pub batch_budget_base: Duration,
    /// ...plus this per event offered.
    pub batch_budget_per_event: Duration,
    /// Configuration JSON per rule name (`{}` when absent).
    pub rule_config: HashMap<String, String>,
    /// What rules may decide (`respond::Gate` in the server). None: every rule decision is
    /// refused, as in deploy probes.
    pub decision_gate: Option<Arc<dyn super::DecisionGate>>,
    /// The `[[lists]]` rules may ask (`in_list`). None: every list is unknown.
    pub lists: Option<Arc<crate::ingest::Enricher>>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            max_faults: 3,
            fault_decay: Duration::from_secs(600),
            state_limits: StateLimits::default(),
            rate_limits: RateLimits::default(),
            batch_budget_base: Duration::from_millis(200),
            batch_budget_per_event: Duration::from_micros(100),
            decision_gate: None,
            lists: None,
            rule_config: HashMap::new(),
        }
    }
}

/// A compiled, validated module not active yet (see [`RuleRegistry::prepare`]).
pub struct Prepared {
    compiled: CompiledRule,
    cached: bool,
}

impl Prepared {
    /// The rule name its manifest gives.
    pub fn name(&self) -> &str {
        &self.compiled.manifest.name
    }

    pub fn version(&self) -> &str {
        &self.compiled.manifest.version
    }

    /// Lowercase hex SHA-256 of the module.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.compiled.sha256)
    }

    /// The manifest in force.
    pub fn manifest(&self) -> &super::Manifest {
        &self.compiled.manifest
    }

    /// `wasm` or `sigma`.
    pub fn format(&self) -> RuleFormat {
        self.compiled.format
    }

    /// The configuration JSON its init was given.
    pub fn config_json(&self) -> &str {
        &self.compiled.config_json
    }
}

pub struct RuleRegistry {
    sandbox: Sandbox,
    current: ArcSwap<RuleSet>,
    states: Mutex<HashMap<String, Arc<Mutex<StateStore>>>>,
    stats: Mutex<HashMap<String, Arc<RuleStats>>>,
    governors: Mutex<HashMap<String, Arc<Mutex<Governor>>>>,
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
            governors: Mutex::default(),
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

    /// The settings.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The active set (a consistent snapshot).
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    /// Compiles and validates a rule without activating it, in the format its bytes show
    /// (stored rules at start). CPU heavy: call from a blocking thread. When `expected_name`
    /// is given the manifest name must equal it (a Sigma text needs it: it is the name).
    pub fn prepare(&self, bytes: &[u8], expected_name: Option<&str>) -> Result<Prepared, RuleError> {
        self.prepare_as(bytes, expected_name, RuleFormat::detect(bytes))
    }

    /// [`Self::prepare`] in a given format (the upload's content type, the file's extension).
    pub fn prepare_as(
        &self,
        bytes: &[u8],
        expected_name: Option<&str>,
        format: RuleFormat,
    ) -> Result<Prepared, RuleError> {
        match format {
            RuleFormat::Wasm => self.prepare_wasm(bytes, expected_name),
            RuleFormat::Sigma => self.prepare_sigma(bytes, expected_name),
        }
    }

    /// A Sigma text: the embedded evaluator with the text as configuration, versioned by
    /// the SHA-256 of both.
    fn prepare_sigma(&self, text: &[u8], expected_name: Option<&str>) -> Result<Prepared, RuleError> {
        let name = expected_name
            .ok_or_else(|| RuleError::Invalid("a Sigma deployment needs a rule name (the URL or file name)".into()))?;
        let sha = super::sigma::version_sha256(text);
        let config = super::sigma::config_json(name, text, &sha)?;
        let evaluator: [u8; 32] =
            sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), super::sigma::EVALUATOR)).into();
        let cached = self.sandbox.is_cached(&evaluator);
        let compiled = self
            .sandbox
            .compile_configured(super::sigma::EVALUATOR, &config, sha)
            .map_err(|e| super::sigma::refusal(name, e))?;
        if compiled.manifest.name != name {
            return Err(RuleError::Invalid(format!(
                "Sigma deployment {name}: the evaluator named it {:?}",
                compiled.manifest.name
            )));
        }
        Ok(Prepared { compiled, cached })
    }

    fn prepare_wasm(&self, bytes: &[u8], expected_name: Option<&str>) -> Result<Prepared, RuleError> {
        let sha: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), bytes)).into();
        let cached = self.sandbox.is_cached(&sha);
        let config = |name: &str| self.config.rule_config.get(name).cloned().unwrap_or_else(|| "{}".into());
        let compiled = self.sandbox.compile(bytes, &config)?;
        if let Some(expected) = expected_name
            && expected != compiled.manifest.name
        {
            return Err(RuleError::Invalid(format!(
                "the module's manifest names the rule {:?}, but it was uploaded as {expected:?}",
                compiled.manifest.name
            )));
        }
        Ok(Prepared { compiled, cached })
    }

    /// Compiles, validates and activates a module at once (tools and benchmarks; the
    /// server records the change between [`Self::prepare`] and [`Self::activate`]).
    pub fn deploy(&self, bytes: &[u8], expected_name: Option<&str>, source: &str) -> Result<Deployed, RuleError> {
        let prepared = self.prepare(bytes, expected_name)?;
        Ok(self.activate(prepared, source, crate::event::now_ms()))
    }

    fn shared<T>(map: &Mutex<HashMap<String, Arc<T>>>, name: &str, make: impl FnOnce() -> T) -> Arc<T> {
        map.lock().expect("registry map lock").entry(name.to_owned()).or_insert_with(|| Arc::new(make())).clone()
    }

    /// Swaps a prepared module in (replacing any version of the same name, and lifting a
    /// quarantine of the name). `deployed_at` is epoch ms.
    pub fn activate(&self, prepared: Prepared, source: &str, deployed_at: i64) -> Deployed {
        let Prepared { compiled, cached } = prepared;
        let name = compiled.manifest.name.clone();
        let limits = self.config.state_limits;
        let rate_limits = self.config.rate_limits;
        let rule = Arc::new(LoadedRule {
            compiled,
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            deployed_at,
            source: source.into(),
            state: Self::shared(&self.states, &name, || Mutex::new(StateStore::new(limits))),
            stats: Self::shared(&self.stats, &name, RuleStats::default),
            governor: Self::shared(&self.governors, &name, || Mutex::new(Governor::new(rate_limits))),
            strikes: Mutex::default(),
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
            format: rule.compiled.format,
        };
        rules.push(rule);
        rules.sort_by(|a, b| a.name().cmp(b.name()));
        self.current.store(Arc::new(RuleSet::with(rules)));
        self.quarantined.lock().expect("quarantine lock").remove(&name);
        deployed
    }

    /// Marks a rule name quarantined without running it (a stored quarantine coming back
    /// at start, or a stored rule that can no longer be compiled).
    pub fn restore_quarantine(&self, name: &str, quarantine: Quarantine) {
        let _guard = self.swap.lock().expect("swap lock");
        let old = self.current.load_full();
        if old.all().any(|r| r.name() == name) {
            let rules = old.all().filter(|r| r.name() != name).cloned().collect();
            self.current.store(Arc::new(RuleSet::with(rules)));
        }
        self.quarantined.lock().expect("quarantine lock").insert(name.into(), quarantine);
    }

    /// The name of the active or quarantined rule whose module has this SHA-256 (hex).
    pub fn rule_with_sha(&self, sha256_hex: &str) -> Option<String> {
        if let Some(r) = self.current().all().find(|r| r.sha256_hex() == sha256_hex) {
            return Some(r.name().to_owned());
        }
        let q = self.quarantined.lock().expect("quarantine lock");
        q.iter().find(|(_, q)| q.sha256 == sha256_hex).map(|(name, _)| name.clone())
    }

    /// (source, name, SHA-256 hex) of every active and quarantined rule.
    pub fn sources(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<_> =
            self.current().all().map(|r| (r.source.clone(), r.name().to_owned(), r.sha256_hex())).collect();
        let q = self.quarantined.lock().expect("quarantine lock");
        out.extend(q.iter().map(|(name, q)| (q.source.clone(), name.clone(), q.sha256.clone())));
        out
    }

    /// The SHA-256 (hex) of the active or quarantined version of `name`.
    pub fn sha_of(&self, name: &str) -> Option<String> {
        if let Some(r) = self.current().all().find(|r| r.name() == name) {
            return Some(r.sha256_hex());
        }
        self.quarantined.lock().expect("quarantine lock").get(name).map(|q| q.sha256.clone())
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

    /// Counts a fault of `rule`; when its standing strikes reach the limit, the rule is
    /// taken out of the set and `true` is returned (once). Strikes older than the decay
    /// interval are forgiven, so rare poison events never quarantine a good rule.
    pub fn strike(&self, rule: &LoadedRule, reason: &str) -> bool {
        rule.stats.faults.fetch_add(1, Ordering::Relaxed);
        let strikes = rule.strikes.lock().expect("strikes lock").strike(Instant::now(), self.config.fault_decay);
        if strikes < self.config.max_faults || rule.quarantined.swap(true, Ordering::SeqCst) {
            return false;
        }
        let _guard = self.swap.lock().expect("swap lock");
        let old = self.current.load_full();
        let rules = old.all().filter(|r| r.generation != rule.generation).cloned().collect();
        self.current.store(Arc::new(RuleSet::with(rules)));
        self.quarantined.lock().expect("quarantine lock").insert(
            rule.name().into(),
            Quarantine {
                sha256: rule.sha256_hex(),
                reason: reason.into(),
                at: crate::event::now_ms(),
                source: rule.source.clone(),
            },
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
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let s = &r.stats;
        serde_json::json!({
            "name": m["name"], "version": m["version"], "kind": m["kind"], "status": "active",
            "sha256": r.sha256_hex(), "description": m["description"], "severity": m["severity"],
            "mitre": m["mitre"], "fields": m["fields"], "subscribe": m["subscribe"], "windows_ms": m["windows_ms"],
            "abi_minor": r.compiled.abi_minor,
            // Sigma deployments list as `source: sigma`; `origin` is where any rule came from.
            "source": match r.compiled.format { RuleFormat::Sigma => "sigma", RuleFormat::Wasm => r.source.as_str() },
            "origin": r.source, "format": r.compiled.format,
            "deployed_at": crate::event::format_rfc3339_ms(r.deployed_at),
            "state": {"keys": g(&s.state_keys), "bytes": g(&s.state_bytes), "evictions": g(&s.state_evictions)},
            "strikes": r.strikes.lock().expect("strikes lock").current(Instant::now(), self.config.fault_decay),
            "stats": r.stats.snapshot(),
        })
    }

    /// The MITRE ATT&CK ids of an active rule's manifest (empty when it has none or is
    /// not deployed).
    pub fn mitre_of(&self, name: &str) -> Vec<String> {
        self.current().all().find(|r| r.name() == name).map(|r| r.compiled.manifest.mitre.clone()).unwrap_or_default()
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
        let rules: Vec<_> = set.all().collect();
        fn g(a: &AtomicU64) -> u64 {
            a.load(Ordering::Relaxed)
        }
        type Value = fn(&RuleStats) -> String;
        let families: [(&str, &str, &str, Value); 12] = [
            ("vigil_rule_events_total", "counter", "Events offered to the rule.", |s| g(&s.events).to_string()),
            ("vigil_rule_matches_total", "counter", "Events the rule matched.", |s| g(&s.matches).to_string()),
            ("vigil_rule_alerts_total", "counter", "Alerts the rule raised.", |s| g(&s.alerts).to_string()),
            ("vigil_rule_faults_total", "counter", "Faults (trap, deadline, memory, bad output).", |s| {
                g(&s.faults).to_string()
            }),
            ("vigil_rule_evaluation_seconds_total", "counter", "Time spent evaluating the rule.", |s| {
                format!("{:.9}", g(&s.time_ns) as f64 / 1e9)
            }),
            ("vigil_rule_seconds_per_event", "gauge", "Mean evaluation time per event offered.", |s| {
                let ns = g(&s.time_ns).checked_div(g(&s.events)).unwrap_or(0);
                format!("{:.9}", ns as f64 / 1e9)
            }),
            (
                "vigil_rule_skipped_events_total",
                "counter",
                "Events not evaluated (rule faulted or over budget).",
                |s| g(&s.skipped).to_string(),
            ),
            ("vigil_rule_alerts_rate_limited_total", "counter", "Alerts dropped by the per-rule rate limit.", |s| {
                g(&s.alerts_rate_limited).to_string()
            }),
            ("vigil_rule_decisions_total", "counter", "Decisions the rule emitted that the host accepted.", |s| {
                g(&s.decisions).to_string()
            }),
            (
                "vigil_rule_decisions_refused_total",
                "counter",
                "Decisions the host refused (invalid, over the rate, past [decisions] limits).",
                |s| g(&s.decisions_refused).to_string(),
            ),
            ("vigil_rule_state_keys", "gauge", "Keys in the rule's host-owned state.", |s| {
                s.state_keys.load(Ordering::Relaxed).to_string()
            }),
            ("vigil_rule_state_bytes", "gauge", "Bytes of the rule's host-owned state.", |s| {
                s.state_bytes.load(Ordering::Relaxed).to_string()
            }),
        ];
        for (metric, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
            for r in &rules {
                let _ = writeln!(out, "{metric}{{rule=\"{}\"}} {}", r.name(), value(&r.stats));
            }
        }
    }
}
