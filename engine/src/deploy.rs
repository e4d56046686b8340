//! Rule deployment (L5): making rule changes durable, between the registry (which never
//! holds the store) and storage. A deploy is compiled and validated first
//! (`RuleRegistry::prepare`), then its module is stored in the `rules` table and its chain
//! event written, and only then activated: a change takes effect after it is recorded.
//! Deletes and quarantines are recorded the same way, and `restore` brings every stored
//! rule back at start with its SHA-256 and status (a quarantined rule stays quarantined
//! until it is redeployed). Modules compile one at a time: a deploy holds the journal's
//! [`CompileSlot`] (the API asks for it before reading the body and answers 429 when it is
//! taken; the rules-directory watcher waits for it), and the slot is held until the
//! compilation itself ends, even when the client has gone. Used by `api::rules`, `watch`
//! (the `--rules-dir` poller) and the writer in `app` (quarantines); `build_registry`
//! makes the sandbox and registry from `[rules]`, with `respond`'s decision gate.

pub mod follow;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::config::Config;
use crate::event::{now_ms, system_event};
use crate::ledger::sequencer::SequencerHandle;
use crate::respond::{Gate, Guardrails};
use crate::rules::limits::RateLimits;
use crate::rules::module::{Sandbox, SandboxLimits};
use crate::rules::registry::RegistryConfig;
use crate::rules::registry::{Deployed, Prepared, Quarantine};
use crate::rules::{RuleError, RuleFormat, RuleRegistry};
use crate::store::{Store, StoreError, StoredRule};

/// Why a rule change could not be made: the runtime refused it, or recording it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// Refused or failed by the rule runtime (invalid module, unknown rule, fault).
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// Storage (or the chain) failed while recording the change; nothing took effect.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A rule to deploy: its bytes (a wasm module or a Sigma text), the name it must have
/// (required for Sigma, which is named by it), and its format.
#[derive(Debug)]
pub struct Upload {
    /// The module or text.
    pub bytes: Vec<u8>,
    /// The rule name it is uploaded as.
    pub name: Option<String>,
    /// How to read the bytes.
    pub format: RuleFormat,
}

/// Records rule changes in the store and the chain.
#[derive(Clone)]
pub struct RuleJournal {
    store: Store,
    sequencer: SequencerHandle,
    /// One change at a time, so the stored row, the chain and the live set always agree on
    /// which version of a rule won when two deploys race.
    changes: Arc<tokio::sync::Mutex<()>>,
    /// One compilation at a time: compiling a module takes a core and memory in proportion
    /// to its size, so parallel deploys must not multiply them.
    compiling: Arc<tokio::sync::Semaphore>,
}

/// The right to compile one module (see [`RuleJournal::try_compile_slot`]); held until the
/// compilation it is given to ends.
#[derive(Debug)]
pub struct CompileSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl RuleJournal {
    /// A journal writing to `store` and the chain of `sequencer`.
    pub fn new(store: Store, sequencer: SequencerHandle) -> Self {
        Self { store, sequencer, changes: Arc::default(), compiling: Arc::new(tokio::sync::Semaphore::new(1)) }
    }

    /// The compile slot if no other module is being compiled (none: try again shortly).
    pub fn try_compile_slot(&self) -> Option<CompileSlot> {
        self.compiling.clone().try_acquire_owned().ok().map(|p| CompileSlot { _permit: p })
    }

    /// The compile slot, waiting for the compilation under way (if any) to end.
    pub async fn compile_slot(&self) -> CompileSlot {
        let permit = self.compiling.clone().acquire_owned().await.expect("the compile semaphore is never closed");
        CompileSlot { _permit: permit }
    }

    async fn chain(&self, action: &str, actor: &str, details: serde_json::Value) -> Result<(), DeployError> {
        self.sequencer.submit(vec![system_event("configuration", action, actor, details)]).await?;
        Ok(())
    }

