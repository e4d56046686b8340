//! Host side of the rule ABI (`sdk/ABI.md`): the per-instance `HostState` and the `vigil`
//! imports linked into every rule. Every pointer from the guest is bounds-checked (a bad
//! one traps the guest, never the host); alerts and logs are copied out at once, capped and
//! rate-limited per rule name (`limits::Governor`), and log lines are escaped; state calls
//! go to the rule's `StateStore` (shared by all versions of a rule name).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};
use vigil_sdk::Severity;
use vigil_sdk::state::StateStore;
use wasmtime::{Caller, Engine, Linker, Memory, ResourceLimiter};

mod lists;

use super::FieldPath;
use super::limits::{AlertAdmission, Governor};
use crate::event::CommittedEvent;
use crate::finding::{EmittedAlert, EmittedDecision, parse_severity};

/// Most event seqs one alert may name (more are dropped from the list).
pub const MAX_ALERT_SEQS: usize = 100;

/// Longest alert JSON accepted.
pub const MAX_ALERT_BYTES: usize = 16 * 1024;
/// Longest log line kept.
pub const MAX_LOG_BYTES: usize = 1024;
const MAX_WINDOW_MS: i64 = 31 * 86_400_000;

/// Longest decision JSON accepted.
pub const MAX_DECISION_BYTES: usize = 4 * 1024;
/// Most refused decisions with a note (allowlisted values) kept from one call.
pub const MAX_NOTED_REFUSALS: usize = 100;

/// The error a guest gets when it grows memory past its cap (matched by type, not text).
#[derive(Debug, thiserror::Error)]
#[error("rule memory cap of {cap} bytes exceeded (wanted {desired})")]
pub struct MemoryCapExceeded {
    pub cap: usize,
    /// What the guest asked for.
    pub desired: usize,
}

/// Per-instance resource caps: memory bytes, and at most one memory and a few small tables.
#[derive(Debug, Clone, Copy)]
pub struct InstanceCaps {
    /// Linear memory cap, bytes.
    pub memory_bytes: usize,
}

impl ResourceLimiter for InstanceCaps {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return Err(MemoryCapExceeded { cap: self.memory_bytes, desired }.into());
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }
}

/// Data of one wasmtime `Store`: one rule instance.
pub struct HostState {
    /// Memory cap and friends.
    pub limits: InstanceCaps,
    /// The guest's memory, set right after instantiation.
    pub memory: Option<Memory>,
    /// Rule name (for logs).
    pub rule: Arc<str>,
    /// Default severity from the manifest.
    pub default_severity: Severity,
    /// The rule's state, owned by the instance while it evaluates a batch (it lives in the
    /// registry, shared across versions of the rule, between batches).
    pub state: StateStore,
    /// Events of the current batch (lent for the call), for lazy field reads...
    pub batch: Vec<CommittedEvent>,
    /// ...and which of them the current call's records are.
    pub picked: Vec<u32>,
    /// Alerts emitted during the current call.
    pub alerts: Vec<EmittedAlert>,
    /// Alerts dropped as invalid during the current call.
    pub alerts_dropped: u64,
    /// Alerts dropped by the rule's rate limit during the current call.
    pub alerts_rate_limited: u64,
    /// Set when the current call started a new alert flood (reported once).
    pub flood_started: bool,
    /// Log lines dropped by the rule's rate limit during the current call.
    pub logs_dropped: u64,
    /// The rule's rate limits (shared by every instance and version of the rule name).
    pub governor: Arc<Mutex<Governor>>,
    /// Last log line at error level (a panic message, typically).
    pub last_error: Option<String>,
    /// Receivers named by a routing rule during the current call: (record index, name).
    pub routes: Vec<(usize, String)>,
    /// Decisions emitted during the current call.
    pub decisions: Vec<EmittedDecision>,
    /// Decisions refused during the current call: invalid, rate-limited, refused by policy.
    pub decisions_refused: [u64; 3],
    /// Decisions the gate refused with a note (an allowlisted value) during the current
    /// call, for the alert they go with to say so: (decision, label, note); at most
    /// [`MAX_NOTED_REFUSALS`].
    pub decisions_noted: Vec<(EmittedDecision, &'static str, serde_json::Value)>,
    /// Set when a refusal of the current call started a decision flood (reported once).
    pub decision_flood_started: bool,
    /// What rules may decide (none: every decision is refused, as in deploy probes).
    pub gate: Option<Arc<dyn super::DecisionGate>>,
    /// The `[[lists]]` rules may ask (none: every list is unknown, as in deploy probes).
    pub lists: Option<Arc<crate::ingest::Enricher>>,
}

impl HostState {
    /// Fresh state for a new instance.
    pub fn new(rule: Arc<str>, default_severity: Severity, governor: Arc<Mutex<Governor>>, memory_cap: usize) -> Self {
        Self {
            limits: InstanceCaps { memory_bytes: memory_cap },
            memory: None,
            rule,
            default_severity,
            state: StateStore::default(),
            batch: Vec::new(),
            picked: Vec::new(),
            alerts: Vec::new(),
            alerts_dropped: 0,
            alerts_rate_limited: 0,
            flood_started: false,
            logs_dropped: 0,
            governor,
            last_error: None,
            routes: Vec::new(),
            decisions: Vec::new(),
            decisions_refused: [0; 3],
            decisions_noted: Vec::new(),
            decision_flood_started: false,
            gate: None,
            lists: None,
        }
    }

