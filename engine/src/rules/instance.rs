//! One long-lived instance of one rule version: instantiated from its `InstancePre`,
//! initialised with its configuration, then reused across batches. `evaluate` writes many
//! events per call into the guest's input area (record table + string area, `sdk/ABI.md`)
//! and runs the guest under one time budget per batch, counted across every call the batch
//! takes (the guest's verdict capacity sizes the calls, never the budget). A fault (trap,
//! timeout, memory cap, bad return) ends the batch for this rule: the alerts it emitted
//! before the fault are kept, its remaining events are skipped and counted, and the caller
//! drops the instance; a fresh one is made from `InstancePre`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wasmtime::{InstancePre, Memory, Store, Trap, TypedFunc, Val};

use super::abi::HostState;
use super::{FieldPath, Manifest, RuleError};
use crate::event::CommittedEvent;
use crate::finding::EmittedAlert;
use vigil_sdk::state::StateStore;

/// Budgets of one instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    /// Linear memory cap, bytes.
    pub memory_bytes: usize,
    /// Epoch ticks allowed for init.
    pub deadline_ticks: u64,
    /// The epoch tick period (to turn a batch budget into ticks).
    pub tick: Duration,
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
    /// Alerts dropped as invalid.
    pub alerts_dropped: u64,
    /// Alerts dropped by the rule's rate limit.
    pub alerts_rate_limited: u64,
    /// A new alert flood began during this batch (reported once).
    pub flood_started: bool,
    /// Log lines dropped by the rule's rate limit.
    pub logs_dropped: u64,
    /// Events the rule evaluated to the end.
    pub evaluated: u64,
    /// Events not evaluated: after a fault, and events too large for the input area.
    pub skipped: u64,
    /// The rule's state after the batch: (keys, approximate bytes, evictions so far).
    pub state: (u64, u64, u64),
    /// Receivers named (routing rules): (index in the batch, receiver).
    pub routes: Vec<(usize, String)>,
    /// Decisions accepted.
    pub decisions: Vec<crate::finding::EmittedDecision>,
    /// Decisions refused (invalid, over the rate, past the policy).
    pub decisions_refused: u64,
    /// Decisions the gate refused with a note (allowlisted values): (decision, label, note).
    pub decisions_noted: Vec<(crate::finding::EmittedDecision, &'static str, serde_json::Value)>,
    /// A refusal started a decision flood during this batch (reported once).
    pub decision_flood_started: bool,
}

/// A ready instance.
pub struct RuleInstance {
    store: Store<HostState>,
    memory: Memory,
    evaluate: TypedFunc<i32, i32>,
    input: (usize, usize),
    verdicts: (usize, usize),
    limits: InstanceLimits,
    /// The module's ABI minor (1.5 reads the header's UTF-8 flag).
    abi_minor: u32,
}

/// Longest manifest JSON accepted, bytes.
pub const MAX_MANIFEST_BYTES: usize = 256 << 10;

/// Span of an absent value.
pub const ABSENT: (u32, u32) = (u32::MAX, u32::MAX);
const PENDING: (u32, u32) = (u32::MAX, 0);

/// Values of the fields that have no slot in the flat event (dotted `details` paths),
/// encoded at most once per (field, event) and shared by all rules: a byte arena plus, per
/// field, each event's span in it (computed on first use). Slot fields never come here.
#[derive(Default)]
pub struct BatchColumns {
    arena: Vec<u8>,
    ids: HashMap<FieldPath, usize>,
    columns: Vec<Vec<(u32, u32)>>,
    len: usize,
}

impl BatchColumns {
    /// Empties the columns for a batch of `len` events. An arena grown by a spike (a batch
    /// of huge values) is given back rather than kept for good.
    pub fn reset(&mut self, len: usize) {
        const KEEP_BYTES: usize = 4 << 20;
        if self.arena.capacity() > KEEP_BYTES {
            self.arena = Vec::new();
        }
        self.arena.clear();
        self.ids.clear();
        self.columns.clear();
        self.len = len;
    }

    /// The column of a field (created empty on first use).
    pub fn column(&mut self, path: &FieldPath) -> usize {
        if let Some(&id) = self.ids.get(path) {
            return id;
        }
        self.columns.push(vec![PENDING; self.len]);
        self.ids.insert(path.clone(), self.columns.len() - 1);
        self.columns.len() - 1
    }

    /// The span of event `i`'s value in column `col` (encoding it now if needed).
    pub fn span(&mut self, col: usize, i: usize, event: &CommittedEvent, path: &FieldPath) -> (u32, u32) {
        let span = self.columns[col][i];
        if span != PENDING {
            return span;
        }
        let start = self.arena.len();
        let found = path.encode(event, &mut self.arena);
        let span = if found { (start as u32, (self.arena.len() - start) as u32) } else { ABSENT };
        self.columns[col][i] = span;
        span
    }

