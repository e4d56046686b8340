//! The sandbox: one wasmtime `Engine` (cranelift, pooling allocator with copy-on-write
//! memory init, epoch interruption driven by a ticker thread), the `Linker` of the rule ABI,
//! and a moka cache of compiled modules keyed by SHA-256, so re-activating a version that
//! was already compiled skips compilation, plus an on-disk artifact cache (keyed by SHA-256
//! and the engine's compatibility hash, MAC-ed with a server key) so a restart does not
//! recompile: artifacts are written only from Vigil's own compilation, and a file whose MAC
//! does not verify is ignored, so uploaded bytes are never deserialized as native code.
//! `Sandbox::compile` validates an upload fully (size, wasm validity, imports, exports, ABI
//! version, manifest, a probing init) before anything is swapped in.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use vigil_sdk::Severity;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig};

use super::abi::{self, HostState};
use super::instance::{InstanceLimits, RuleInstance};
use super::limits::{Governor, RateLimits};
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
    /// Where compiled artifacts are cached, with the key that MACs them (none: no disk cache).
    pub artifact_cache: Option<(PathBuf, Vec<u8>)>,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            max_module_bytes: 8 << 20,
            memory_bytes: 64 << 20,
            tick: Duration::from_millis(10),
            deadline_ticks: 20,
            max_instances: 128,
            artifact_cache: None,
        }
    }
}

/// A validated, compiled rule version, ready to instantiate.
#[derive(Clone)]
pub struct CompiledRule {
    /// SHA-256 of the module bytes.
    pub sha256: [u8; 32],
    pub manifest: Manifest,
    /// Declared fields, resolved.
    pub fields: Arc<[FieldPath]>,
    /// ABI minor version.
    pub abi_minor: u32,
    /// Pre-linked instance template.
    pub pre: InstancePre<HostState>,
    /// Configuration JSON given to init.
    pub config_json: Arc<str>,
    /// A wasm module, or a Sigma text run by the embedded evaluator.
    pub format: super::RuleFormat,
}