    /// Clears per-call buffers before a call.
    pub fn begin_call(&mut self) {
        self.alerts.clear();
        self.alerts_dropped = 0;
        self.alerts_rate_limited = 0;
        self.flood_started = false;
        self.logs_dropped = 0;
        self.routes.clear();
        self.decisions.clear();
        self.decisions_refused = [0; 3];
        self.decisions_noted.clear();
        self.decision_flood_started = false;
    }
}

fn lock_governor(g: &Mutex<Governor>) -> std::sync::MutexGuard<'_, Governor> {
    g.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn trap(msg: &str) -> wasmtime::Error {
    wasmtime::Error::msg(format!("vigil host: {msg}"))
}

fn range(data_len: usize, ptr: i32, len: i32) -> wasmtime::Result<std::ops::Range<usize>> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let end = ptr.checked_add(len).filter(|end| *end <= data_len).ok_or_else(|| trap("pointer out of bounds"))?;
    Ok(ptr..end)
}

fn memory_and_state<'a>(caller: &'a mut Caller<'_, HostState>) -> wasmtime::Result<(&'a mut [u8], &'a mut HostState)> {
    let memory = caller.data().memory.ok_or_else(|| trap("memory not ready"))?;
    Ok(memory.data_and_store_mut(caller))
}

fn window(window_ms: i64) -> wasmtime::Result<i64> {
    if (1..=MAX_WINDOW_MS).contains(&window_ms) { Ok(window_ms) } else { Err(trap("window_ms out of range")) }
}

/// Writes up to `out_cap` seqs (i64, little-endian) at `out_ptr`; returns how many exist.
fn write_seqs(data: &mut [u8], seqs: &[i64], out_ptr: i32, out_cap: i32) -> wasmtime::Result<i32> {
    let cap = (out_cap.max(0) as usize).min(seqs.len());
    let out = range(data.len(), out_ptr, (cap * 8) as i32)?;
    for (i, s) in seqs.iter().take(cap).enumerate() {
        data[out.start + i * 8..out.start + i * 8 + 8].copy_from_slice(&s.to_le_bytes());
    }
    Ok(seqs.len() as i32)
}