    /// The bytes of event `i` in column `col`, once [`Self::span`] computed them.
    pub fn cached(&self, col: usize, i: usize) -> Option<&[u8]> {
        let span = self.columns[col][i];
        (span != ABSENT && span != PENDING).then(|| &self.arena[span.0 as usize..span.0 as usize + span.1 as usize])
    }
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
        let read_manifest = |store: &mut Store<HostState>| -> Result<(String, Manifest), RuleError> {
            let (mptr, mlen) =
                unpack(manifest_fn.call(&mut *store, ()).map_err(|e| call_fault(store, e, "vigil_manifest"))?);
            if mlen > MAX_MANIFEST_BYTES {
                return Err(invalid(format!("the manifest is {mlen} bytes, at most {MAX_MANIFEST_BYTES}")));
            }
            let manifest_bytes = memory
                .data(&*store)
                .get(mptr..mptr.saturating_add(mlen))
                .ok_or_else(|| invalid("the manifest points outside memory".into()))?;
            let text = std::str::from_utf8(manifest_bytes)
                .map_err(|_| invalid("the manifest is not UTF-8".into()))?
                .to_owned();
            let manifest = Manifest::from_json(&text)
                .map_err(|e| invalid(format!("the manifest is not valid JSON of the expected shape: {}", e.0)))?;
            super::validate_manifest(&manifest)?;
            Ok((text, manifest))
        };
        let (manifest_text, manifest) = read_manifest(&mut store)?;
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
        // ABI 1.3: the manifest after init is the one in force (a rule may refine it from its
        // configuration); a module answering the same text keeps the first.
        let (after_text, after) = read_manifest(&mut store)?;
        let manifest = if after_text == manifest_text { manifest } else { after };
        let instance = Self { store, memory, evaluate, input, verdicts, limits, abi_minor: minor };
        Ok((instance, manifest, minor))
    }

    /// Evaluates the batch events at `picked` (all offered to this rule), in chunks that
    /// fit the input area, within `budget` of wall-clock time for the whole batch. Declared
    /// fields are slots of each event's flat form, copied once into guest memory; fields
    /// without a slot come from `cols` (shared by every rule of the batch; `col_ids` are
    /// this rule's columns, `usize::MAX` for slot fields). The events are lent to the host
    /// state for lazy field reads during each call and handed back. On a fault the
    /// outcome still holds what the rule did before it.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate(
        &mut self,
        fields: &[FieldPath],
        col_ids: &[usize],
        picked: &[usize],
        events: &mut Vec<CommittedEvent>,
        cols: &mut BatchColumns,
        budget: Duration,
        state: &std::sync::Mutex<StateStore>,
    ) -> (BatchOutcome, Option<Fault>) {
        let mut outcome = BatchOutcome::default();
        let deadline = Instant::now() + budget;
        let tick = self.limits.tick.as_nanos().max(1);
        let mut start = 0;
        let mut fault = None;
        // The rule's state moves into the instance for the batch (no lock per import, and
        // none held during the batch) and back after it, whatever happens inside.
        let lock = || state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.store.data_mut().state = std::mem::take(&mut *lock());
        while start < picked.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                fault = Some(Fault { kind: "timeout", detail: format!("batch budget of {budget:?} spent") });
                break;
            }
            let n = self.write_chunk(fields, col_ids, &picked[start..], events, cols);
            if n == 0 {
                // A single event larger than the whole input area: skip it for this rule.
                let seq = events[picked[start]].seq;
                tracing::warn!(rule = %self.store.data().rule, seq, "Event too large for the rule's input area");
                outcome.skipped += 1;
                start += 1;
                continue;
            }
            let host = self.store.data_mut();
            host.begin_call();
            host.batch = std::mem::take(events);
            host.picked.clear();
            host.picked.extend(picked[start..start + n].iter().map(|&i| i as u32));
            // What is left of the batch budget, rounded up to whole ticks.
            self.store.set_epoch_deadline(left.as_nanos().div_ceil(tick) as u64);
            let result = self.evaluate.call(&mut self.store, n as i32);
            let host = self.store.data_mut();
            *events = std::mem::take(&mut host.batch);
            // Alerts emitted before a fault are kept.
            outcome.alerts.append(&mut host.alerts);
            outcome.alerts_dropped += host.alerts_dropped;
            outcome.alerts_rate_limited += host.alerts_rate_limited;
            outcome.flood_started |= host.flood_started;
            outcome.logs_dropped += host.logs_dropped;
            outcome.routes.extend(host.routes.drain(..).map(|(i, r)| (i + start, r)));
            outcome.decisions.append(&mut host.decisions);
            outcome.decisions_refused += host.decisions_refused.iter().sum::<u64>();
            outcome.decisions_noted.append(&mut host.decisions_noted);
            outcome.decision_flood_started |= host.decision_flood_started;
            match result {
                Ok(0) => {}
                Ok(rc) => {
                    fault = Some(Fault { kind: "bad_return", detail: format!("vigil_evaluate returned {rc}") });
                    break;
                }
                Err(e) => {
                    fault = Some(classify(&e, self.store.data()));
                    break;
                }
            }
            let verdicts = &self.memory.data(&self.store)[self.verdicts.0..self.verdicts.0 + n];
            outcome.matched += verdicts.iter().filter(|v| **v != 0).count() as u64;
            outcome.evaluated += n as u64;
            start += n;
        }
        let back = std::mem::take(&mut self.store.data_mut().state);
        outcome.state = (back.len() as u64, back.approx_bytes() as u64, back.evictions());
        *lock() = back;
        if fault.is_some() {
            outcome.skipped += (picked.len() - start) as u64;
        }
        (outcome, fault)
    }

    /// Writes as many records as fit into the input area; returns how many. One pass: the
    /// records of every event that could go in are reserved up front (as the SDK's
    /// `RecordWriter` does) and the values follow them, each event's flat bytes with one
    /// copy, its slots pointing into them; only fields without a place in the flat event
    /// (nested `details` paths) are copied one by one. The chunk ends at the first event
    /// whose values do not fit; if even the first does not fit beside the reserved records,
    /// it is written alone.
    fn write_chunk(
        &mut self,
        fields: &[FieldPath],
        col_ids: &[usize],
        picked: &[usize],
        events: &[CommittedEvent],
        cols: &mut BatchColumns,
    ) -> usize {
        let record = 16 + 8 * fields.len();
        let max = picked.len().min(self.verdicts.1).min((self.input.1 - 8) / record);
        match self.write_records(fields, col_ids, &picked[..max], events, cols) {
            0 if max > 1 => self.write_records(fields, col_ids, &picked[..1], events, cols),
            n => n,
        }
    }

    /// [`Self::write_chunk`] with records reserved for all of `picked`.
    fn write_records(
        &mut self,
        fields: &[FieldPath],
        col_ids: &[usize],
        picked: &[usize],
        events: &[CommittedEvent],
        cols: &mut BatchColumns,
    ) -> usize {
        let record = 16 + 8 * fields.len();
        let cap_bytes = self.input.1;
        let any_flat = fields.iter().any(FieldPath::is_flat);
        let all_flat = fields.iter().all(FieldPath::is_flat);
        // ABI 1.5: the batch's values are marked as UTF-8 when every event's are.
        let mut utf8 = self.abi_minor >= 5;
        let data = &mut self.memory.data_mut(&mut self.store)[self.input.0..self.input.0 + cap_bytes];
        let mut at_string = 8 + picked.len() * record;
        let mut n = 0;
        for &ev in picked {
            let event = &events[ev];
            let flat = event.flat();
            let mut size = if any_flat { flat.bytes().len() } else { 0 };
            if !all_flat {
                for (path, &col) in fields.iter().zip(col_ids) {
                    if !path.is_flat() {
                        size += match cols.span(col, ev, event, path) {
                            ABSENT => 0,
                            (_, len) => len as usize,
                        };
                    }
                }
            }
            if at_string + size > cap_bytes {
                break;
            }
            let at = 8 + n * record;
            let rec = &mut data[at..at + record];
            rec[0..8].copy_from_slice(&event.seq.to_le_bytes());
            rec[8..16].copy_from_slice(&flat.time_ms.to_le_bytes());
            let base = at_string as u32;
            if any_flat {
                let bytes = flat.bytes();
                data[at_string..at_string + bytes.len()].copy_from_slice(bytes);
                at_string += bytes.len();
                utf8 &= flat.is_utf8();
            }
            for (f, (path, &col)) in fields.iter().zip(col_ids).enumerate() {
                let (off, len) = if path.is_flat() {
                    path.flat_span(event).map_or(ABSENT, |(start, len)| (base + start, len))
                } else {
                    match cols.cached(col, ev) {
                        Some(bytes) => {
                            data[at_string..at_string + bytes.len()].copy_from_slice(bytes);
                            at_string += bytes.len();
                            ((at_string - bytes.len()) as u32, bytes.len() as u32)
                        }
                        None => ABSENT,
                    }
                };
                let packed = u64::from(off) | (u64::from(len) << 32);
                let slot = at + 16 + f * 8;
                data[slot..slot + 8].copy_from_slice(&packed.to_le_bytes());
            }
            n += 1;
        }
        let flags = if utf8 { vigil_sdk::record::FLAG_UTF8 } else { 0 };
        data[0..4].copy_from_slice(&(n as u32).to_le_bytes());
        data[4..8].copy_from_slice(&(fields.len() as u32 | flags).to_le_bytes());
        n
    }

    /// Current linear memory size, bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }
}
