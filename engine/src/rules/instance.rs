//! One long-lived instance of one rule version: instantiated from its `InstancePre`,
//! initialised with its configuration, then reused across batches. `evaluate` writes many
//! events per call into the guest's input area (record table + string area, `sdk/ABI.md`)
//! and runs the guest under an epoch deadline. A fault (trap, timeout, memory cap, bad return)
//! is reported and the caller drops the instance; a fresh one is made from `InstancePre`.

use std::sync::Arc;

use serde_json::{Map, Value};
use wasmtime::{InstancePre, Memory, Store, Trap, TypedFunc, Val};

use super::abi::{EmittedAlert, HostState};
use super::{FieldPath, Manifest, RuleError};

/// Budgets of one instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    /// Linear memory cap, bytes.
    pub memory_bytes: usize,
    /// Epoch ticks allowed per call (init or one batch).
    pub deadline_ticks: u64,
}

/// What went wrong inside a rule call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `timeout`, `panic`, `trap`, `memory`, `bad_return`.
    pub kind: &'static str,
    /// Detail for the operator (the rule's last error log, the trap).
    pub detail: String,
}

/// Result of one batch.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Events the rule said matched.
    pub matched: u64,
    /// Alerts emitted.
    pub alerts: Vec<EmittedAlert>,
    /// Alerts dropped by the per-call cap or as invalid.
    pub alerts_dropped: u64,
    /// Receivers named (routing rules): (index in the batch, receiver).
    pub routes: Vec<(usize, String)>,
}

/// A ready instance.
pub struct RuleInstance {
    store: Store<HostState>,
    memory: Memory,
    evaluate: TypedFunc<i32, i32>,
    input: (usize, usize),
    verdicts: (usize, usize),
    limits: InstanceLimits,
    scratch: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

/// Splits a packed `(ptr << 32) | len` pair.
fn unpack(v: i64) -> (usize, usize) {
    (((v as u64) >> 32) as usize, (v as u64 & 0xffff_ffff) as usize)
}

fn classify(err: &wasmtime::Error, host: &HostState) -> Fault {
    let detail = host.last_error.clone().unwrap_or_else(|| format!("{err:#}"));
    let kind = match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => "timeout",
        Some(Trap::UnreachableCodeReached) => "panic",
        Some(Trap::StackOverflow) => "stack_overflow",
        Some(_) => "trap",
        None if err.is::<super::abi::MemoryCapExceeded>() => "memory",
        None => "trap",
    };
    Fault { kind, detail: detail.chars().take(1024).collect() }
}