/// Builds the linker with every import of ABI 1.x.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    link_output(&mut linker)?;
    link_fields(&mut linker)?;
    link_windows(&mut linker)?;
    link_memory(&mut linker)?;
    lists::link_lists(&mut linker)?;
    Ok(linker)
}

/// What a rule tells the host: log lines, alerts, decisions and (routing rules) receivers.
fn link_output(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("vigil", "log", |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
        let (data, host) = memory_and_state(&mut caller)?;
        let r = range(data.len(), ptr, len.min(MAX_LOG_BYTES as i32))?;
        let line = String::from_utf8_lossy(&data[r]).into_owned();
        if level == 0 {
            host.last_error = Some(line.clone());
        }
        if !lock_governor(&host.governor).admit_log(Instant::now()) {
            host.logs_dropped += 1;
            return Ok(());
        }
        // `?` formats with Debug: control characters and quotes are escaped, so a rule
        // cannot forge log lines or terminal escapes.
        let rule = &*host.rule;
        match level {
            0 => tracing::warn!(rule, message = ?line, "Rule logged an error"),
            1 => tracing::warn!(rule, message = ?line, "Rule logged a warning"),
            2 => tracing::info!(rule, message = ?line, "Rule log"),
            _ => tracing::debug!(rule, message = ?line, "Rule log"),
        }
        Ok(())
    })?;
    linker.func_wrap("vigil", "emit_alert", |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
        let (data, host) = memory_and_state(&mut caller)?;
        let r = range(data.len(), ptr, len)?;
        if let AlertAdmission::Dropped { first } = lock_governor(&host.governor).admit_alert(Instant::now()) {
            host.alerts_rate_limited += 1;
            host.flood_started |= first;
            return Ok(1);
        }
        match parse_alert(&data[r], host.default_severity) {
            Some(alert) => {
                host.alerts.push(alert);
                Ok(0)
            }
            None => {
                host.alerts_dropped += 1;
                Ok(2)
            }
        }
    })?;
    linker.func_wrap("vigil", "emit_decision", |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
        let (data, host) = memory_and_state(&mut caller)?;
        let r = range(data.len(), ptr, len)?;
        let Some(decision) = parse_decision(&data[r]) else {
            host.decisions_refused[0] += 1;
            return Ok(2);
        };
        let now = Instant::now();
        if !lock_governor(&host.governor).admit_decision(now) {
            host.decisions_refused[1] += 1;
            host.decision_flood_started |= lock_governor(&host.governor).decision_refused(now);
            return Ok(1);
        }
        let Some(gate) = &host.gate else {
            host.decisions_refused[2] += 1;
            return Ok(3);
        };
        if let Err(refusal) = gate.admit_decision(&host.rule, &decision, host.decisions.len()) {
            gate.count_refusal(&refusal);
            host.decisions_refused[2] += 1;
            tracing::debug!(rule = &*host.rule, why = refusal.label, "Rule decision refused");
            match refusal.note {
                // The policy working as meant (an allowlisted value): no flood; the alert says so.
                Some(note) => {
                    if host.decisions_noted.len() < MAX_NOTED_REFUSALS {
                        host.decisions_noted.push((decision, refusal.label, note));
                    }
                }
                None => host.decision_flood_started |= lock_governor(&host.governor).decision_refused(now),
            }
            return Ok(3);
        }
        host.decisions.push(decision);
        Ok(0)
    })?;
    linker.func_wrap(
        "vigil",
        "route",
        |mut caller: Caller<'_, HostState>, index: i32, name_ptr: i32, name_len: i32| {
            let (data, host) = memory_and_state(&mut caller)?;
            let name = String::from_utf8_lossy(&data[range(data.len(), name_ptr, name_len.min(128))?]).into_owned();
            if host.routes.len() < 64 {
                host.routes.push((index as u32 as usize, name));
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Lazy reads of the current event's fields.
fn link_fields(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "vigil",
        "field",
        |mut caller: Caller<'_, HostState>, index: i32, name_ptr: i32, name_len: i32, out_ptr: i32, out_cap: i32| {
            let (data, host) = memory_and_state(&mut caller)?;
            let name = &data[range(data.len(), name_ptr, name_len)?];
            let path = std::str::from_utf8(name).ok().and_then(|n| FieldPath::parse(n).ok());
            let event = host.picked.get(index as u32 as usize).and_then(|&i| host.batch.get(i as usize));
            let (Some(path), Some(event)) = (path, event) else { return Ok(-1) };
            let mut bytes = Vec::new();
            if !path.encode(event, &mut bytes) {
                return Ok(-1);
            }
            let out = range(data.len(), out_ptr, out_cap)?;
            let n = bytes.len().min(out.len());
            data[out.start..out.start + n].copy_from_slice(&bytes[..n]);
            Ok(bytes.len() as i32)
        },
    )?;
    Ok(())
}

