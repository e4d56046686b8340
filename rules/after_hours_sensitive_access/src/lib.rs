//! `after_hours_sensitive_access`: sensitive data read outside business hours.
//!
//! Offered `category=data_access`; alerts (P2) when `details.sensitive` is true and the
//! event time falls outside business hours: `start_hour`..`end_hour` (08:00-18:00) on
//! `business_days` (mon-fri), in UTC shifted by `utc_offset_minutes` (0).

use vigil_sdk::time::{MINUTE_MS, UtcDateTime, Weekday};
use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription};

/// The rule.
pub struct AfterHoursSensitiveAccess {
    start_hour: u32,
    end_hour: u32,
    days: Vec<Weekday>,
    offset_ms: i64,
}

impl Rule for AfterHoursSensitiveAccess {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("Sensitive data accessed outside business hours (08:00-18:00 UTC, Monday-Friday)")
            .severity(Severity::P2)
            .mitre(["T1078", "T1530"])
            .fields(["details.sensitive", "user_id", "resource", "ip"])
            .subscribe(Subscription::category("data_access"))
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["start_hour", "end_hour", "business_days", "utc_offset_minutes"])?;
        let hour = |key, default| -> Result<u32, String> {
            let h = config.i64_or(key, default)?;
            u32::try_from(h).ok().filter(|h| *h <= 24).ok_or_else(|| format!("{key} must be within 0..=24"))
        };
        let (start_hour, end_hour) = (hour("start_hour", 8)?, hour("end_hour", 18)?);
        if start_hour >= end_hour {
            return Err("start_hour must be before end_hour".to_owned());
        }
        let days = config
            .strings_or("business_days", &["mon", "tue", "wed", "thu", "fri"])?
            .iter()
            .map(|d| Weekday::parse(d).ok_or_else(|| format!("unknown day {d:?} in business_days")))
            .collect::<Result<Vec<_>, _>>()?;
        let offset = config.i64_or("utc_offset_minutes", 0)?;
        if offset.abs() > 14 * 60 {
            return Err("utc_offset_minutes must be within -840..=840".to_owned());
        }
        Ok(AfterHoursSensitiveAccess { start_hour, end_hour, days, offset_ms: offset * MINUTE_MS })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        if ev.bool("details.sensitive") != Some(true) {
            return false;
        }
        let local = UtcDateTime::from_ms(ev.time_ms() + self.offset_ms);
        let business = self.days.contains(&local.weekday) && (self.start_hour..self.end_hour).contains(&local.hour);
        if business {
            return false;
        }
        let user = ev.user_id().unwrap_or("unknown");
        let when = format!(
            "{} {:04}-{:02}-{:02} {:02}:{:02}",
            local.weekday.as_str(),
            local.year,
            local.month,
            local.day,
            local.hour,
            local.minute
        );
        ctx.emit(
            Alert::new(format!("Sensitive data accessed after hours by {user} ({when})"))
                .severity(Severity::P2)
                .dedup_key(format!("user:{user}"))
                .field("user_id", user)
                .field("resource", ev.resource())
                .field("local_time", when)
                .field("ip", ev.ip())
                .action("Confirm with the user that the access was work they were asked to do")
                .action("Check the session for other unusual activity (new device, new location)"),
        );
        true
    }
}

vigil_sdk::export_rule!(AfterHoursSensitiveAccess);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};

    use super::*;

    fn access(at: &str, sensitive: bool) -> TestEvent {
        TestEvent::new("data_access", "read").user("alice").resource("/payroll").detail("sensitive", sensitive).at(at)
    }

    #[test]
    fn night_and_weekend_access_fire() {
        let mut h = Harness::<AfterHoursSensitiveAccess>::new();
        // 2024-03-04 is a Monday, 2024-03-09 a Saturday.
        let alerts = h.run([access("2024-03-04T18:00:00Z", true), access("2024-03-09T10:00:00Z", true)]);
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_eq!(alerts[0].severity, Some(Severity::P2));
        assert_eq!(alerts[0].field_value("local_time").and_then(|v| v.as_str()), Some("mon 2024-03-04 18:00"));
        assert_eq!(alerts[1].dedup_key.as_deref(), Some("user:alice"));
    }

    #[test]
    fn business_hours_and_non_sensitive_access_do_not_fire() {
        let mut h = Harness::<AfterHoursSensitiveAccess>::new();
        let events = [
            access("2024-03-04T08:00:00Z", true),
            access("2024-03-04T17:59:59Z", true),
            access("2024-03-08T12:00:00Z", true),
            access("2024-03-09T03:00:00Z", false),
            TestEvent::new("data_access", "read").user("bob").at("2024-03-09T03:00:00Z"),
        ];
        assert!(h.run(events).is_empty());
    }

    #[test]
    fn configured_hours_days_and_offset() {
        let config = r#"{"start_hour": 9, "end_hour": 17, "business_days": "mon,tue,wed,thu,fri,sat", "utc_offset_minutes": 60}"#;
        let mut h = Harness::<AfterHoursSensitiveAccess>::new().config(config);
        // Saturday 10:00 local (09:00 UTC) is business now; Monday 16:30 UTC is 17:30 local.
        assert!(h.run([access("2024-03-09T09:00:00Z", true)]).is_empty());
        assert_eq!(h.run([access("2024-03-04T16:30:00Z", true)]).len(), 1);
        let mut bad = Harness::<AfterHoursSensitiveAccess>::new().config(r#"{"business_days": "someday"}"#);
        assert!(bad.init().is_err());
    }
}
