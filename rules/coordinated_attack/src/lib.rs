//! `coordinated_attack`: many different accounts locked out within an hour.
//!
//! Tracks the distinct `user_id`s of `action=account_locked` events over a 1-hour window
//! and alerts (P1) when their number crosses `threshold` (10): a password-spraying or
//! credential-stuffing campaign rather than one forgetful user.

use vigil_sdk::time::HOUR_MS;
use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription};

const WINDOW_MS: i64 = HOUR_MS;
const KEY: &str = "account_locked";

/// The rule.
pub struct CoordinatedAttack {
    threshold: i64,
}

impl Rule for CoordinatedAttack {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("More than 10 distinct accounts locked out within an hour")
            .severity(Severity::P1)
            .mitre(["T1110.003", "T1110.004"])
            .fields(["user_id", "ip"])
            .subscribe(Subscription::action("account_locked"))
            .windows_ms([WINDOW_MS])
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["threshold"])?;
        let threshold = config.i64_or("threshold", 10)?;
        if threshold < 0 {
            return Err("threshold must not be negative".to_owned());
        }
        Ok(CoordinatedAttack { threshold })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let Some(user) = ev.user_id().filter(|u| !u.is_empty()) else { return false };
        let users = ctx.distinct(WINDOW_MS);
        let before = users.count(KEY);
        let after = users.add(KEY, user);
        if before <= self.threshold && after > self.threshold {
            ctx.emit(
                Alert::new(format!("Coordinated attack: {after} accounts locked out within an hour"))
                    .severity(Severity::P1)
                    .dedup_key("account_locked:distinct_users")
                    .event_seqs(users.seqs(KEY))
                    .field("distinct_users", after)
                    .field("window", "1h")
                    .field("last_user_id", user)
                    .field("last_ip", ev.ip())
                    .action("Look for password spraying: one IP or ASN across many accounts")
                    .action("Consider blocking the source IPs and forcing password resets")
                    .action("Check for successful logins of the affected accounts"),
            );
        }
        true
    }
}

vigil_sdk::export_rule!(CoordinatedAttack);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};
    use vigil_sdk::time::MINUTE_MS;

    use super::*;

    fn lock(user: usize, t: i64) -> TestEvent {
        TestEvent::new("authentication", "account_locked").user(&format!("user{user}")).ip("6.6.6.6").at_ms(t)
    }

    #[test]
    fn eleven_distinct_users_in_an_hour_fire_once() {
        let mut h = Harness::<CoordinatedAttack>::new();
        let alerts = h.run((0..15).map(|u| lock(u, u as i64 * MINUTE_MS)));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].severity, Some(Severity::P1));
        assert_eq!(alerts[0].field_value("distinct_users").and_then(|v| v.as_i64()), Some(11));
        assert_eq!(alerts[0].event_seqs, (1..=11).collect::<Vec<i64>>(), "one lockout per distinct user");
    }

    #[test]
    fn ten_users_or_repeats_of_one_user_do_not_fire() {
        let mut h = Harness::<CoordinatedAttack>::new();
        assert!(h.run((0..10).map(|u| lock(u, u as i64 * 1000))).is_empty());
        assert!(h.run((0..30).map(|i| lock(3, 20_000 + i))).is_empty(), "repeats count once");
    }

    #[test]
    fn eleven_users_spread_over_two_hours_do_not_fire() {
        let mut h = Harness::<CoordinatedAttack>::new();
        assert!(h.run((0..11).map(|u| lock(u, u as i64 * 12 * MINUTE_MS))).is_empty());
    }
}