/// Sliding windows and distinct counts over event time (`vigil_sdk::state`).
fn link_windows(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "vigil",
        "window_add",
        |mut caller: Caller<'_, HostState>, window_ms: i64, key_ptr: i32, key_len: i32, time_ms: i64, amount: i64| {
            let (data, host) = memory_and_state(&mut caller)?;
            let key = &data[range(data.len(), key_ptr, key_len)?];
            Ok(host.state.window_add(window(window_ms)?, key, time_ms, amount))
        },
    )?;
    linker.func_wrap(
        "vigil",
        "window_add_seq",
        |mut caller: Caller<'_, HostState>,
         window_ms: i64,
         key_ptr: i32,
         key_len: i32,
         time_ms: i64,
         amount: i64,
         seq: i64| {
            let (data, host) = memory_and_state(&mut caller)?;
            let key = &data[range(data.len(), key_ptr, key_len)?];
            Ok(host.state.window_add_seq(window(window_ms)?, key, time_ms, amount, seq))
        },
    )?;
    linker.func_wrap(
        "vigil",
        "window_seqs",
        |mut caller: Caller<'_, HostState>, window_ms: i64, key_ptr: i32, key_len: i32, out_ptr: i32, out_cap: i32| {
            let (data, host) = memory_and_state(&mut caller)?;
            let key = &data[range(data.len(), key_ptr, key_len)?];
            let seqs = host.state.window_seqs(window(window_ms)?, key);
            write_seqs(data, &seqs, out_ptr, out_cap)
        },
    )?;
    linker.func_wrap(
        "vigil",
        "distinct_add_seq",
        |mut caller: Caller<'_, HostState>,
         window_ms: i64,
         key_ptr: i32,
         key_len: i32,
         val_ptr: i32,
         val_len: i32,
         time_ms: i64,
         seq: i64| {
            let (data, host) = memory_and_state(&mut caller)?;
            let key = &data[range(data.len(), key_ptr, key_len)?];
            let value = &data[range(data.len(), val_ptr, val_len)?];
            Ok(host.state.distinct_add_seq(window(window_ms)?, key, value, time_ms, seq))
        },
    )?;
    linker.func_wrap(
        "vigil",
        "distinct_seqs",
        |mut caller: Caller<'_, HostState>, window_ms: i64, key_ptr: i32, key_len: i32, out_ptr: i32, out_cap: i32| {
            let (data, host) = memory_and_state(&mut caller)?;
            let key = &data[range(data.len(), key_ptr, key_len)?];
            let seqs = host.state.distinct_seqs(window(window_ms)?, key);
            write_seqs(data, &seqs, out_ptr, out_cap)
        },
    )?;
    linker.func_wrap(
        "vigil",
        "distinct_add",
        |mut caller: Caller<'_, HostState>,
         window_ms: i64,
         key_ptr: i32,
         key_len: i32,
         val_ptr: i32,
         val_len: i32,
         time_ms: i64| {
            let (data, host) = memory_and_state(&mut caller)?;
            let key = &data[range(data.len(), key_ptr, key_len)?];
            let value = &data[range(data.len(), val_ptr, val_len)?];
            Ok(host.state.distinct_add(window(window_ms)?, key, value, time_ms))
        },
    )?;
    Ok(())
}

