//! `bulk_data_access`: one user reading too many records within an hour.
//!
//! Sums `details.record_count` (1 when absent or unreadable) of `category=data_access`
//! events per `user_id` over a 1-hour sliding window; alerts (P1) when the sum crosses
//! `threshold` (1000).
//!
//! Automated response, off by default: with `user_decision` = `require_mfa` (or `lock`)
//! crossing the threshold also asks the app to require a second factor from that user (or
//! to lock the account, "suspend account immediately") for `user_decision_minutes` (60),
//! tied to the alert (`user:<user_id>`) and naming the reads it summed. Off by default
//! because a human should decide: reports, migrations and support work read that much
//! legitimately, and locking the account of the person doing their job (or interrupting
//! them for MFA) is a call for whoever confirms the export was expected. `require_mfa`
//! is the milder choice (a stolen session or token cannot answer it); `lock` stops the
//! account, for data where an unexplained export is worse than an interrupted user.

use vigil_sdk::time::HOUR_MS;
use vigil_sdk::{
    Alert, Config, Context, DecideStatus, Decision, DecisionKind, Event, Level, Manifest, Rule, Scope, Severity,
    Subscription,
};

const WINDOW_MS: i64 = HOUR_MS;

/// The rule.
pub struct BulkDataAccess {
    threshold: i64,
    /// What to decide on the user when the threshold is crossed (`None`: nothing).
    user_decision: Option<DecisionKind>,
    /// For how long, in ms.
    decision_ms: i64,
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
        config.deny_unknown(&["threshold", "user_decision", "user_decision_minutes"])?;
        let threshold = config.i64_or("threshold", 1000)?;
        if threshold < 0 {
            return Err("threshold must not be negative".to_owned());
        }
        let user_decision =
            config.decision_or("user_decision", "off", &[DecisionKind::RequireMfa, DecisionKind::Lock])?;
        let decision_ms = config.decision_minutes_or("user_decision_minutes", 60)?;
        Ok(BulkDataAccess { threshold, user_decision, decision_ms })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let Some(user) = ev.user_id().filter(|u| !u.is_empty()) else { return false };
        let records = ev.i64("details.record_count").unwrap_or(1).max(0);
        let key = format!("user:{user}");
        let total = ctx.window(WINDOW_MS).add(&key, records);
        // Fire when this event takes the sum across the threshold.
        if total > self.threshold && total - records <= self.threshold {
            let summed = ctx.window(WINDOW_MS).seqs(&key);
            ctx.emit(
                Alert::new(format!("Bulk data access: {user} read {total} records within an hour"))
                    .severity(Severity::P1)
                    .dedup_key(key.as_str())
                    .event_seqs(summed.iter().copied())
                    .field("user_id", user)
                    .field("records", total)
                    .field("window", "1h")
                    .field("last_resource", ev.resource())
                    .field("ip", ev.ip())
                    .action("Confirm with the user or their manager that the export was expected")
                    .action("Check where the data went (downloads, API clients, external shares)")
                    .action("Suspend the session if the access is not explained"),
            );
            if let Some(kind) = self.user_decision {
                let decision = Decision::new(Scope::User, user, kind)
                    .duration(self.decision_ms)
                    .reason(format!("Bulk data access: {user} read {total} records within an hour"))
                    .alert(key.as_str())
                    .event_seqs(summed);
                let status = ctx.decide(decision);
                if status != DecideStatus::Accepted {
                    ctx.log(Level::Info, &format!("{kind} decision on user {user} not accepted: {status:?}"));
                }
            }
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
    fn by_default_nothing_is_decided() {
        let mut h = Harness::<BulkDataAccess>::new();
        let out = h.run_detailed((0..5).map(|i| read("alice", Some(300), i * MINUTE_MS)));
        assert_eq!(out.alerts.len(), 1);
        assert!(out.decisions.is_empty(), "{:?}", out.decisions);
        let mut off = Harness::<BulkDataAccess>::new().config(r#"{"user_decision": "off"}"#);
        assert!(off.run_detailed((0..5).map(|i| read("alice", Some(300), i * MINUTE_MS))).decisions.is_empty());
    }

    #[test]
    fn crossing_the_threshold_can_require_mfa_or_lock_the_user_tied_to_the_alert() {
        let mut h = Harness::<BulkDataAccess>::new().config(r#"{"user_decision": "require_mfa"}"#);
        let out = h.run_detailed((0..5).map(|i| read("alice", Some(300), i * MINUTE_MS)));
        assert_eq!(out.alerts.len(), 1, "the alert is the same");
        assert_eq!(out.decisions.len(), 1, "once, at the crossing: {:?}", out.decisions);
        let (a, d) = (&out.alerts[0], &out.decisions[0]);
        assert_eq!((d.scope, d.value.as_str(), d.kind), (Scope::User, "alice", DecisionKind::RequireMfa));
        assert_eq!(d.duration_ms, HOUR_MS);
        assert_eq!(d.dedup_key.as_deref(), Some("user:alice"));
        assert_eq!(d.dedup_key, a.dedup_key, "tied to the alert");
        assert_eq!(d.event_seqs, [1, 2, 3, 4], "every read it summed");
        assert_eq!(d.event_seqs, a.event_seqs);
        assert!(d.reason.contains("1200 records"), "{}", d.reason);

        let config = r#"{"user_decision": "lock", "user_decision_minutes": 240, "threshold": 10}"#;
        let mut h = Harness::<BulkDataAccess>::new().config(config);
        let d = h.step(read("bob", Some(11), 0)).decisions;
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].value.as_str(), d[0].kind, d[0].duration_ms), ("bob", DecisionKind::Lock, 4 * HOUR_MS));
        for bad in [r#"{"user_decision": "throttle"}"#, r#"{"user_decision_minutes": -5}"#] {
            assert!(Harness::<BulkDataAccess>::new().config(bad).init().is_err(), "{bad}");
        }
    }

    #[test]
    fn other_categories_and_users_are_separate() {
        let mut h = Harness::<BulkDataAccess>::new();
        let login = TestEvent::new("authentication", "login_success").user("dave").detail("record_count", 5000);
        assert!(!h.step(login).offered);
        assert!(h.run([read("dave", Some(800), 0), read("erin", Some(800), 1)]).is_empty());
    }
}
