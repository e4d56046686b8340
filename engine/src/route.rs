//! Routing and delivery, downstream of `alerts`: which receivers an alert goes to (Wasm
//! routing rules, else `[routing] default_receivers`), escalation policies, and the
//! outbox worker that delivers notifications (`receivers`) through a circuit breaker per
//! receiver (`breaker`), with retries, dead letters, storm control and the daily digest.
//!
//! A broken router never silences an alert: with no routing rule active, or when one
//! faults or names no receiver that exists, the alert goes to the default receivers.
//!
//! Submodules: `router`, `escalate` (policies), `outbox` (the worker), `storm`, `digest`
//! (daily digest and report) and `metrics` (Prometheus text).

pub mod breaker;
pub mod receivers;

mod digest;
mod escalate;
mod metrics;
mod outbox;
mod router;
mod storm;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::config::Config;
use receivers::Receiver;

pub use metrics::render_alert_metrics;
pub use outbox::Outbox;
pub use router::{POLICY_PREFIX, Router};

/// Routing and delivery counters, shared by the [`Router`] and the [`Outbox`] (for
/// `/metrics`).
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Alerts routed by a routing rule.
    pub routed: AtomicU64,
    /// Alerts sent to the default receivers (no routing rule, or it failed).
    pub fallback: AtomicU64,
    /// Notifications delivered.
    pub delivered: AtomicU64,
    /// Attempts that failed and will be retried.
    pub retried: AtomicU64,
    /// Notifications failed for good (4xx).
    pub failed: AtomicU64,
    /// Notifications dead-lettered.
    pub dead: AtomicU64,
    /// Notifications folded into storm summaries.
    pub folded: AtomicU64,
}

/// Resolves the configured receivers (secrets from the environment).
pub fn build_receivers(config: &Config) -> anyhow::Result<Arc<HashMap<String, Receiver>>> {
    let mut out = HashMap::new();
    for c in &config.receivers {
        let timeout = Duration::from_secs(config.outbox.timeout_secs.max(1));
        out.insert(c.name.clone(), Receiver::from_config(c, timeout)?);
    }
    Ok(Arc::new(out))
}
