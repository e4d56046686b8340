//! `sql_injection_probe`: SQL injection patterns in an event's `resource` or `details`.
//!
//! Looks at every event (any category): the `resource` text and every string value inside
//! `details` (parsed only when a cheap scan of its raw JSON finds a hint). A match of
//! `patterns::find` (`' OR 1=1`, `UNION SELECT`, `; DROP TABLE`, a comment right after a
//! quote, time delays...) raises a P1 alert grouped per source IP (or user).
//!
//! Automated response, off by default: with `user_decision` = `block` the probe also
//! blocks the user who sent it (the event's `user_id`) for `user_decision_minutes` (30),
//! tied to the alert and naming the probe; `lock` locks the account instead and
//! `require_mfa` only asks for a second factor. One decision per user while it stands;
//! an event without a `user_id` decides nothing. Off by default because a person should
//! decide: a pattern in text a user typed (a developer quoting SQL in a ticket, a name
//! like O'Brien next to a comment) would cut a real person off from the whole app, and
//! the alert already names what matched for a responder to confirm.

pub mod patterns;
mod prefilter;

use vigil_sdk::json::Value;
use vigil_sdk::{Alert, Config, Context, Decision, DecisionKind, Event, Manifest, Rule, Scope, Severity, Subscription};

/// Longest excerpt of the offending value put in an alert.
const EXCERPT_CHARS: usize = 200;

/// The rule.
pub struct SqlInjectionProbe {
    /// What to decide on the user who sent a probe (`None`: nothing).
    user_decision: Option<DecisionKind>,
    /// For how long, in ms.
    decision_ms: i64,
}

impl Rule for SqlInjectionProbe {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("SQL injection patterns in the resource or in string values of details")
            .severity(Severity::P1)
            .mitre(["T1190"])
            .fields(["resource", "details", "ip", "user_id"])
            .subscribe(Subscription::all())
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["user_decision", "user_decision_minutes"])?;
        let user_decision = config.decision_or("user_decision", "off", &DecisionKind::ALL)?;
        let decision_ms = config.decision_minutes_or("user_decision_minutes", 30)?;
        Ok(SqlInjectionProbe { user_decision, decision_ms })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let Some((field, pattern, value)) = find_in_event(ev) else { return false };
        let (ip, user) = (ev.ip(), ev.user_id());
        let dedup = match (ip, user) {
            (Some(ip), _) => format!("ip:{ip}"),
            (None, Some(user)) => format!("user:{user}"),
            (None, None) => format!("field:{field}"),
        };
        let source = ip.or(user).unwrap_or("an unknown source");
        let title = format!("SQL injection probe ({pattern}) from {source}");
        ctx.emit(
            Alert::new(title.as_str())
                .severity(Severity::P1)
                .dedup_key(dedup.as_str())
                .field("pattern", pattern)
                .field("field", field.as_str())
                .field("excerpt", value.chars().take(EXCERPT_CHARS).collect::<String>())
                .field("ip", ip)
                .field("user_id", user)
                .action("Block the source at the WAF or edge")
                .action("Check the application and database logs for successful injections")
                .action("Verify that the targeted endpoint uses parameterised queries"),
        );
        if let (Some(kind), Some(user)) = (self.user_decision, user.filter(|u| !u.is_empty())) {
            let reason = format!("{title} in {field} as user {user}");
            ctx.decide_once(
                Decision::new(Scope::User, user, kind).duration(self.decision_ms).reason(reason).alert(dedup),
            );
        }
        true
    }
}

/// `(field, pattern, value)` of the first match in `resource`, then in `details`.
fn find_in_event(ev: &Event<'_>) -> Option<(String, &'static str, String)> {
    if let Some(resource) = ev.resource()
        && let Some(p) = patterns::find(resource)
    {
        return Some(("resource".to_owned(), p, resource.to_owned()));
    }
    let raw = ev.get("details").filter(|raw| patterns::may_match(raw))?;
    let details = Value::parse(raw).ok()?;
    let mut found = None;
    walk_strings(&details, &mut "details".to_owned(), &mut |path, s| {
        if found.is_none()
            && let Some(p) = patterns::find(s)
        {
            found = Some((path.to_owned(), p, s.to_owned()));
        }
    });
    found
}

