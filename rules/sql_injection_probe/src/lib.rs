//! `sql_injection_probe`: SQL injection patterns in an event's `resource` or `details`.
//!
//! Looks at every event (any category): the `resource` text and every string value inside
//! `details` (parsed only when a cheap scan of its raw JSON finds a hint). A match of
//! `patterns::find` (`' OR 1=1`, `UNION SELECT`, `; DROP TABLE`, a comment right after a
//! quote, time delays...) raises a P1 alert grouped per source IP (or user).

pub mod patterns;

use vigil_sdk::json::Value;
use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription};

/// Longest excerpt of the offending value put in an alert.
const EXCERPT_CHARS: usize = 200;

/// The rule.
pub struct SqlInjectionProbe;

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
        config.deny_unknown(&[])?;
        Ok(SqlInjectionProbe)
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
        ctx.emit(
            Alert::new(format!("SQL injection probe ({pattern}) from {source}"))
                .severity(Severity::P1)
                .dedup_key(dedup)
                .field("pattern", pattern)
                .field("field", field)
                .field("excerpt", value.chars().take(EXCERPT_CHARS).collect::<String>())
                .field("ip", ip)
                .field("user_id", user)
                .action("Block the source at the WAF or edge")
                .action("Check the application and database logs for successful injections")
                .action("Verify that the targeted endpoint uses parameterised queries"),
        );
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
