//! `[reports]`: the response-time SLAs per alert severity, the privileged users whose new
//! IPs and countries the security report lists, and how far back "new" looks (read by
//! `report`, the security report of `GET /v1/reports/security` and `vigil report`).

use serde::Deserialize;

use super::{Config, ConfigError};

/// `[reports]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// Time to first response (ack, or resolve) of a P1 alert, seconds (default 900).
    pub sla_p1_secs: u64,
    /// Of a P2 alert (default 3600).
    pub sla_p2_secs: u64,
    /// Of a P3 alert (default 14400).
    pub sla_p3_secs: u64,
    /// Of a P4 alert (default 86400).
    pub sla_p4_secs: u64,
    /// User ids whose IPs and countries not seen in the `baseline_days` before a period are
    /// listed by its report (at most 100).
    pub privileged_users: Vec<String>,
    /// How many days before a period "new" looks back (1 to 366, default 30).
    pub baseline_days: u32,
    /// How many top IPs, users and actions a report lists (1 to 100, default 10).
    pub top: u32,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self {
            sla_p1_secs: 900,
            sla_p2_secs: 3600,
            sla_p3_secs: 14_400,
            sla_p4_secs: 86_400,
            privileged_users: Vec::new(),
            baseline_days: 30,
            top: 10,
        }
    }
}

/// Most users `privileged_users` may name.
pub const MAX_PRIVILEGED_USERS: usize = 100;

impl ReportsConfig {
    /// The SLAs of P1..P4, ms.
    pub fn sla_ms(&self) -> [i64; 4] {
        [self.sla_p1_secs, self.sla_p2_secs, self.sla_p3_secs, self.sla_p4_secs]
            .map(|s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX))
    }
}

impl Config {
    pub(super) fn validate_reports(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| Err(ConfigError::Invalid { key, message: message.into() });
        let r = &self.reports;
        let slas = [
            ("reports.sla_p1_secs", r.sla_p1_secs),
            ("reports.sla_p2_secs", r.sla_p2_secs),
            ("reports.sla_p3_secs", r.sla_p3_secs),
            ("reports.sla_p4_secs", r.sla_p4_secs),
        ];
        for (key, secs) in slas {
            if !(1..=31 * 86_400).contains(&secs) {
                return invalid(key, "must be between 1 and 2678400 (31 days)");
            }
        }
        if r.privileged_users.len() > MAX_PRIVILEGED_USERS {
            return invalid("reports.privileged_users", "must name at most 100 users");
        }
        if r.privileged_users.iter().any(|u| u.is_empty() || u.len() > 256 || u.contains('\0')) {
            return invalid("reports.privileged_users", "each user id must be 1 to 256 bytes, without NUL");
        }
        if !(1..=366).contains(&r.baseline_days) {
            return invalid("reports.baseline_days", "must be between 1 and 366");
        }
        if !(1..=100).contains(&r.top) {
            return invalid("reports.top", "must be between 1 and 100");
        }
        Ok(())
    }
}
