//! The sandbox: one wasmtime `Engine` (cranelift, pooling allocator with copy-on-write
//! memory init, epoch interruption driven by a ticker thread), the `Linker` of the rule ABI,
//! and a moka cache of compiled modules keyed by SHA-256, so re-activating a version that
//! was already compiled skips compilation. `Sandbox::compile` validates an upload fully
//! (size, wasm validity, imports, exports, ABI version, manifest, a probing init) before
//! anything is swapped in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig};

use super::abi::{self, HostState};
use super::instance::{InstanceLimits, RuleInstance};
use super::{FieldPath, Manifest, RuleError};

/// Sandbox limits (from `[rules]` in the config).
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Largest accepted module, bytes.
    pub max_module_bytes: usize,
    /// Linear memory cap per instance, bytes.
    pub memory_bytes: usize,
    /// Epoch tick period.
    pub tick: Duration,
    /// Ticks allowed per call (init or one batch).
    pub deadline_ticks: u64,
    /// Most rule versions alive at once (sizes the instance pool; x2 for hot swap).
    pub max_instances: u32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            max_module_bytes: 16 << 20,
            memory_bytes: 64 << 20,
            tick: Duration::from_millis(10),
            deadline_ticks: 20,
            max_instances: 128,
        }
    }
}

/// A validated, compiled rule version, ready to instantiate.
#[derive(Clone)]
pub struct CompiledRule {
    /// SHA-256 of the module bytes.
    pub sha256: [u8; 32],
    /// Its manifest.
    pub manifest: Manifest,
    /// Declared fields, resolved.
    pub fields: Arc<[FieldPath]>,
    /// ABI minor version.
    pub abi_minor: u32,
    /// Pre-linked instance template.
    pub pre: InstancePre<HostState>,
    /// Configuration JSON given to init.
    pub config_json: Arc<str>,
}

/// Engine, linker and module cache.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    modules: moka::sync::Cache<[u8; 32], Module>,
    limits: SandboxLimits,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Sandbox {
    /// Builds the engine and starts the epoch ticker.
    pub fn new(limits: SandboxLimits) -> Result<Self, RuleError> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(limits.max_instances)
            .total_memories(limits.max_instances)
            .total_tables(limits.max_instances * 2)
            .max_memory_size(limits.memory_bytes);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| RuleError::Invalid(format!("wasm engine: {e:#}")))?;
        let linker = abi::linker(&engine).map_err(|e| RuleError::Invalid(format!("wasm linker: {e:#}")))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticking, stop, tick) = (engine.clone(), stop_ticker.clone(), limits.tick);
        std::thread::Builder::new()
            .name("vigil-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| RuleError::Invalid(format!("epoch ticker: {e}")))?;
        let modules = moka::sync::Cache::builder().max_capacity(256).build();
        Ok(Self { engine, linker, modules, limits, stop_ticker })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Per-instance budgets.
    pub fn instance_limits(&self) -> InstanceLimits {
        InstanceLimits { memory_bytes: self.limits.memory_bytes, deadline_ticks: self.limits.deadline_ticks }
    }

    /// Whether a module with this SHA-256 is already compiled.
    pub fn is_cached(&self, sha256: &[u8; 32]) -> bool {
        self.modules.contains_key(sha256)
    }

    /// Validates and compiles `bytes` (CPU heavy: call off the async runtime). The probe
    /// instance runs init with `config_json` under the same deadline and memory cap as
    /// evaluation, so a hostile init cannot hang or exhaust the server.
    pub fn compile(&self, bytes: &[u8], config_for: &dyn Fn(&str) -> String) -> Result<CompiledRule, RuleError> {
        if bytes.len() > self.limits.max_module_bytes {
            return Err(RuleError::Invalid(format!(
                "module is {} bytes (at most {})",
                bytes.len(),
                self.limits.max_module_bytes
            )));
        }
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        let module = match self.modules.get(&sha256) {
            Some(m) => m,
            None => {
                let m = Module::new(&self.engine, bytes)
                    .map_err(|e| RuleError::Invalid(format!("not a valid WebAssembly module: {e:#}")))?;
                check_imports(&m)?;
                self.modules.insert(sha256, m.clone());
                m
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| RuleError::Invalid(format!("imports do not match the rule ABI: {e:#}")))?;
        // Probe with an empty config to read the manifest, then start for real with the
        // rule's configured one.
        // Both probes use a throwaway state, so deploying cannot touch the live rule's state.
        let scratch = || Arc::new(std::sync::Mutex::new(vigil_sdk::state::StateStore::default()));
        let probe = HostState::new(Arc::from("(deploying)"), "P3".into(), scratch(), self.limits.memory_bytes);
        let (_, manifest, abi_minor) = RuleInstance::start(&self.engine, &pre, probe, self.instance_limits(), "{}")?;
        let fields = manifest.fields.iter().map(|f| FieldPath::parse(f).expect("validated")).collect();
        let config_json = config_for(&manifest.name).into();
        let rule = CompiledRule { sha256, manifest, fields, abi_minor, pre, config_json };
        if &*rule.config_json != "{}" {
            self.instantiate(&rule, scratch())?;
        }
        Ok(rule)
    }

    /// A fresh instance of a compiled rule bound to the rule's state.
    pub fn instantiate(
        &self,
        rule: &CompiledRule,
        state: Arc<std::sync::Mutex<vigil_sdk::state::StateStore>>,
    ) -> Result<RuleInstance, RuleError> {
        let host = HostState::new(
            Arc::from(rule.manifest.name.as_str()),
            rule.manifest.severity.as_str().to_owned(),
            state,
            self.limits.memory_bytes,
        );
        RuleInstance::start(&self.engine, &rule.pre, host, self.instance_limits(), &rule.config_json).map(|(i, _, _)| i)
    }
}

fn check_imports(module: &Module) -> Result<(), RuleError> {
    for import in module.imports() {
        if import.module() != "vigil" || !abi::IMPORTS.contains(&import.name()) {
            return Err(RuleError::Invalid(format!(
                "the module imports `{}::{}`, which the rule ABI does not provide (only `vigil` imports: {})",
                import.module(),
                import.name(),
                abi::IMPORTS.join(", ")
            )));
        }
    }
    for name in [
        "memory",
        "VIGIL_ABI_MAJOR",
        "VIGIL_ABI_MINOR",
        "vigil_manifest",
        "vigil_input_area",
        "vigil_verdicts",
        "vigil_init",
        "vigil_evaluate",
    ] {
        if module.get_export(name).is_none() {
            return Err(RuleError::Invalid(format!(
                "missing export `{name}` (was the rule built with vigil-sdk's export_rule!?)"
            )));
        }
    }
    Ok(())
}
