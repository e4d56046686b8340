//! The real host imports (module `vigil`, ABI.md "Imports"), wrapped in safe functions.
//!
//! Every pointer handed to the host points into a live Rust buffer of the stated length;
//! `usize` and pointers are `i32` on `wasm32`, matching the ABI signatures.
#![allow(unsafe_code)]

use crate::state::BaselineStats;

#[link(wasm_import_module = "vigil")]
unsafe extern "C" {
    #[link_name = "log"]
    fn host_log(level: i32, ptr: *const u8, len: usize);
    #[link_name = "emit_alert"]
    fn host_emit_alert(ptr: *const u8, len: usize) -> i32;
    #[link_name = "emit_decision"]
    fn host_emit_decision(ptr: *const u8, len: usize) -> i32;
    #[link_name = "field"]
    fn host_field(event_index: i32, name_ptr: *const u8, name_len: usize, out_ptr: *mut u8, out_cap: usize) -> i32;
    #[link_name = "window_add"]
    fn host_window_add(window_ms: i64, key_ptr: *const u8, key_len: usize, time_ms: i64, amount: i64) -> i64;
    #[link_name = "window_add_seq"]
    fn host_window_add_seq(
        window_ms: i64,
        key_ptr: *const u8,
        key_len: usize,
        time_ms: i64,
        amount: i64,
        seq: i64,
    ) -> i64;
    #[link_name = "window_seqs"]
    fn host_window_seqs(window_ms: i64, key_ptr: *const u8, key_len: usize, out_ptr: *mut i64, out_cap: usize) -> i32;
    #[link_name = "distinct_add_seq"]
    fn host_distinct_add_seq(
        window_ms: i64,
        key_ptr: *const u8,
        key_len: usize,
        val_ptr: *const u8,
        val_len: usize,
        time_ms: i64,
        seq: i64,
    ) -> i64;
    #[link_name = "distinct_seqs"]
    fn host_distinct_seqs(window_ms: i64, key_ptr: *const u8, key_len: usize, out_ptr: *mut i64, out_cap: usize)
    -> i32;
    #[link_name = "distinct_add"]
    fn host_distinct_add(
        window_ms: i64,
        key_ptr: *const u8,
        key_len: usize,
        val_ptr: *const u8,
        val_len: usize,
        time_ms: i64,
    ) -> i64;
    #[link_name = "last_seen_get"]
    fn host_last_seen_get(
        key_ptr: *const u8,
        key_len: usize,
        out_ptr: *mut u8,
        out_cap: usize,
        out_time_ptr: *mut i64,
    ) -> i32;
    #[link_name = "last_seen_set"]
    fn host_last_seen_set(key_ptr: *const u8, key_len: usize, val_ptr: *const u8, val_len: usize, time_ms: i64);
    #[link_name = "baseline_observe"]
    fn host_baseline_observe(key_ptr: *const u8, key_len: usize, value: f64);
    #[link_name = "baseline_get"]
    fn host_baseline_get(key_ptr: *const u8, key_len: usize, out_ptr: *mut f64) -> i64;
    #[link_name = "route"]
    fn host_route(event_index: i32, name_ptr: *const u8, name_len: usize);
    #[link_name = "in_list"]
    fn host_in_list(name_ptr: *const u8, name_len: usize, val_ptr: *const u8, val_len: usize) -> i32;
}

/// First buffer size for values read back from the host (on the stack); one retry with
/// the exact size when the value is longer.
const FIRST_READ: usize = 256;

/// Calls `read(out_ptr, out_cap)` (returning the full length, or < 0 for none) until the
/// buffer was big enough (at most twice). The first read goes to a stack buffer, so a
/// short value costs one allocation of its own size.
fn read_value(mut read: impl FnMut(*mut u8, usize) -> i32) -> Option<Vec<u8>> {
    let mut first = [0u8; FIRST_READ];
    let n = usize::try_from(read(first.as_mut_ptr(), FIRST_READ)).ok()?;
    if n <= FIRST_READ {
        return Some(first[..n].to_vec());
    }
    let mut buf = vec![0u8; n];
    let m = usize::try_from(read(buf.as_mut_ptr(), n)).ok()?;
    if m > n {
        return None;
    }
    buf.truncate(m);
    Some(buf)
}

pub(crate) fn log(level: i32, msg: &[u8]) {
    // SAFETY: msg is a live slice of msg.len() bytes.
    unsafe { host_log(level, msg.as_ptr(), msg.len()) }
}

pub(crate) fn emit_alert(json: &[u8]) -> i32 {
    // SAFETY: json is a live slice; the host copies it before returning.
    unsafe { host_emit_alert(json.as_ptr(), json.len()) }
}