    /// Compiles `bytes` (off the async runtime, holding `slot` until the compilation
    /// ends), writes the `rule_deployed` chain event, stores the module, then activates it.
    pub async fn deploy(
        &self,
        slot: CompileSlot,
        registry: &Arc<RuleRegistry>,
        upload: Upload,
        source: &str,
        actor: &str,
    ) -> Result<Deployed, DeployError> {
        let Upload { bytes, name: expected_name, format } = upload;
        let prepared = prepare_off_runtime(registry, bytes.clone(), expected_name, Some(format), Some(slot)).await??;
        let (name, sha256) = (prepared.name().to_owned(), prepared.sha256_hex());
        let _one_at_a_time = self.changes.lock().await;
        let replaced = registry.sha_of(&name);
        let at = now_ms();
        // Intent first: the chain names the change before it is stored or takes effect, so
        // no version can run (now or after a crash and restart) without its chain event.
        let details = json!({"rule": name, "version": prepared.version(), "sha256": sha256,
            "replaced": replaced, "source": source, "format": prepared.format()});
        self.chain("rule_deployed", actor, details).await?;
        self.store
            .save_rule(&StoredRule {
                name: name.clone(),
                sha256: sha256.clone(),
                module: bytes,
                config: prepared.config_json().to_owned(),
                source: source.to_owned(),
                actor: actor.to_owned(),
                deployed_at: at,
                status: "active".into(),
                reason: None,
                status_at: at,
            })
            .await?;
        Ok(registry.activate(prepared, source, at))
    }

    /// Deletes a rule: the chain event, then the stored module, then the live rule.
    pub async fn delete(
        &self,
        registry: &RuleRegistry,
        name: &str,
        source: &str,
        actor: &str,
    ) -> Result<String, DeployError> {
        let _one_at_a_time = self.changes.lock().await;
        let sha256 = registry.sha_of(name).ok_or_else(|| RuleError::NotFound(name.into()))?;
        self.chain("rule_deleted", actor, json!({"rule": name, "sha256": sha256, "source": source})).await?;
        self.store.delete_rule(name).await?;
        Ok(registry.delete(name)?)
    }

    /// Records a quarantine (the registry has already taken the rule out of the set). The
    /// stored status comes first: a quarantine only ever stops a rule, and it must survive
    /// a restart even when the chain event cannot be written any more (shutdown).
    pub async fn quarantined(&self, name: &str, sha256: &str, reason: &str) -> Result<(), DeployError> {
        if !self.store.set_rule_status(name, sha256, "quarantined", Some(reason), now_ms()).await? {
            tracing::warn!(rule = name, sha256, "Quarantined rule version is not the stored one; status not persisted");
        }
        self.chain("rule_quarantined", "vigil", json!({"rule": name, "sha256": sha256, "reason": reason})).await?;
        Ok(())
    }

    /// Records a module from the rules directory that was refused (so operators, and
    /// tests, can tell "refused" from "not scanned yet").
    pub async fn refused(&self, file: &str, sha256: &str, reason: &str) -> Result<(), DeployError> {
        self.chain("rule_refused", "rules_dir", json!({"file": file, "sha256": sha256, "reason": reason})).await
    }
}

/// [`RuleRegistry::prepare`] on a blocking thread (compilation is CPU heavy). The outer
/// error is the task failing, the inner one the module being refused. `slot` moves into
/// the blocking task: it is freed when compilation ends, not when a caller stops waiting.
async fn prepare_off_runtime(
    registry: &Arc<RuleRegistry>,
    module: Vec<u8>,
    expected_name: Option<String>,
    format: Option<RuleFormat>,
    slot: Option<CompileSlot>,
) -> Result<Result<Prepared, RuleError>, DeployError> {
    let compiling = registry.clone();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let format = format.unwrap_or_else(|| RuleFormat::detect(&module));
        compiling.prepare_as(&module, expected_name.as_deref(), format)
    })
    .await
    .map_err(|e| DeployError::Rule(RuleError::Fault(format!("compilation task failed: {e}"))))
}

