//! `brute_force`: many failed logins from one IP.
//!
//! Counts `action=login_failed` per `ip` in a 5-minute and a 1-hour sliding window and
//! alerts once when each count crosses its threshold: more than `threshold_5m` (5) in
//! 5 minutes is P2, more than `threshold_1h` (20) in an hour is P1.
//!
//! Automated response: when the hourly (P1) threshold is crossed the rule also blocks the
//! IP for `block_minutes` (30), tied to the P1 alert (dedup key `ip:<ip>:1h`) and naming
//! the same counted failures ("Block IP temporarily (30 min)", "Block IP and alert").
//! On by default (`block_ip`): more than 20 failed logins from one address in an hour is
//! not a user mistyping a password, the block is temporary and scoped to one IP, and a
//! responder can lift it from the alert. Turn it off with `"block_ip": false` (e.g. for
//! addresses shared by many users behind a NAT, or to leave the block to a person); the
//! alerts are the same either way. The server may refuse the decision by its own policy
//! (`[decisions]`: e.g. a longer block than `max_rule_duration_secs`, 24 h by default).

use vigil_sdk::time::{HOUR_MS, MINUTE_MS};
use vigil_sdk::{
    Alert, Config, Context, DecideStatus, Decision, Event, Level, Manifest, Rule, Scope, Severity, Subscription,
};

const SHORT_MS: i64 = 5 * MINUTE_MS;
const LONG_MS: i64 = HOUR_MS;

/// The rule; thresholds and the IP block from the configuration.
pub struct BruteForce {
    threshold_5m: i64,
    threshold_1h: i64,
    /// Block the IP when the hourly threshold is crossed.
    block_ip: bool,
    /// How long, in ms (`block_minutes`).
    block_ms: i64,
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
        config.deny_unknown(&["threshold_5m", "threshold_1h", "block_ip", "block_minutes"])?;
        let threshold_5m = config.i64_or("threshold_5m", 5)?;
        let threshold_1h = config.i64_or("threshold_1h", 20)?;
        if threshold_5m < 0 || threshold_1h < 0 {
            return Err("thresholds must not be negative".to_owned());
        }
        let block_ip = config.bool_or("block_ip", true)?;
        let block_ms = config.decision_minutes_or("block_minutes", 30)?;
        Ok(BruteForce { threshold_5m, threshold_1h, block_ip, block_ms, key: String::with_capacity(64) })
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
            let dedup_key = format!("{key}:1h");
            ctx.emit(
                alert(ip, ev, long, "1 hour")
                    .severity(Severity::P1)
                    .dedup_key(dedup_key.as_str())
                    .event_seqs(counted.iter().copied()),
            );
            if self.block_ip {
                let block = Decision::block(Scope::Ip, ip)
                    .duration(self.block_ms)
                    .reason(format!("Brute force: {long} failed logins from {ip} within 1 hour"))
                    .alert(dedup_key)
                    .event_seqs(counted);
                let status = ctx.decide(block);
                if status != DecideStatus::Accepted {
                    ctx.log(Level::Info, &format!("block of {ip} not accepted: {status:?}"));
                }
            }
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
    use vigil_sdk::DecisionKind;
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
    fn crossing_the_hourly_threshold_blocks_the_ip_for_30_minutes_tied_to_the_p1_alert() {
        let mut h = Harness::<BruteForce>::new();
        let out = h.run_detailed((0..21).map(|i| failure("1.2.3.4", i * 150_000)));
        assert_eq!(out.alerts.len(), 1, "{:?}", out.alerts);
        assert_eq!(out.decisions.len(), 1, "{:?}", out.decisions);
        let (a, d) = (&out.alerts[0], &out.decisions[0]);
        assert_eq!((d.scope, d.value.as_str(), d.kind), (Scope::Ip, "1.2.3.4", DecisionKind::Block));
        assert_eq!(d.duration_ms, 30 * MINUTE_MS);
        assert_eq!(d.dedup_key.as_deref(), Some("ip:1.2.3.4:1h"));
        assert_eq!(d.dedup_key, a.dedup_key, "tied to the P1 alert");
        assert_eq!(d.event_seqs, (1..=21).collect::<Vec<i64>>(), "the failures the alert counted");
        assert_eq!(d.event_seqs, a.event_seqs);
        assert!(d.reason.contains("21 failed logins from 1.2.3.4"), "{}", d.reason);
        assert!(h.invalid_decisions().is_empty());
        // Later failures neither alert nor block again.
        let later = h.run_detailed((21..25).map(|i| failure("1.2.3.4", i * 150_000)));
        assert!(later.alerts.is_empty() && later.decisions.is_empty());
    }

    #[test]
    fn the_five_minute_p2_alert_blocks_nothing() {
        let mut h = Harness::<BruteForce>::new();
        let out = h.run_detailed((0..8).map(|i| failure("1.2.3.4", i * 10_000)));
        assert_eq!(out.alerts.len(), 1);
        assert!(out.decisions.is_empty(), "{:?}", out.decisions);
    }

    #[test]
    fn the_block_can_be_turned_off_or_lengthened() {
        let burst = || (0..21).map(|i| failure("1.2.3.4", i * 150_000));
        let mut off = Harness::<BruteForce>::new().config(r#"{"block_ip": false}"#);
        let out = off.run_detailed(burst());
        assert_eq!(out.alerts.len(), 1, "the alert is the same");
        assert_eq!(out.alerts[0].severity, Some(Severity::P1));
        assert!(out.decisions.is_empty(), "{:?}", out.decisions);
        let mut longer = Harness::<BruteForce>::new().config(r#"{"block_minutes": 120}"#);
        assert_eq!(longer.run_detailed(burst()).decisions[0].duration_ms, 2 * HOUR_MS);
        for bad in [r#"{"block_minutes": 0}"#, r#"{"block_minutes": 43201}"#, r#"{"block_ip": "yes"}"#] {
            assert!(Harness::<BruteForce>::new().config(bad).init().is_err(), "{bad}");
        }
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
