//! The ABI layer: the `vigil` host imports of ABI.md behind safe functions.
//!
//! On `wasm32` these call the real imports (`abi/wasm.rs`); natively they call a stand-in
//! host (`abi/native.rs`) backed by [`crate::state`], which [`crate::testing`] installs, so
//! rules compile and unit-test on the build machine. [`crate::Event`] and
//! [`crate::Context`] are the only callers.

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native;
#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::{
    baseline_get, baseline_observe, distinct_add, distinct_add_seq, distinct_seqs, emit_alert, emit_decision, field,
    in_list, last_seen_get, last_seen_set, log, route, window_add, window_add_seq, window_seqs,
};
#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::{
    baseline_get, baseline_observe, distinct_add, distinct_add_seq, distinct_seqs, emit_alert, emit_decision, field,
    in_list, last_seen_get, last_seen_set, log, route, window_add, window_add_seq, window_seqs,
};