/// Engine, linker and module cache.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    modules: moka::sync::Cache<[u8; 32], Module>,
    limits: SandboxLimits,
    stop_ticker: Arc<AtomicBool>,
    /// Hex of the engine's precompile compatibility hash (part of artifact file names).
    compat: String,
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
        // A profiling aid: `VIGIL_WASM_PERFMAP=1` writes /tmp/perf-<pid>.map, so `perf`
        // names the functions of rule modules.
        if std::env::var_os("VIGIL_WASM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
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
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let compat = format!("{:016x}", h.finish());
        if let Some((dir, _)) = &limits.artifact_cache {
            std::fs::create_dir_all(dir).map_err(|e| RuleError::Invalid(format!("artifact cache {dir:?}: {e}")))?;
        }
        Ok(Self { engine, linker, modules, limits, stop_ticker, compat })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Per-instance budgets.
    pub fn instance_limits(&self) -> InstanceLimits {
        InstanceLimits {
            memory_bytes: self.limits.memory_bytes,
            deadline_ticks: self.limits.deadline_ticks,
            tick: self.limits.tick,
        }
    }

    /// Whether a module with this SHA-256 is already compiled.
    pub fn is_cached(&self, sha256: &[u8; 32]) -> bool {
        self.modules.contains_key(sha256)
    }

    /// Validates and compiles `bytes` (CPU heavy: call off the async runtime). The probe
    /// instance runs init with `config_json` under the same deadline and memory cap as
    /// evaluation, so a hostile init cannot hang or exhaust the server.
    pub fn compile(&self, bytes: &[u8], config_for: &dyn Fn(&str) -> String) -> Result<CompiledRule, RuleError> {
        let (sha256, pre) = self.link(bytes, true)?;
        // Probe with an empty config to read the manifest, then start for real with the
        // rule's configured one.
        // Both probes use a throwaway state, so deploying cannot touch the live rule's state.
        // Probes use a throwaway governor (and never see the live rule's state).
        let probe =
            HostState::new(Arc::from("(deploying)"), Severity::P3, Self::probe_governor(), self.limits.memory_bytes);
        let (_, manifest, abi_minor) = RuleInstance::start(&self.engine, &pre, probe, self.instance_limits(), "{}")?;
        let fields = manifest.fields.iter().map(|f| FieldPath::parse(f).expect("validated")).collect();
        let config_json = config_for(&manifest.name).into();
        let rule =
            CompiledRule { sha256, manifest, fields, abi_minor, pre, config_json, format: super::RuleFormat::Wasm };
        if &*rule.config_json != "{}" {
            self.instantiate(&rule, Self::probe_governor(), None, None)?;
        }
        Ok(rule)
    }

    /// Compiles a module whose configuration is the rule itself (the Sigma evaluator with
    /// a Sigma text): init runs once with `config_json`, and the manifest read after it
    /// (ABI 1.3) is the rule's. `sha256` is the version's identity (module and text).
    pub fn compile_configured(
        &self,
        bytes: &[u8],
        config_json: &str,
        sha256: [u8; 32],
    ) -> Result<CompiledRule, RuleError> {
        // The evaluator is Vigil's own module, not an upload: no size cap.
        let (_, pre) = self.link(bytes, false)?;
        let probe =
            HostState::new(Arc::from("(deploying)"), Severity::P3, Self::probe_governor(), self.limits.memory_bytes);
        let (_, manifest, abi_minor) =
            RuleInstance::start(&self.engine, &pre, probe, self.instance_limits(), config_json)?;
        let fields = manifest.fields.iter().map(|f| FieldPath::parse(f).expect("validated")).collect();
        Ok(CompiledRule {
            sha256,
            manifest,
            fields,
            abi_minor,
            pre,
            config_json: config_json.into(),
            format: super::RuleFormat::Sigma,
        })
    }

    fn probe_governor() -> Arc<Mutex<Governor>> {
        Arc::new(Mutex::new(Governor::new(RateLimits::default())))
    }

    /// The module of `bytes` (compiled, or from the caches) linked against the rule ABI.
    fn link(&self, bytes: &[u8], capped: bool) -> Result<([u8; 32], InstancePre<HostState>), RuleError> {
        if capped && bytes.len() > self.limits.max_module_bytes {
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
                let m = match self.load_artifact(&sha256) {
                    Some(m) => m,
                    None => {
                        let m = Module::new(&self.engine, bytes)
                            .map_err(|e| RuleError::Invalid(format!("not a valid WebAssembly module: {e:#}")))?;
                        check_imports(&m)?;
                        self.store_artifact(&sha256, &m);
                        m
                    }
                };
                check_imports(&m)?;
                self.modules.insert(sha256, m.clone());
                m
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| RuleError::Invalid(format!("imports do not match the rule ABI: {e:#}")))?;
        Ok((sha256, pre))
    }

    /// A fresh instance of a compiled rule bound to the rule's rate limits (its state is
    /// lent to it per batch).
    pub fn instantiate(
        &self,
        rule: &CompiledRule,
        governor: Arc<Mutex<Governor>>,
        gate: Option<Arc<dyn super::DecisionGate>>,
        lists: Option<Arc<crate::ingest::Enricher>>,
    ) -> Result<RuleInstance, RuleError> {
        let mut host = HostState::new(
            Arc::from(rule.manifest.name.as_str()),
            rule.manifest.severity,
            governor,
            self.limits.memory_bytes,
        );
        host.gate = gate;
        host.lists = lists;
        RuleInstance::start(&self.engine, &rule.pre, host, self.instance_limits(), &rule.config_json).map(|(i, _, _)| i)
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Sandbox {
    fn artifact_path(&self, sha256: &[u8; 32]) -> Option<(PathBuf, &[u8])> {
        let (dir, key) = self.limits.artifact_cache.as_ref()?;
        Some((dir.join(format!("{}-{}.cwasm", hex::encode(sha256), self.compat)), key))
    }

    fn artifact_mac(key: &[u8], sha256: &[u8; 32], artifact: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(b"vigil-artifact-v1");
        mac.update(sha256);
        mac.update(artifact);
        mac
    }

    /// A module from the disk cache, if a file for this SHA-256 and engine exists and its
    /// MAC verifies (anything else is ignored and recompiled).
    fn load_artifact(&self, sha256: &[u8; 32]) -> Option<Module> {
        let (path, key) = self.artifact_path(sha256)?;
        let file = std::fs::read(&path).ok()?;
        let (tag, artifact) = file.split_at_checked(32)?;
        if Self::artifact_mac(key, sha256, artifact).verify_slice(tag).is_err() {
            tracing::warn!(file = %path.display(), "Compiled rule artifact failed its MAC; recompiling");
            return None;
        }
        // SAFETY: the bytes were produced by `Module::serialize` of this server's own
        // compilation (the MAC, keyed by a server secret, proves it), for an engine with the
        // same compatibility hash (part of the file name); wasmtime also checks the header.
        #[allow(unsafe_code)]
        let module = unsafe { Module::deserialize(&self.engine, artifact) };
        module
            .map_err(|e| tracing::warn!(file = %path.display(), error = %e, "Unusable rule artifact; recompiling"))
            .ok()
    }

    /// Writes a freshly compiled module to the disk cache (best effort: a failure only
    /// costs a recompile at the next start).
    fn store_artifact(&self, sha256: &[u8; 32], module: &Module) {
        let Some((path, key)) = self.artifact_path(sha256) else { return };
        let write = || -> std::io::Result<()> {
            let artifact = module.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut file = Self::artifact_mac(key, sha256, &artifact).finalize().into_bytes().to_vec();
            file.extend_from_slice(&artifact);
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &file)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            // A full disk: the partial temporary file would only hold on to space.
            let _ = std::fs::remove_file(path.with_extension("tmp"));
            tracing::warn!(file = %path.display(), error = %e, "Could not cache a compiled rule artifact");
        }
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
