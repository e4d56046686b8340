//! Host-owned rule state: the one implementation of its semantics, in plain std Rust.
//!
//! The host keeps one [`StateStore`] per rule name (surviving hot reloads) and serves the
//! state imports of ABI.md from it one-to-one; [`crate::testing`] serves the same imports
//! from the same code, so a native test and a deployed rule agree exactly. Time is always
//! the event time passed in, never the wall clock.

mod baseline;
mod distinct;
mod last_seen;
mod store;
mod window;

pub use baseline::{Baseline, BaselineStats};
pub use distinct::{DEFAULT_MAX_DISTINCT_VALUES, DistinctSet};
pub use last_seen::LastSeen;
pub use store::{MAX_KEY_BYTES, StateLimits, StateStore, normalize_key};
pub use window::{BUCKETS, MAX_WINDOW_SEQS, WindowCounter};
