//! The native stand-in for the host imports: a thread-local host over [`crate::state`].
//!
//! [`crate::testing::Harness`] swaps its own [`NativeHost`] in for each batch, so every
//! harness is isolated; outside a harness the calls hit a default host and are harmless.
//! Behaviour follows ABI.md (log truncation, alert and decision validation, `field`
//! encoding). Decisions are only validated: every valid one is accepted (no rate limit,
//! no scope or duration policy, no cap on active decisions).

use std::cell::RefCell;

use crate::alert::{Alert, MAX_ALERT_BYTES};
use crate::decision::Decision;
use crate::json::Value;
use crate::record::field_text;
use crate::severity::Severity;
use crate::state::{BaselineStats, StateStore};

/// Longest log message kept, as on the host.
const MAX_LOG_BYTES: usize = 1024;

/// What the host would hold for one rule while it runs a batch.
#[derive(Debug, Default)]
pub(crate) struct NativeHost {
    pub(crate) state: StateStore,
    /// The events (or alert records) of the current batch, for lazy `field` reads.
    pub(crate) batch: Vec<Value>,
    /// Severity given to alerts that do not set one.
    pub(crate) default_severity: Option<Severity>,
    pub(crate) alerts: Vec<Alert>,
    pub(crate) invalid_alerts: Vec<String>,
    /// Decisions accepted (all the valid ones).
    pub(crate) decisions: Vec<Decision>,
    /// Decisions refused as invalid, with the reason.
    pub(crate) invalid_decisions: Vec<String>,
    pub(crate) logs: Vec<(i32, String)>,
    /// `(event index in the batch, receiver)`.
    pub(crate) routes: Vec<(u32, String)>,
    pub(crate) lazy_reads: u64,
    /// The server's `[[lists]]` as the harness was given them: name -> entries.
    pub(crate) lists: std::collections::HashMap<String, crate::lists::TestList>,
}

thread_local! {
    static HOST: RefCell<NativeHost> = RefCell::new(NativeHost::default());
}

/// Exchanges `host` with the thread's current host.
pub(crate) fn swap_host(host: &mut NativeHost) {
    HOST.with(|h| std::mem::swap(&mut *h.borrow_mut(), host));
}

fn with<R>(f: impl FnOnce(&mut NativeHost) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

pub(crate) fn log(level: i32, msg: &[u8]) {
    let mut end = msg.len().min(MAX_LOG_BYTES);
    while end > 0 && end < msg.len() && (msg[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    let text = String::from_utf8_lossy(&msg[..end]).into_owned();
    eprintln!("[rule log level {level}] {text}");
    with(|h| h.logs.push((level, text)));
}

pub(crate) fn emit_alert(json: &[u8]) -> i32 {
    let parsed = std::str::from_utf8(json).map_err(|e| e.to_string()).and_then(|text| {
        if text.len() > MAX_ALERT_BYTES {
            return Err(format!("alert of {} bytes, at most {MAX_ALERT_BYTES}", text.len()));
        }
        Alert::from_json(text).map_err(|e| e.to_string())
    });
    with(|h| match parsed {
        Ok(mut alert) => {
            alert.severity = alert.severity.or(h.default_severity);
            if alert.dedup_key.is_none() {
                alert.dedup_key = Some(alert.title.clone());
            }
            h.alerts.push(alert);
            0
        }
        Err(e) => {
            h.invalid_alerts.push(e);
            2
        }
    })
}

/// Validates with [`Decision::from_json`] (as the host does): 0 when valid, 2 when not.
pub(crate) fn emit_decision(json: &[u8]) -> i32 {
    let parsed = std::str::from_utf8(json)
        .map_err(|e| e.to_string())
        .and_then(|t| Decision::from_json(t).map_err(|e| e.to_string()));
    with(|h| match parsed {
        Ok(decision) => {
            h.decisions.push(decision);
            0
        }
        Err(e) => {
            h.invalid_decisions.push(e);
            2
        }
    })
}

pub(crate) fn field(event_index: u32, name: &str) -> Option<Vec<u8>> {
    with(|h| {
        h.lazy_reads += 1;
        let event = h.batch.get(event_index as usize)?;
        field_text(event, name).map(|t| t.as_bytes().to_vec())
    })
}

pub(crate) fn window_add(window_ms: i64, key: &[u8], time_ms: i64, amount: i64) -> i64 {
    with(|h| h.state.window_add(window_ms, key, time_ms, amount))
}

pub(crate) fn window_add_seq(window_ms: i64, key: &[u8], time_ms: i64, amount: i64, seq: i64) -> i64 {
    with(|h| h.state.window_add_seq(window_ms, key, time_ms, amount, seq))
}

pub(crate) fn window_seqs(window_ms: i64, key: &[u8]) -> Vec<i64> {
    with(|h| h.state.window_seqs(window_ms, key))
}

pub(crate) fn distinct_add_seq(window_ms: i64, key: &[u8], value: &[u8], time_ms: i64, seq: i64) -> i64 {
    with(|h| h.state.distinct_add_seq(window_ms, key, value, time_ms, seq))
}

pub(crate) fn distinct_seqs(window_ms: i64, key: &[u8]) -> Vec<i64> {
    with(|h| h.state.distinct_seqs(window_ms, key))
}

pub(crate) fn distinct_add(window_ms: i64, key: &[u8], value: &[u8], time_ms: i64) -> i64 {
    with(|h| h.state.distinct_add(window_ms, key, value, time_ms))
}

pub(crate) fn last_seen_get(key: &[u8]) -> Option<(Vec<u8>, i64)> {
    with(|h| h.state.last_seen_get(key).map(|(v, t)| (v.to_vec(), t)))
}

pub(crate) fn last_seen_set(key: &[u8], value: &[u8], time_ms: i64) {
    with(|h| h.state.last_seen_set(key, value, time_ms));
}

pub(crate) fn baseline_observe(key: &[u8], value: f64) {
    with(|h| h.state.baseline_observe(key, value));
}

pub(crate) fn baseline_get(key: &[u8]) -> BaselineStats {
    with(|h| h.state.baseline_get(key))
}

pub(crate) fn route(event_index: u32, receiver: &str) {
    with(|h| h.routes.push((event_index, receiver.to_owned())));
}

pub(crate) fn in_list(name: &str, value: &str) -> i32 {
    with(|h| match h.lists.get(name) {
        None => -1,
        Some(list) => i32::from(list.contains(value)),
    })
}