pub(crate) fn emit_decision(json: &[u8]) -> i32 {
    // SAFETY: json is a live slice; the host copies it before returning.
    unsafe { host_emit_decision(json.as_ptr(), json.len()) }
}

pub(crate) fn field(event_index: u32, name: &str) -> Option<Vec<u8>> {
    // SAFETY: name is live; out points to a live buffer of out_cap bytes.
    read_value(|out, cap| unsafe { host_field(event_index as i32, name.as_ptr(), name.len(), out, cap) })
}

pub(crate) fn window_add(window_ms: i64, key: &[u8], time_ms: i64, amount: i64) -> i64 {
    // SAFETY: key is a live slice.
    unsafe { host_window_add(window_ms, key.as_ptr(), key.len(), time_ms, amount) }
}

pub(crate) fn window_add_seq(window_ms: i64, key: &[u8], time_ms: i64, amount: i64, seq: i64) -> i64 {
    // SAFETY: key is a live slice.
    unsafe { host_window_add_seq(window_ms, key.as_ptr(), key.len(), time_ms, amount, seq) }
}

pub(crate) fn window_seqs(window_ms: i64, key: &[u8]) -> Vec<i64> {
    let mut out = vec![0i64; crate::state::MAX_WINDOW_SEQS];
    // SAFETY: key is live; out is a live buffer of out.len() i64s.
    let n = unsafe { host_window_seqs(window_ms, key.as_ptr(), key.len(), out.as_mut_ptr(), out.len()) };
    out.truncate(n.clamp(0, out.len() as i32) as usize);
    out
}

pub(crate) fn distinct_add_seq(window_ms: i64, key: &[u8], value: &[u8], time_ms: i64, seq: i64) -> i64 {
    // SAFETY: key and value are live slices.
    unsafe { host_distinct_add_seq(window_ms, key.as_ptr(), key.len(), value.as_ptr(), value.len(), time_ms, seq) }
}

pub(crate) fn distinct_seqs(window_ms: i64, key: &[u8]) -> Vec<i64> {
    let mut out = vec![0i64; crate::state::MAX_WINDOW_SEQS];
    // SAFETY: key is live; out is a live buffer of out.len() i64s.
    let n = unsafe { host_distinct_seqs(window_ms, key.as_ptr(), key.len(), out.as_mut_ptr(), out.len()) };
    out.truncate(n.clamp(0, out.len() as i32) as usize);
    out
}

pub(crate) fn distinct_add(window_ms: i64, key: &[u8], value: &[u8], time_ms: i64) -> i64 {
    // SAFETY: key and value are live slices.
    unsafe { host_distinct_add(window_ms, key.as_ptr(), key.len(), value.as_ptr(), value.len(), time_ms) }
}

pub(crate) fn last_seen_get(key: &[u8]) -> Option<(Vec<u8>, i64)> {
    let mut time_ms = 0i64;
    // SAFETY: key is live; out points to a live buffer of cap bytes; time_ms is a live i64.
    let value = read_value(|out, cap| unsafe { host_last_seen_get(key.as_ptr(), key.len(), out, cap, &mut time_ms) })?;
    Some((value, time_ms))
}

pub(crate) fn last_seen_set(key: &[u8], value: &[u8], time_ms: i64) {
    // SAFETY: key and value are live slices.
    unsafe { host_last_seen_set(key.as_ptr(), key.len(), value.as_ptr(), value.len(), time_ms) }
}

pub(crate) fn baseline_observe(key: &[u8], value: f64) {
    // SAFETY: key is a live slice.
    unsafe { host_baseline_observe(key.as_ptr(), key.len(), value) }
}

pub(crate) fn baseline_get(key: &[u8]) -> BaselineStats {
    let mut out = [0f64; 2];
    // SAFETY: key is live; out is a live, aligned [f64; 2] for the host's two f64 writes.
    let count = unsafe { host_baseline_get(key.as_ptr(), key.len(), out.as_mut_ptr()) };
    BaselineStats { count: u64::try_from(count).unwrap_or(0), mean: out[0], stddev: out[1] }
}

pub(crate) fn route(event_index: u32, receiver: &str) {
    // SAFETY: receiver is a live str.
    unsafe { host_route(event_index as i32, receiver.as_ptr(), receiver.len()) }
}

pub(crate) fn in_list(name: &str, value: &str) -> i32 {
    // SAFETY: name and value are live strs.
    unsafe { host_in_list(name.as_ptr(), name.len(), value.as_ptr(), value.len()) }
}