impl RuleInstance {
    /// Instantiates, reads the ABI version and manifest, and runs init with `config`.
    /// Returns the instance, the manifest and the ABI minor.
    pub fn start(
        engine: &wasmtime::Engine,
        pre: &InstancePre<HostState>,
        host: HostState,
        limits: InstanceLimits,
        config_json: &str,
    ) -> Result<(Self, Manifest, u32), RuleError> {
        let invalid = |m: String| RuleError::Invalid(m);
        let mut store = Store::new(engine, host);
        store.limiter(|h| &mut h.limits);
        store.set_epoch_deadline(limits.deadline_ticks);
        store.epoch_deadline_trap();
        let instance = pre.instantiate(&mut store).map_err(|e| invalid(format!("instantiation failed: {e:#}")))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| invalid("the module exports no `memory`".into()))?;
        store.data_mut().memory = Some(memory);
        let mut read_u32_global = |name: &str| -> Result<u32, RuleError> {
            let global = instance
                .get_global(&mut store, name)
                .ok_or_else(|| invalid(format!("missing export `{name}` (not built with vigil-sdk?)")))?;
            let Val::I32(addr) = global.get(&mut store) else {
                return Err(invalid(format!("export `{name}` must be an i32 global")));
            };
            let addr = addr as u32 as usize;
            let bytes = memory
                .data(&store)
                .get(addr..addr + 4)
                .ok_or_else(|| invalid(format!("`{name}` points outside memory")))?;
            Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
        };
        let major = read_u32_global("VIGIL_ABI_MAJOR")?;
        let minor = read_u32_global("VIGIL_ABI_MINOR")?;
        if major != 1 {
            return Err(invalid(format!("rule ABI major version {major} is not supported (this server speaks 1.x)")));
        }
        let typed = |store: &mut Store<HostState>, name: &str| {
            instance
                .get_typed_func::<(), i64>(&mut *store, name)
                .map_err(|e| invalid(format!("export `{name}`: {e:#} (expected () -> i64)")))
        };
        let manifest_fn = typed(&mut store, "vigil_manifest")?;
        let input_fn = typed(&mut store, "vigil_input_area")?;
        let verdicts_fn = typed(&mut store, "vigil_verdicts")?;
        let init = instance
            .get_typed_func::<i32, i32>(&mut store, "vigil_init")
            .map_err(|e| invalid(format!("export `vigil_init`: {e:#} (expected (i32) -> i32)")))?;
        let evaluate = instance
            .get_typed_func::<i32, i32>(&mut store, "vigil_evaluate")
            .map_err(|e| invalid(format!("export `vigil_evaluate`: {e:#} (expected (i32) -> i32)")))?;
        let call_fault = |store: &Store<HostState>, e: wasmtime::Error, what: &str| {
            let f = classify(&e, store.data());
            invalid(format!("{what} failed ({}): {}", f.kind, f.detail))
        };
        let (mptr, mlen) =
            unpack(manifest_fn.call(&mut store, ()).map_err(|e| call_fault(&store, e, "vigil_manifest"))?);
        let manifest_bytes = memory
            .data(&store)
            .get(mptr..mptr.saturating_add(mlen))
            .ok_or_else(|| invalid("the manifest points outside memory".into()))?;
        let manifest: Manifest = serde_json::from_slice(manifest_bytes)
            .map_err(|e| invalid(format!("the manifest is not valid JSON of the expected shape: {e}")))?;
        manifest.validate()?;
        let input = unpack(input_fn.call(&mut store, ()).map_err(|e| call_fault(&store, e, "vigil_input_area"))?);
        let verdicts = unpack(verdicts_fn.call(&mut store, ()).map_err(|e| call_fault(&store, e, "vigil_verdicts"))?);
        let mem_len = memory.data_size(&store);
        if input.0.saturating_add(input.1) > mem_len || input.1 < 1024 {
            return Err(invalid("the input area is outside memory or smaller than 1 KiB".into()));
        }
        if verdicts.0.saturating_add(verdicts.1) > mem_len || verdicts.1 == 0 {
            return Err(invalid("the verdict array is outside memory or empty".into()));
        }
        let config = config_json.as_bytes();
        if config.len() > input.1 {
            return Err(invalid("the rule configuration does not fit in the input area".into()));
        }
        memory.data_mut(&mut store)[input.0..input.0 + config.len()].copy_from_slice(config);
        store.set_epoch_deadline(limits.deadline_ticks);
        let rc = init.call(&mut store, config.len() as i32).map_err(|e| call_fault(&store, e, "vigil_init"))?;
        if rc != 0 {
            let why = store.data().last_error.clone().unwrap_or_default();
            return Err(invalid(format!("vigil_init refused the configuration (code {rc}): {why}")));
        }
        let instance =
            Self { store, memory, evaluate, input, verdicts, limits, scratch: Vec::new(), spans: Vec::new() };
        Ok((instance, manifest, minor))
    }

    /// Evaluates events (all offered to this rule), in chunks that fit the input area.
    pub fn evaluate(
        &mut self,
        fields: &[FieldPath],
        seqs: &[i64],
        events: &[Arc<Map<String, Value>>],
        times: &[i64],
    ) -> Result<BatchOutcome, Fault> {
        let mut outcome = BatchOutcome::default();
        let mut start = 0;
        while start < events.len() {
            let n = self.write_chunk(fields, &seqs[start..], &events[start..], &times[start..]);
            if n == 0 {
                // A single event larger than the whole input area: skip it for this rule.
                tracing::warn!(rule = %self.store.data().rule, seq = seqs[start], "Event too large for the rule's input area");
                start += 1;
                continue;
            }
            let host = self.store.data_mut();
            host.begin_call();
            host.batch.clear();
            host.batch.extend(events[start..start + n].iter().cloned());
            self.store.set_epoch_deadline(self.limits.deadline_ticks);
            match self.evaluate.call(&mut self.store, n as i32) {
                Ok(0) => {}
                Ok(rc) => return Err(Fault { kind: "bad_return", detail: format!("vigil_evaluate returned {rc}") }),
                Err(e) => return Err(classify(&e, self.store.data())),
            }
            let verdicts = &self.memory.data(&self.store)[self.verdicts.0..self.verdicts.0 + n];
            outcome.matched += verdicts.iter().filter(|v| **v != 0).count() as u64;
            let host = self.store.data_mut();
            outcome.alerts.append(&mut host.alerts);
            outcome.alerts_dropped += host.alerts_dropped;
            outcome.routes.extend(host.routes.drain(..).map(|(i, r)| (i + start, r)));
            host.batch.clear();
            start += n;
        }
        Ok(outcome)
    }

    /// Writes as many records as fit; returns how many.
    fn write_chunk(
        &mut self,
        fields: &[FieldPath],
        seqs: &[i64],
        events: &[Arc<Map<String, Value>>],
        times: &[i64],
    ) -> usize {
        let record = 16 + 8 * fields.len();
        let (cap_bytes, cap_events) = (self.input.1, self.verdicts.1);
        self.scratch.clear();
        self.spans.clear();
        let mut n = 0;
        for event in events.iter().take(cap_events) {
            let mark = (self.scratch.len(), self.spans.len());
            for path in fields {
                match path.lookup(event) {
                    None => self.spans.push((u32::MAX, u32::MAX)),
                    Some(v) => {
                        let at = self.scratch.len();
                        super::encode_value(v, &mut self.scratch);
                        self.spans.push((at as u32, (self.scratch.len() - at) as u32));
                    }
                }
            }
            if 8 + (n + 1) * record + self.scratch.len() > cap_bytes {
                self.scratch.truncate(mark.0);
                self.spans.truncate(mark.1);
                break;
            }
            n += 1;
        }
        let strings_at = 8 + n * record;
        let data = &mut self.memory.data_mut(&mut self.store)[self.input.0..self.input.0 + cap_bytes];
        data[0..4].copy_from_slice(&(n as u32).to_le_bytes());
        data[4..8].copy_from_slice(&(fields.len() as u32).to_le_bytes());
        for i in 0..n {
            let at = 8 + i * record;
            data[at..at + 8].copy_from_slice(&seqs[i].to_le_bytes());
            data[at + 8..at + 16].copy_from_slice(&times[i].to_le_bytes());
            for (f, &(off, len)) in self.spans[i * fields.len()..(i + 1) * fields.len()].iter().enumerate() {
                let slot = at + 16 + f * 8;
                let off = if len == u32::MAX { u32::MAX } else { strings_at as u32 + off };
                data[slot..slot + 4].copy_from_slice(&off.to_le_bytes());
                data[slot + 4..slot + 8].copy_from_slice(&len.to_le_bytes());
            }
        }
        data[strings_at..strings_at + self.scratch.len()].copy_from_slice(&self.scratch);
        n
    }

    /// Current linear memory size, bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }
}