/// Last-seen values and baselines (`vigil_sdk::state`).
fn link_memory(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "vigil",
        "last_seen_get",
        |mut caller: Caller<'_, HostState>, key_ptr: i32, key_len: i32, out_ptr: i32, out_cap: i32, time_ptr: i32| {
            let (data, host) = memory_and_state(&mut caller)?;
            let key = data[range(data.len(), key_ptr, key_len)?].to_vec();
            let out = range(data.len(), out_ptr, out_cap)?;
            let time_out = range(data.len(), time_ptr, 8)?;
            let state = &mut host.state;
            let Some((value, time)) = state.last_seen_get(&key) else { return Ok(-1) };
            let n = value.len().min(out.len());
            data[out.start..out.start + n].copy_from_slice(&value[..n]);
            data[time_out].copy_from_slice(&time.to_le_bytes());
            Ok(value.len() as i32)
        },
    )?;
    linker.func_wrap(
        "vigil",
        "last_seen_set",
        |mut caller: Caller<'_, HostState>, key_ptr: i32, key_len: i32, val_ptr: i32, val_len: i32, time_ms: i64| {
            let (data, host) = memory_and_state(&mut caller)?;
            let key = &data[range(data.len(), key_ptr, key_len)?];
            let value = &data[range(data.len(), val_ptr, val_len)?];
            host.state.last_seen_set(key, value, time_ms);
            Ok(())
        },
    )?;
    linker.func_wrap(
        "vigil",
        "baseline_observe",
        |mut caller: Caller<'_, HostState>, key_ptr: i32, key_len: i32, value: f64| {
            let (data, host) = memory_and_state(&mut caller)?;
            let key = &data[range(data.len(), key_ptr, key_len)?];
            if value.is_finite() {
                host.state.baseline_observe(key, value);
            }
            Ok(())
        },
    )?;
    linker.func_wrap(
        "vigil",
        "baseline_get",
        |mut caller: Caller<'_, HostState>, key_ptr: i32, key_len: i32, out_ptr: i32| {
            let (data, host) = memory_and_state(&mut caller)?;
            let key = data[range(data.len(), key_ptr, key_len)?].to_vec();
            let out = range(data.len(), out_ptr, 16)?;
            let stats = host.state.baseline_get(&key);
            data[out.start..out.start + 8].copy_from_slice(&stats.mean.to_le_bytes());
            data[out.start + 8..out.end].copy_from_slice(&stats.stddev.to_le_bytes());
            Ok(stats.count as i64)
        },
    )?;
    Ok(())
}

/// The names of every import of ABI 1.x (module `vigil`).
pub const IMPORTS: &[&str] = &[
    "log",
    "emit_alert",
    "field",
    "window_add",
    "window_add_seq",
    "window_seqs",
    "distinct_add",
    "distinct_add_seq",
    "distinct_seqs",
    "last_seen_get",
    "last_seen_set",
    "baseline_observe",
    "baseline_get",
    "route",
    "emit_decision",
    "in_list",
];

/// Parses and validates a decision emitted by a guest (ABI.md "Decision JSON"), with the
/// SDK's reader; a dedup key is cut to 512 characters, as alerts' are.
pub fn parse_decision(bytes: &[u8]) -> Option<EmittedDecision> {
    if bytes.len() > MAX_DECISION_BYTES {
        return None;
    }
    let mut d = vigil_sdk::Decision::from_json(std::str::from_utf8(bytes).ok()?).ok()?;
    d.dedup_key = d.dedup_key.map(|k| k.chars().take(512).collect());
    Some(d)
}

