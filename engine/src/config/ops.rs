//! The operations sections of the configuration: `[metrics]` (how `GET /metrics` reads the
//! database and whether it needs a key) and `[audit]` (how reads of the log become
//! `log_accessed` chain events). Plain data, read by `api::ops` and `ledger::access`.

use serde::Deserialize;

use super::{Config, ConfigError};

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// How long the database figures of `/metrics` (alert and notification counts) are
    /// reused, seconds: a flood of scrapes makes at most one read of the database per
    /// interval (0: every scrape reads, one at a time).
    pub cache_secs: u64,
    /// `/metrics` answers only a request with a valid key of the `read` role (401 / 403
    /// otherwise); off by default, as Prometheus scrapes without one.
    pub require_key: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { cache_secs: 5, require_key: false }
    }
}

/// `[audit]`: reads of the log by a key (queries, stats, exports, verifications) are
/// written to the chain as `audit` / `log_accessed` events, one per key per window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// A key's reads are gathered for this long from its first read, then written as one
    /// event, seconds (1 to 60).
    pub access_window_secs: u64,
    /// How often closed windows are written, milliseconds (100 to 60000).
    pub access_flush_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { access_window_secs: 60, access_flush_ms: 5000 }
    }
}

impl Config {
    pub(super) fn validate_ops(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| Err(ConfigError::Invalid { key, message: message.into() });
        if self.metrics.cache_secs > 3600 {
            return invalid("metrics.cache_secs", "must be at most 3600");
        }
        if !(1..=60).contains(&self.audit.access_window_secs) {
            return invalid("audit.access_window_secs", "must be between 1 and 60");
        }
        if !(100..=60_000).contains(&self.audit.access_flush_ms) {
            return invalid("audit.access_flush_ms", "must be between 100 and 60000");
        }
        if self.integrity.exclusive_verify_events < 0 {
            return invalid("integrity.exclusive_verify_events", "must not be negative");
        }
        Ok(())
    }
}
