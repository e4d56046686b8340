//! `brute_force`: many failed logins from one IP.
//!
//! Counts `action=login_failed` per `ip` in a 5-minute and a 1-hour sliding window and
//! alerts once when each count crosses its threshold: more than `threshold_5m` (5) in
//! 5 minutes is P2, more than `threshold_1h` (20) in an hour is P1.

use vigil_sdk::time::{HOUR_MS, MINUTE_MS};
use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription};

const SHORT_MS: i64 = 5 * MINUTE_MS;
const LONG_MS: i64 = HOUR_MS;

/// The rule; thresholds from the configuration.
pub struct BruteForce {
    threshold_5m: i64,
    threshold_1h: i64,
    /// The state key, rebuilt per event in place (no allocation per event).
    key: String,
}

impl Rule for BruteForce {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("Failed logins from one IP: more than 5 in 5 minutes (P2), more than 20 in an hour (P1)")
            .severity(Severity::P2)
            .mitre(["T1110", "T1110.001"])
            .fields(["ip", "user_id"])
            .subscribe(Subscription::action("login_failed"))
            .windows_ms([SHORT_MS, LONG_MS])
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["threshold_5m", "threshold_1h"])?;
        let threshold_5m = config.i64_or("threshold_5m", 5)?;
        let threshold_1h = config.i64_or("threshold_1h", 20)?;
        if threshold_5m < 0 || threshold_1h < 0 {
            return Err("thresholds must not be negative".to_owned());
        }
        Ok(BruteForce { threshold_5m, threshold_1h, key: String::with_capacity(64) })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let Some(ip) = ev.ip() else { return false };
        self.key.clear();
        self.key.push_str("ip:");
        self.key.push_str(ip);
        let key = self.key.as_str();
        let short = ctx.window(SHORT_MS).add(key, 1);
        let long = ctx.window(LONG_MS).add(key, 1);
        // Each failure adds one, so a count passes through threshold + 1 exactly once per
        // crossing: fire then, not on every later failure.
        if short == self.threshold_5m + 1 {
            let counted = ctx.window(SHORT_MS).seqs(key);
            ctx.emit(alert(ip, ev, short, "5 minutes").severity(Severity::P2).dedup_key(key).event_seqs(counted));
        }
        if long == self.threshold_1h + 1 {
            let counted = ctx.window(LONG_MS).seqs(key);
            ctx.emit(
                alert(ip, ev, long, "1 hour").severity(Severity::P1).dedup_key(format!("{key}:1h")).event_seqs(counted),
            );
        }
        true
    }
}

fn alert(ip: &str, ev: &Event<'_>, count: i64, window: &str) -> Alert {
    Alert::new(format!("Brute force: {count} failed logins from {ip} within {window}"))
        .field("ip", ip)
        .field("failed_logins", count)
        .field("window", window)
        .field("last_user_id", ev.user_id())
        .action("Block or rate-limit the IP at the edge")
        .action("Check for a successful login from this IP after the failures")
        .action("Review the targeted accounts and enforce MFA")
}

vigil_sdk::export_rule!(BruteForce);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};

    use super::*;

    fn failure(ip: &str, t: i64) -> TestEvent {
        TestEvent::new("authentication", "login_failed").outcome("failure").ip(ip).user("u1").at_ms(t)
    }

    #[test]
    fn six_failures_in_five_minutes_fire_once() {
        let mut h = Harness::<BruteForce>::new();
        let alerts = h.run((0..8).map(|i| failure("1.2.3.4", i * 10_000)));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(a.severity, Some(Severity::P2));
        assert_eq!(a.dedup_key.as_deref(), Some("ip:1.2.3.4"));
        assert_eq!(a.event_seqs, [1, 2, 3, 4, 5, 6], "every failure it counted");
        assert_eq!(a.field_value("failed_logins").and_then(|v| v.as_i64()), Some(6));
    }

    #[test]
    fn exactly_five_failures_do_not_fire() {
        let mut h = Harness::<BruteForce>::new();
        assert!(h.run((0..5).map(|i| failure("1.2.3.4", i * 1000))).is_empty());
    }

    #[test]
    fn six_failures_over_ten_minutes_do_not_fire() {
        let mut h = Harness::<BruteForce>::new();
        assert!(h.run((0..6).map(|i| failure("1.2.3.4", i * 2 * MINUTE_MS))).is_empty());
    }

    #[test]
    fn failures_from_different_ips_are_counted_apart() {
        let mut h = Harness::<BruteForce>::new();
        let events = (0..6).flat_map(|i| [failure("10.0.0.1", i * 1000), failure("10.0.0.2", i * 1000 + 1)]);
        let alerts = h.run(events.take(11));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].field_value("ip").and_then(|v| v.as_str()), Some("10.0.0.1"));
    }

    #[test]
    fn twenty_one_failures_in_an_hour_escalate_to_p1() {
        let mut h = Harness::<BruteForce>::new();
        // Spread over 50 minutes: at most 3 per 5 minutes, 21 in the hour.
        let alerts = h.run((0..21).map(|i| failure("1.2.3.4", i * 150_000)));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].severity, Some(Severity::P1));
        assert_eq!(alerts[0].dedup_key.as_deref(), Some("ip:1.2.3.4:1h"));
        let mut h = Harness::<BruteForce>::new();
        assert!(h.run((0..20).map(|i| failure("1.2.3.4", i * 150_000))).is_empty());
    }

    #[test]
    fn only_failed_logins_are_offered_and_config_is_checked() {
        let mut h = Harness::<BruteForce>::new().config(r#"{"threshold_5m": 1}"#);
        let ok = TestEvent::new("authentication", "login_success").ip("1.2.3.4");
        assert!(!h.step(ok).offered);
        assert!(h.run([failure("1.2.3.4", 0), failure("1.2.3.4", 1)]).len() == 1);
        let mut bad = Harness::<BruteForce>::new().config(r#"{"treshold": 1}"#);
        assert!(bad.init().unwrap_err().contains("treshold"));
    }
}
