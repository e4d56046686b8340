//! `account_lockout`: every `action=account_locked`, as a P2 alert grouped per user.
//!
//! Each lockout emits an alert with dedup key `user:<user_id>`, so repeated lockouts of one
//! account fold into one open alert on the host.
//!
//! Automated response, off by default: with `user_decision` = `require_mfa` (or `lock`) a
//! lockout also asks the app to require a second factor from that user (or to lock the
//! account) for `user_decision_minutes` (60), tied to the lockout alert (`user:<user_id>`).
//! One decision per user while it stands: more lockouts of the account meanwhile only fold
//! into the alert. Off by default because the app has already locked the account and a
//! lockout is most often its owner mistyping a password: "check if legitimate user or
//! attacker" and "provide unlock instructions" are a person's call, and a rule-made lock
//! or MFA demand would land on that person. Turn it on where lockouts are rare and
//! suspicious. Without a `user_id` the rule alerts (`unknown`) but decides nothing. With
//! the switch off the rule keeps no state.

use vigil_sdk::{
    Alert, Config, Context, DecideStatus, Decision, DecisionKind, Event, Level, Manifest, Rule, Scope, Severity,
    Subscription,
};

/// The rule.
pub struct AccountLockout {
    /// What to decide on the locked-out user (`None`: nothing).
    user_decision: Option<DecisionKind>,
    /// For how long, in ms.
    decision_ms: i64,
}

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
        config.deny_unknown(&["user_decision", "user_decision_minutes"])?;
        let user_decision =
            config.decision_or("user_decision", "off", &[DecisionKind::RequireMfa, DecisionKind::Lock])?;
        let decision_ms = config.decision_minutes_or("user_decision_minutes", 60)?;
        Ok(AccountLockout { user_decision, decision_ms })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let user = ev.user_id().unwrap_or("unknown");
        let dedup_key = format!("user:{user}");
        ctx.emit(
            Alert::new(format!("Account locked: {user}"))
                .severity(Severity::P2)
                .dedup_key(dedup_key.as_str())
                .field("user_id", user)
                .field("ip", ev.ip())
                .field("reason", ev.get("reason"))
                .action("Confirm with the user whether the failed logins were theirs")
                .action("Look for brute force or password spraying from the same IPs"),
        );
        if let (Some(kind), Some(user)) = (self.user_decision, ev.user_id().filter(|u| !u.is_empty())) {
            self.decide(ctx, kind, user, dedup_key);
        }
        true
    }
}

impl AccountLockout {
    /// Decides `kind` on `user` unless this rule's previous decision on them still stands.
    fn decide(&self, ctx: &Context, kind: DecisionKind, user: &str, dedup_key: String) {
        let decided = format!("decided:{user}");
        let previous = ctx.last_seen().get(&decided);
        if previous.is_some_and(|p| p.as_str() == Some(kind.as_str()) && p.time_ms + self.decision_ms > ctx.time_ms()) {
            return;
        }
        let what = if kind == DecisionKind::Lock { "lock the account" } else { "require MFA" };
        let decision = Decision::new(Scope::User, user, kind)
            .duration(self.decision_ms)
            .reason(format!("Account {user} was locked out: {what} while someone checks it was its owner"))
            .alert(dedup_key);
        match ctx.decide(decision) {
            DecideStatus::Accepted => ctx.last_seen().set(&decided, kind.as_str()),
            status => ctx.log(Level::Info, &format!("{kind} decision on user {user} not accepted: {status:?}")),
        }
    }
}

vigil_sdk::export_rule!(AccountLockout);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};
    use vigil_sdk::time::{HOUR_MS, MINUTE_MS};

    use super::*;

    fn lock(user: &str) -> TestEvent {
        TestEvent::new("authentication", "account_locked").user(user).ip("1.2.3.4")
    }

    #[test]
    fn every_lockout_alerts_with_the_user_as_dedup_key() {
        let mut h = Harness::<AccountLockout>::new();
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

    #[test]
    fn by_default_nothing_is_decided_and_no_state_is_kept() {
        let mut h = Harness::<AccountLockout>::new();
        let out = h.run_detailed([lock("alice"), lock("bob")]);
        assert_eq!(out.alerts.len(), 2);
        assert!(out.decisions.is_empty(), "{:?}", out.decisions);
        assert_eq!(h.state().len(), 0);
        let mut off = Harness::<AccountLockout>::new().config(r#"{"user_decision": "off"}"#);
        assert!(off.run_detailed([lock("alice")]).decisions.is_empty());
    }

    #[test]
    fn require_mfa_for_the_locked_out_user_once_while_it_stands() {
        let mut h = Harness::<AccountLockout>::new().config(r#"{"user_decision": "require_mfa"}"#);
        let out = h.run_detailed([lock("alice").at_ms(0), lock("alice").at_ms(10 * MINUTE_MS), lock("bob").at_ms(1)]);
        assert_eq!(out.alerts.len(), 3, "the alerts are the same");
        assert_eq!(out.decisions.len(), 2, "one per user while it stands: {:?}", out.decisions);
        let d = &out.decisions[0];
        assert_eq!((d.scope, d.value.as_str(), d.kind), (Scope::User, "alice", DecisionKind::RequireMfa));
        assert_eq!(d.duration_ms, HOUR_MS);
        assert_eq!(d.dedup_key.as_deref(), Some("user:alice"));
        assert_eq!(d.dedup_key, out.alerts[0].dedup_key, "tied to the lockout alert");
        assert_eq!(d.event_seqs, [1], "the lockout");
        assert_eq!(out.decisions[1].value, "bob");
        assert_eq!(out.decisions[1].event_seqs, [3]);
        assert!(h.invalid_decisions().is_empty());
        // Once the first one has run out, a new lockout decides again.
        let again = h.step(lock("alice").at_ms(HOUR_MS));
        assert_eq!(again.decisions.len(), 1);
        assert_eq!(again.decisions[0].event_seqs, [4]);
    }

    #[test]
    fn lock_for_a_configured_time_and_never_for_an_unknown_user() {
        let mut h =
            Harness::<AccountLockout>::new().config(r#"{"user_decision": "lock", "user_decision_minutes": 15}"#);
        let out = h.run_detailed([lock("carol"), TestEvent::new("authentication", "account_locked").ip("1.2.3.4")]);
        assert_eq!(out.alerts.len(), 2);
        assert_eq!(out.alerts[1].dedup_key.as_deref(), Some("user:unknown"));
        assert_eq!(out.decisions.len(), 1, "{:?}", out.decisions);
        let d = &out.decisions[0];
        assert_eq!((d.scope, d.value.as_str(), d.kind), (Scope::User, "carol", DecisionKind::Lock));
        assert_eq!(d.duration_ms, 15 * MINUTE_MS);
        for bad in [r#"{"user_decision": "block"}"#, r#"{"user_decision_minutes": 0}"#, r#"{"lock": true}"#] {
            assert!(Harness::<AccountLockout>::new().config(bad).init().is_err(), "{bad}");
        }
    }
}