/// Calls `f(path, text)` for every string value (not key) under `v`.
fn walk_strings(v: &Value, path: &mut String, f: &mut impl FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(path, s),
        Value::Array(items) => items.iter().for_each(|i| walk_strings(i, path, f)),
        Value::Object(entries) => {
            for (k, child) in entries {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                walk_strings(child, path, f);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

vigil_sdk::export_rule!(SqlInjectionProbe);

#[cfg(test)]
mod tests {
    use vigil_sdk::testing::{Harness, TestEvent};

    use super::*;

    #[test]
    fn injection_in_resource_fires_p1() {
        let mut h = Harness::<SqlInjectionProbe>::new();
        let ev = TestEvent::new("data_access", "read").ip("5.5.5.5").resource("/items?id=1' OR 1=1 --");
        let alerts = h.run([ev]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].severity, Some(Severity::P1));
        assert_eq!(alerts[0].dedup_key.as_deref(), Some("ip:5.5.5.5"));
        assert_eq!(alerts[0].field_value("field").and_then(|v| v.as_str()), Some("resource"));
    }

    #[test]
    fn injection_in_nested_details_string_fires() {
        let mut h = Harness::<SqlInjectionProbe>::new();
        let ev = TestEvent::new("api", "search")
            .user("u1")
            .detail("query.filter", "name = 'x' UNION SELECT password FROM users")
            .detail("limit", 10);
        let alerts = h.run([ev]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].field_value("field").and_then(|v| v.as_str()), Some("details.query.filter"));
        assert_eq!(alerts[0].field_value("pattern").and_then(|v| v.as_str()), Some("union_select"));
        assert_eq!(alerts[0].dedup_key.as_deref(), Some("user:u1"));
    }

    fn probe(user: &str, ip: Option<&str>) -> TestEvent {
        let ev = TestEvent::new("data_access", "read").user(user).resource("/items?id=1' OR 1=1 --");
        match ip {
            Some(ip) => ev.ip(ip),
            None => ev,
        }
    }

    #[test]
    fn by_default_nothing_is_decided() {
        let mut h = Harness::<SqlInjectionProbe>::new();
        let out = h.run_detailed([probe("mallory", Some("5.5.5.5"))]);
        assert_eq!((out.alerts.len(), out.decisions.len()), (1, 0), "{:?}", out.decisions);
        let mut off = Harness::<SqlInjectionProbe>::new().config(r#"{"user_decision": "off"}"#);
        assert!(off.run_detailed([probe("mallory", None)]).decisions.is_empty());
    }

    #[test]
    fn when_enabled_the_user_is_blocked_for_a_while_tied_to_the_alert() {
        use vigil_sdk::time::MINUTE_MS;
        let mut h = Harness::<SqlInjectionProbe>::new().config(r#"{"user_decision": "block"}"#);
        let out = h.run_detailed([probe("mallory", Some("5.5.5.5")), probe("mallory", Some("5.5.5.6"))]);
        assert_eq!(out.alerts.len(), 2, "the alerts are the same");
        assert_eq!(out.decisions.len(), 1, "one per user while it stands: {:?}", out.decisions);
        let (a, d) = (&out.alerts[0], &out.decisions[0]);
        assert_eq!((d.scope, d.value.as_str(), d.kind), (Scope::User, "mallory", DecisionKind::Block));
        assert_eq!(d.duration_ms, 30 * MINUTE_MS);
        assert_eq!(d.dedup_key.as_deref(), Some("ip:5.5.5.5"));
        assert_eq!(d.dedup_key, a.dedup_key, "tied to the alert");
        assert_eq!(d.event_seqs, [1]);
        assert_eq!(d.reason, "SQL injection probe (quote_or_tautology) from 5.5.5.5 in resource as user mallory");
        assert!(h.invalid_decisions().is_empty());
        // Without an IP the alert is grouped per user, and so is the decision's tie.
        let config = r#"{"user_decision": "lock", "user_decision_minutes": 120}"#;
        let mut h = Harness::<SqlInjectionProbe>::new().config(config);
        let out = h.run_detailed([probe("eve", None)]);
        assert_eq!(out.decisions.len(), 1);
        let d = &out.decisions[0];
        assert_eq!(
            (d.kind, d.duration_ms, d.dedup_key.as_deref()),
            (DecisionKind::Lock, 120 * MINUTE_MS, Some("user:eve"))
        );
        // A probe without a user decides nothing.
        let anonymous = TestEvent::new("api", "call").ip("6.6.6.6").resource("/x?q=1 UNION SELECT 1");
        let out = h.run_detailed([anonymous]);
        assert_eq!((out.alerts.len(), out.decisions.len()), (1, 0));
        for bad in [r#"{"user_decision": "ban"}"#, r#"{"user_decision_minutes": 0}"#, r#"{"x": 1}"#] {
            assert!(Harness::<SqlInjectionProbe>::new().config(bad).init().is_err(), "{bad}");
        }
    }

    #[test]
    fn ordinary_events_and_keys_do_not_fire() {
        let mut h = Harness::<SqlInjectionProbe>::new();
        let events = [
            TestEvent::new("data_access", "read").resource("/customers/42").detail("note", "O'Reilly's order"),
            // Patterns in keys or non-string values are not looked at.
            TestEvent::new("api", "call").detail_json("x", r#"{"' or 1=1 --": 1, "n": 5}"#),
            TestEvent::new("authentication", "login_success").user("bob"),
        ];
        let out = h.run_detailed(events);
        assert_eq!(out.offered, [true, true, true], "subscribed to everything");
        assert!(out.alerts.is_empty(), "{:?}", out.alerts);
    }
}