/// Brings every stored rule back: active ones activated with their stored SHA-256,
/// quarantined ones held quarantined. A stored module that no longer compiles (or whose
/// bytes do not match its SHA-256) is held quarantined with the reason, never dropped
/// silently. Returns (active, quarantined).
pub async fn restore(store: &Store, registry: &Arc<RuleRegistry>) -> Result<(usize, usize), DeployError> {
    let rows = store.load_rules().await?;
    let (mut active, mut quarantined) = (0, 0);
    for row in rows {
        // At start, before the API serves: one at a time already.
        let prepared = prepare_off_runtime(registry, row.module.clone(), Some(row.name.clone()), None, None).await?;
        let quarantine = |reason: String| Quarantine {
            sha256: row.sha256.clone(),
            reason,
            at: row.status_at,
            source: row.source.clone(),
        };
        match prepared {
            Ok(p) if p.sha256_hex() != row.sha256 => {
                tracing::error!(rule = %row.name, "Stored rule module does not match its SHA-256; held quarantined");
                let reason = format!("stored module hashes to {}, not the recorded SHA-256", p.sha256_hex());
                registry.restore_quarantine(&row.name, quarantine(reason));
                quarantined += 1;
            }
            Ok(p) if row.status == "active" => {
                registry.activate(p, &row.source, row.deployed_at);
                active += 1;
            }
            Ok(_) => {
                registry.restore_quarantine(&row.name, quarantine(row.reason.clone().unwrap_or_default()));
                quarantined += 1;
            }
            Err(e) => {
                tracing::error!(rule = %row.name, error = %e, "Stored rule could not be restored; held quarantined");
                registry.restore_quarantine(&row.name, quarantine(format!("could not be restored at start: {e}")));
                quarantined += 1;
            }
        }
    }
    Ok((active, quarantined))
}

/// The sandbox and registry from `[rules]`.
///
/// Rule decisions pass the `[decisions]` gate over `guardrails` (the active set and the
/// allowlist `respond` keeps).
pub fn build_registry(
    config: &Config,
    artifact_cache: Option<(PathBuf, Vec<u8>)>,
    guardrails: Guardrails,
) -> Result<RuleRegistry, RuleError> {
    build_registry_with_lists(config, artifact_cache, guardrails, None)
}

/// [`build_registry`] whose rules may ask the server's `[[lists]]` (`in_list`).
pub fn build_registry_with_lists(
    config: &Config,
    artifact_cache: Option<(PathBuf, Vec<u8>)>,
    guardrails: Guardrails,
    lists: Option<Arc<crate::ingest::Enricher>>,
) -> Result<RuleRegistry, RuleError> {
    let r = &config.rules;
    let sandbox = Sandbox::new(SandboxLimits {
        max_module_bytes: r.max_module_bytes,
        memory_bytes: r.memory_limit_mb << 20,
        tick: Duration::from_millis(r.epoch_tick_ms),
        deadline_ticks: r.call_deadline_ms.div_ceil(r.epoch_tick_ms),
        max_instances: r.max_rules * 2,
        artifact_cache,
    })?;
    let rule_config = r
        .config
        .iter()
        .map(|(name, table)| {
            let json =
                serde_json::to_string(table).map_err(|e| RuleError::Invalid(format!("rules.config.{name}: {e}")))?;
            Ok((name.clone(), json))
        })
        .collect::<Result<_, RuleError>>()?;
    let state_limits = vigil_sdk::state::StateLimits {
        max_keys: r.state_max_keys,
        max_bytes: r.state_max_mb << 20,
        ..Default::default()
    };
    Ok(RuleRegistry::new(
        sandbox,
        RegistryConfig {
            max_faults: r.max_faults,
            fault_decay: Duration::from_secs(r.fault_decay_secs),
            state_limits,
            rate_limits: RateLimits {
                alerts_per_minute: r.alerts_per_minute,
                log_lines_per_minute: r.log_lines_per_minute,
                decisions_per_minute: config.decisions.per_rule_per_minute,
            },
            batch_budget_base: Duration::from_millis(r.batch_budget_base_ms),
            batch_budget_per_event: Duration::from_micros(r.batch_budget_per_event_us),
            rule_config,
            decision_gate: Some(Arc::new(Gate::new(config.decisions.clone(), guardrails, config.clock.clone()))),
            lists,
        },
    ))
}

