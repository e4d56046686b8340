//! `bulk_data_access`: one user reading too many records within an hour.
//!
//! Sums `details.record_count` (1 when absent or unreadable) of `category=data_access`
//! events per `user_id` over a 1-hour sliding window; alerts (P1) when the sum crosses
//! `threshold` (1000).

use vigil_sdk::time::HOUR_MS;
use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription};

const WINDOW_MS: i64 = HOUR_MS;

/// The rule.
pub struct BulkDataAccess {
    threshold: i64,
}

impl Rule for BulkDataAccess {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("One user reads more than 1000 records within an hour")
            .severity(Severity::P1)
            .mitre(["T1530", "T1213"])
            .fields(["user_id", "details.record_count", "resource", "ip"])
            .subscribe(Subscription::category("data_access"))
            .windows_ms([WINDOW_MS])
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["threshold"])?;
        let threshold = config.i64_or("threshold", 1000)?;
        if threshold < 0 {
            return Err("threshold must not be negative".to_owned());
        }
        Ok(BulkDataAccess { threshold })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let Some(user) = ev.user_id().filter(|u| !u.is_empty()) else { return false };
        let records = ev.i64("details.record_count").unwrap_or(1).max(0);
        let key = format!("user:{user}");
        let total = ctx.window(WINDOW_MS).add(&key, records);
        // Fire when this event takes the sum across the threshold.
        if total > self.threshold && total - records <= self.threshold {
            ctx.emit(
                Alert::new(format!("Bulk data access: {user} read {total} records within an hour"))
                    .severity(Severity::P1)
                    .dedup_key(key.as_str())
                    .event_seqs(ctx.window(WINDOW_MS).seqs(&key))
                    .field("user_id", user)
                    .field("records", total)
                    .field("window", "1h")
                    .field("last_resource", ev.resource())
                    .field("ip", ev.ip())
                    .action("Confirm with the user or their manager that the export was expected")
                    .action("Check where the data went (downloads, API clients, external shares)")
                    .action("Suspend the session if the access is not explained"),
            );
        }
        true
    }
}

vigil_sdk::export_rule!(BulkDataAccess);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};
    use vigil_sdk::time::MINUTE_MS;

    use super::*;

    fn read(user: &str, records: Option<i64>, t: i64) -> TestEvent {
        let ev = TestEvent::new("data_access", "read").user(user).resource("/customers").at_ms(t);
        match records {
            Some(n) => ev.detail("record_count", n),
            None => ev,
        }
    }

    #[test]
    fn crossing_one_thousand_records_fires_once() {
        let mut h = Harness::<BulkDataAccess>::new();
        let alerts = h.run((0..5).map(|i| read("alice", Some(300), i * MINUTE_MS)));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].severity, Some(Severity::P1));
        assert_eq!(alerts[0].field_value("records").and_then(|v| v.as_i64()), Some(1200));
        assert_eq!(alerts[0].event_seqs, [1, 2, 3, 4], "every read it summed");
    }

    #[test]
    fn exactly_one_thousand_does_not_fire_and_one_more_does() {
        let mut h = Harness::<BulkDataAccess>::new();
        assert!(h.run([read("bob", Some(600), 0), read("bob", Some(400), 1000)]).is_empty());
        assert_eq!(h.run([read("bob", None, 2000)]).len(), 1, "absent record_count counts 1");
    }

    #[test]
    fn reads_spread_over_more_than_an_hour_do_not_fire() {
        let mut h = Harness::<BulkDataAccess>::new();
        assert!(h.run((0..4).map(|i| read("carol", Some(400), i * 40 * MINUTE_MS))).is_empty());
    }

    #[test]
    fn other_categories_and_users_are_separate() {
        let mut h = Harness::<BulkDataAccess>::new();
        let login = TestEvent::new("authentication", "login_success").user("dave").detail("record_count", 5000);
        assert!(!h.step(login).offered);
        assert!(h.run([read("dave", Some(800), 0), read("erin", Some(800), 1)]).is_empty());
    }
}