/// Parses and validates an alert emitted by a guest.
/// The guest sends the severity as text: `P1`..`P4` exactly (any other text drops the
/// alert); none (or `null`) is the manifest's default.
pub fn parse_alert(bytes: &[u8], default_severity: Severity) -> Option<EmittedAlert> {
    if bytes.len() > MAX_ALERT_BYTES {
        return None;
    }
    let Value::Object(obj) = serde_json::from_slice::<Value>(bytes).ok()? else { return None };
    let title = obj.get("title")?.as_str()?.chars().take(512).collect::<String>();
    if title.is_empty() {
        return None;
    }
    let severity = match obj.get("severity").and_then(Value::as_str) {
        None => default_severity,
        Some(s) => parse_severity(s)?,
    };
    let dedup_key =
        obj.get("dedup_key").and_then(Value::as_str).map_or_else(|| title.clone(), |s| s.chars().take(512).collect());
    let fields = obj.get("fields").filter(|f| f.is_object()).cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let event_seqs = obj
        .get("event_seqs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).take(MAX_ALERT_SEQS).collect())
        .unwrap_or_default();
    let actions = obj
        .get("actions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).take(32).map(str::to_owned).collect())
        .unwrap_or_default();
    Some(EmittedAlert { title, severity, dedup_key, fields, event_seqs, actions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_validated_with_defaults() {
        let a = parse_alert(br#"{"title":"Brute force","event_seqs":[3,4],"fields":{"ip":"1.2.3.4"}}"#, Severity::P2)
            .unwrap();
        assert_eq!((a.severity, a.dedup_key.as_str()), (Severity::P2, "Brute force"));
        assert_eq!(a.event_seqs, vec![3, 4]);
        let sev = |json: &[u8]| parse_alert(json, Severity::P2).map(|a| a.severity);
        assert_eq!(sev(br#"{"title":"x","severity":"P1"}"#), Some(Severity::P1));
        assert_eq!(sev(br#"{"title":"x","severity":null}"#), Some(Severity::P2));
        assert!(parse_alert(br#"{"title":""}"#, Severity::P2).is_none());
        assert!(parse_alert(br#"{"title":"x","severity":"P9"}"#, Severity::P2).is_none());
        assert!(parse_alert(br#"{"title":"x","severity":"p1"}"#, Severity::P2).is_none(), "exactly as written");
        assert!(parse_alert(b"not json", Severity::P2).is_none());
    }

    #[test]
    fn decisions_are_validated() {
        let d = parse_decision(
            br#"{"scope":"ip","value":"203.0.113.7","kind":"block","duration_ms":1800000,"reason":"r","dedup_key":"ip:x","event_seqs":[3]}"#,
        )
        .unwrap();
        assert_eq!(
            (d.scope, d.kind, d.duration_ms, d.event_seqs),
            (vigil_sdk::Scope::Ip, vigil_sdk::DecisionKind::Block, 1_800_000, vec![3])
        );
        for bad in [
            r#"{"scope":"planet","value":"x","kind":"block","duration_ms":1000,"reason":"r"}"#,
            r#"{"scope":"ip","value":"","kind":"block","duration_ms":1000,"reason":"r"}"#,
            r#"{"scope":"ip","value":"a
b","kind":"block","duration_ms":1000,"reason":"r"}"#,
            r#"{"scope":"ip","value":"x","kind":"ban","duration_ms":1000,"reason":"r"}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":999,"reason":"r"}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":1000,"reason":""}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":1000}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":1000,"reason":"r","dedup_key":5}"#,
            r#"[1]"#,
        ] {
            assert!(parse_decision(bad.as_bytes()).is_none(), "{bad}");
        }
        let long =
            format!(r#"{{"scope":"ip","value":"{}","kind":"block","duration_ms":1000,"reason":"r"}}"#, "v".repeat(257));
        assert!(parse_decision(long.as_bytes()).is_none());
    }
}