#[cfg(test)]
mod tests {
    //! The rule host's input area as modules of different ABI minors see it (a test of
    //! `rules::instance` that needs a registry and an evaluator, which sit above it).

    use std::sync::Arc;

    use crate::config::Config;
    use crate::detect::Evaluator;
    use crate::event::CommittedEvent;

    /// A raw module of ABI 1.`minor` that raises one alert per batch whose header carries
    /// the UTF-8 flag (ABI 1.5), reading the header word as ABI.md lays it out.
    fn flag_probe(name: &str, minor: u8) -> Vec<u8> {
        let manifest = serde_json::json!({"name": name, "version": "1.0.0", "kind": "detection",
            "severity": "P3", "fields": ["user_id"], "subscribe": [{"categories": [], "actions": [], "outcomes": []}]})
        .to_string();
        let alert = r#"{"title":"utf8","severity":"P4","dedup_key":"flag"}"#;
        let hex = |s: &str| s.bytes().map(|b| format!("\\{b:02x}")).collect::<String>();
        let wat = format!(
            r#"(module
  (import "vigil" "emit_alert" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 40)
  (global (export "VIGIL_ABI_MAJOR") i32 (i32.const 16))
  (global (export "VIGIL_ABI_MINOR") i32 (i32.const 20))
  (data (i32.const 16) "\01\00\00\00\{minor:02x}\00\00\00")
  (data (i32.const 4096) "{alert_hex}")
  (data (i32.const 1048576) "{manifest_hex}")
  (func (export "vigil_manifest") (result i64)
    (i64.or (i64.shl (i64.const 1048576) (i64.const 32)) (i64.const {manifest_len})))
  (func (export "vigil_input_area") (result i64)
    (i64.or (i64.shl (i64.const 131072) (i64.const 32)) (i64.const 65536)))
  (func (export "vigil_verdicts") (result i64)
    (i64.or (i64.shl (i64.const 65536) (i64.const 32)) (i64.const 16)))
  (func (export "vigil_init") (param i32) (result i32) (i32.const 0))
  (func (export "vigil_evaluate") (param $n i32) (result i32)
    (if (i32.lt_s (i32.load (i32.const 131076)) (i32.const 0))
      (then (drop (call $emit (i32.const 4096) (i32.const {alert_len})))))
    (i32.const 0))
)"#,
            alert_hex = hex(alert),
            alert_len = alert.len(),
            manifest_hex = hex(&manifest),
            manifest_len = manifest.len(),
        );
        wat::parse_str(&wat).expect("valid WAT")
    }

    fn event(user: &str) -> Vec<u8> {
        let serde_json::Value::Object(map) = serde_json::json!({"category": "authentication",
            "action": "login_failed", "outcome": "failure", "user_id": user, "timestamp": 1})
        else {
            unreachable!()
        };
        crate::ledger::canon::to_canonical(&map)
    }

    #[test]
    fn the_utf8_flag_goes_to_modules_of_minor_5_for_batches_of_valid_text() {
        let mut config = Config::default();
        config.rules.max_rules = 2;
        let registry = Arc::new(super::build_registry(&config, None, Default::default()).expect("registry"));
        registry.deploy(&flag_probe("probe_four", 4), None, "test").expect("deploy 1.4");
        registry.deploy(&flag_probe("probe_five", 5), None, "test").expect("deploy 1.5");
        let mut evaluator = Evaluator::new(registry);
        let mut raised = |canon: Vec<u8>| {
            let mut events = vec![CommittedEvent::from_canon(1, canon)];
            let mut rules: Vec<String> = evaluator.evaluate(&mut events).alerts.into_iter().map(|a| a.rule).collect();
            rules.sort();
            rules
        };
        // Text: flagged for the 1.5 module only (a 1.4 module reads the word as n_fields).
        assert_eq!(raised(event("caf\u{e9}")), ["probe_five"]);
        // A damaged row (not UTF-8): no flag, each rule checks what it reads.
        let mut damaged = event("caf\u{e9}");
        let at = damaged.windows(4).position(|w| w == b"caf\xc3").expect("the user_id bytes") + 3;
        damaged[at] = 0xff;
        assert!(raised(damaged).is_empty());
    }
}
