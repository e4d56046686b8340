//! `[reports]`: the response-time SLAs per alert severity, the privileged users whose new
//! IPs and countries the security report lists, and how far back "new" looks (read by
//! `report`, the security report of `GET /v1/reports/security` and `vigil report`), and
//! `[[reports.schedule]]`: which reports are sent to which receivers, when
//! (`report::schedule`).

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
    /// `[[reports.schedule]]`: reports sent to receivers (at most [`MAX_SCHEDULES`]).
    pub schedule: Vec<ReportSchedule>,
}

/// `[[reports.schedule]]`: the security report of each completed `period`, sent to
/// `receivers` at `at` (UTC) on the day after a day, on `weekday` after a week, on the 1st
/// after a month.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReportSchedule {
    /// `day`, `week` or `month`.
    pub period: String,
    /// Receiver names (`webhook` of format `vigil`, `slack`, `pagerduty` or `email`).
    pub receivers: Vec<String>,
    /// `HH:MM`, UTC (default `06:00`).
    pub at: Option<String>,
    /// Weekly reports: the day they are sent, `mon` .. `sun` (default `mon`).
    pub weekday: Option<String>,
}

/// Most `[[reports.schedule]]` entries.
pub const MAX_SCHEDULES: usize = 20;

/// `mon` .. `sun` as days from Monday (0..6).
pub fn parse_weekday(text: &str) -> Option<u8> {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().position(|d| *d == text).map(|i| i as u8)
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
            schedule: Vec::new(),
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
        self.validate_schedule()
    }

    /// Each schedule names a period, a time, and receivers that exist and can carry a report.
    fn validate_schedule(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid { key: "reports.schedule", message });
        let schedules = &self.reports.schedule;
        if schedules.len() > MAX_SCHEDULES {
            return invalid(format!("at most {MAX_SCHEDULES} schedules"));
        }
        for (i, s) in schedules.iter().enumerate() {
            let which = format!("schedule {} ({:?})", i + 1, s.period.chars().take(20).collect::<String>());
            if !matches!(s.period.as_str(), "day" | "week" | "month") {
                return invalid(format!("{which}: `period` must be day, week or month"));
            }
            if let Some(at) = &s.at
                && super::parse_time_of_day(at).is_none()
            {
                return invalid(format!(
                    "{which}: `at` must be HH:MM (UTC), got {:?}",
                    at.chars().take(20).collect::<String>()
                ));
            }
            match (&s.weekday, s.period.as_str()) {
                (Some(w), "week") if parse_weekday(w).is_none() => {
                    return invalid(format!("{which}: `weekday` must be mon, tue, wed, thu, fri, sat or sun"));
                }
                (Some(_), "day" | "month") => {
                    return invalid(format!("{which}: `weekday` applies to weekly reports only"));
                }
                _ => {}
            }
            if s.receivers.is_empty() {
                return invalid(format!("{which}: `receivers` must name at least one receiver"));
            }
            for name in &s.receivers {
                let Some(r) = self.receivers.iter().find(|r| &r.name == name) else {
                    return invalid(format!(
                        "{which}: no receiver named {:?}",
                        name.chars().take(64).collect::<String>()
                    ));
                };
                let fits = match r.kind.as_str() {
                    "slack" | "pagerduty" | "email" => true,
                    "webhook" => r.format.as_deref().is_none_or(|f| f == "vigil"),
                    _ => false,
                };
                if !fits {
                    return invalid(format!(
                        "{which}: receiver `{name}` cannot carry a report: use a webhook of format \"vigil\", a slack, \
                         pagerduty or email receiver (a digest carries the daily report already; Alertmanager and \
                         OCSF formats have no report)"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ReceiverConfig;

    fn with(schedule: ReportSchedule) -> Result<(), ConfigError> {
        let receiver = |name: &str, kind: &str, format: Option<&str>| ReceiverConfig {
            name: name.into(),
            kind: kind.into(),
            format: format.map(str::to_owned),
            ..Default::default()
        };
        let mut c = Config {
            receivers: vec![
                receiver("hook", "webhook", None),
                receiver("am", "webhook", Some("alertmanager")),
                receiver("digest", "digest", None),
                receiver("mail", "email", None),
            ],
            ..Config::default()
        };
        c.reports.schedule = vec![schedule];
        c.validate_schedule()
    }

    fn message(r: Result<(), ConfigError>) -> String {
        match r {
            Err(ConfigError::Invalid { key: "reports.schedule", message }) => message,
            other => panic!("expected a reports.schedule error, got {other:?}"),
        }
    }

    #[test]
    fn a_schedule_names_a_period_a_time_and_receivers_that_can_carry_a_report() {
        let ok = |period: &str, weekday: Option<&str>| ReportSchedule {
            period: period.into(),
            receivers: vec!["hook".into(), "mail".into()],
            at: Some("06:30".into()),
            weekday: weekday.map(str::to_owned),
        };
        assert!(with(ok("day", None)).is_ok());
        assert!(with(ok("week", Some("fri"))).is_ok());
        assert!(with(ok("month", None)).is_ok());
        assert!(message(with(ok("year", None))).contains("`period` must be day, week or month"));
        assert!(message(with(ok("day", Some("mon")))).contains("weekly reports only"));
        assert!(message(with(ok("week", Some("monday")))).contains("`weekday` must be mon"));
        let bad_time = ReportSchedule { at: Some("25:00".into()), ..ok("day", None) };
        assert!(message(with(bad_time)).contains("`at` must be HH:MM"));
        let none = ReportSchedule { receivers: vec![], ..ok("day", None) };
        assert!(message(with(none)).contains("at least one receiver"));
        let unknown = ReportSchedule { receivers: vec!["pager".into()], ..ok("day", None) };
        assert!(message(with(unknown)).contains("no receiver named \"pager\""));
        for name in ["am", "digest"] {
            let unfit = ReportSchedule { receivers: vec![name.into()], ..ok("day", None) };
            assert!(message(with(unfit)).contains(&format!("receiver `{name}` cannot carry a report")));
        }
    }
}
