//! `account_lockout`: every `action=account_locked`, as a P2 alert grouped per user.
//!
//! Stateless: each lockout emits an alert with dedup key `user:<user_id>`, so repeated
//! lockouts of one account fold into one open alert on the host.

use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription};

/// The rule.
pub struct AccountLockout;

impl Rule for AccountLockout {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("An account was locked out")
            .severity(Severity::P2)
            .mitre(["T1110"])
            .fields(["user_id", "ip", "reason"])
            .subscribe(Subscription::action("account_locked"))
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&[])?;
        Ok(AccountLockout)
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let user = ev.user_id().unwrap_or("unknown");
        ctx.emit(
            Alert::new(format!("Account locked: {user}"))
                .severity(Severity::P2)
                .dedup_key(format!("user:{user}"))
                .field("user_id", user)
                .field("ip", ev.ip())
                .field("reason", ev.get("reason"))
                .action("Confirm with the user whether the failed logins were theirs")
                .action("Look for brute force or password spraying from the same IPs"),
        );
        true
    }
}

vigil_sdk::export_rule!(AccountLockout);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};

    use super::*;

    #[test]
    fn every_lockout_alerts_with_the_user_as_dedup_key() {
        let mut h = Harness::<AccountLockout>::new();
        let lock = |u: &str| TestEvent::new("authentication", "account_locked").user(u).ip("1.2.3.4");
        let alerts = h.run([lock("alice"), lock("alice"), lock("bob")]);
        assert_eq!(alerts.len(), 3);
        assert_eq!(alerts[0].severity, Some(Severity::P2));
        assert_eq!(alerts[0].dedup_key, alerts[1].dedup_key);
        assert_eq!(alerts[2].dedup_key.as_deref(), Some("user:bob"));
        assert_eq!(alerts[2].event_seqs, [3]);
    }

    #[test]
    fn other_actions_are_not_offered() {
        let mut h = Harness::<AccountLockout>::new();
        let out = h.run_detailed([
            TestEvent::new("authentication", "login_failed").user("alice"),
            TestEvent::new("authentication", "account_unlocked").user("alice"),
        ]);
        assert_eq!(out.offered, [false, false]);
        assert!(out.alerts.is_empty());
    }
}
