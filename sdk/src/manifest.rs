//! What a rule declares about itself: the manifest and its subscriptions.
//!
//! A rule builds a [`Manifest`] in `Rule::manifest`; `vigil_manifest` exports it as JSON
//! (ABI.md, "Manifest JSON"). The host reads it back with [`Manifest::from_json`], checks it
//! with [`Manifest::validate`] and indexes the subscriptions; [`Manifest::matches`] is the
//! one definition of "this event is offered to this rule", shared with [`crate::testing`].

use std::fmt;

use crate::json::{self, Value};
use crate::severity::Severity;

/// Most fields a manifest may declare.
pub const MAX_FIELDS: usize = 32;
/// Most subscription clauses a manifest may declare.
pub const MAX_CLAUSES: usize = 64;
/// Most values in one list (categories, actions or outcomes) of a clause.
pub const MAX_CLAUSE_VALUES: usize = 256;
/// Longest value in a subscription list, bytes (an action is at most 128 bytes).
pub const MAX_CLAUSE_VALUE_BYTES: usize = 128;
/// Most windows a manifest may declare.
pub const MAX_WINDOWS: usize = 16;
/// Most MITRE ATT&CK ids a manifest may declare.
pub const MAX_MITRE: usize = 32;
/// Longest description, bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;

/// Top-level event fields a detection rule may declare (besides `geo.*` and `details*`).
pub const EVENT_FIELDS: &[&str] = &[
    "event_id",
    "category",
    "action",
    "severity",
    "outcome",
    "organization_id",
    "user_id",
    "session_id",
    "api_key_id",
    "request_id",
    "source",
    "resource",
    "resource_type",
    "reason",
    "error_code",
    "ip",
    "user_agent",
];

/// `geo` fields a detection rule may declare.
pub const GEO_FIELDS: &[&str] = &["geo.country", "geo.city", "geo.lat", "geo.lon"];

/// Fields of the alert record a routing rule may declare.
pub const ALERT_FIELDS: &[&str] = &["rule", "severity", "title", "dedup_key", "status", "count"];

/// Detection rules see events; routing rules see alerts and name receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Sees events, may emit alerts.
    Detection,
    /// Sees alerts, routes them to receivers.
    Routing,
}

impl Kind {
    /// `"detection"` or `"routing"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Detection => "detection",
            Kind::Routing => "routing",
        }
    }
}

/// One subscription clause: every non-empty list must contain the event's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subscription {
    /// Accepted categories (empty: any).
    pub categories: Vec<String>,
    /// Accepted actions (empty: any).
    pub actions: Vec<String>,
    /// Accepted outcomes (empty: any).
    pub outcomes: Vec<String>,
}

impl Subscription {
    /// A clause that matches every event.
    pub fn all() -> Subscription {
        Subscription::default()
    }

    /// A clause for one category.
    pub fn category(category: &str) -> Subscription {
        Subscription::all().categories([category])
    }

    /// A clause for one action.
    pub fn action(action: &str) -> Subscription {
        Subscription::all().actions([action])
    }

    /// Adds accepted categories.
    pub fn categories<S: Into<String>>(mut self, items: impl IntoIterator<Item = S>) -> Subscription {
        self.categories.extend(items.into_iter().map(Into::into));
        self
    }

    /// Adds accepted actions.
    pub fn actions<S: Into<String>>(mut self, items: impl IntoIterator<Item = S>) -> Subscription {
        self.actions.extend(items.into_iter().map(Into::into));
        self
    }

    /// Adds accepted outcomes.
    pub fn outcomes<S: Into<String>>(mut self, items: impl IntoIterator<Item = S>) -> Subscription {
        self.outcomes.extend(items.into_iter().map(Into::into));
        self
    }

    /// Whether an event with these values (`""` when absent) passes this clause.
    pub fn matches(&self, category: &str, action: &str, outcome: &str) -> bool {
        fn ok(list: &[String], v: &str) -> bool {
            list.is_empty() || list.iter().any(|x| x == v)
        }
        ok(&self.categories, category) && ok(&self.actions, action) && ok(&self.outcomes, outcome)
    }
}

/// Everything a rule declares about itself.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Manifest {
    /// `[a-z0-9_]{1,64}`; the crate name.
    pub name: String,
    /// The rule's version (the crate version).
    pub version: String,
    /// Detection or routing.
    pub kind: Kind,
    /// One line on what it detects.
    pub description: String,
    /// Default severity of its alerts.
    pub severity: Severity,
    /// MITRE ATT&CK technique ids.
    pub mitre: Vec<String>,
    /// Fields written into each record, in this order.
    pub fields: Vec<String>,
    /// Any clause matching means the event is offered; empty means nothing is offered.
    pub subscribe: Vec<Subscription>,
    /// Windows the rule uses, in ms (the longest drives replay on restart).
    pub windows_ms: Vec<i64>,
}

/// Why a manifest is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError(pub String);

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid rule manifest: {}", self.0)
    }
}

impl std::error::Error for ManifestError {}

impl Manifest {
    /// A detection rule manifest with defaults (version `0.0.0`, severity `P3`, no fields,
    /// no subscription).
    pub fn detection(name: &str) -> Manifest {
        Manifest {
            name: name.to_owned(),
            version: "0.0.0".to_owned(),
            kind: Kind::Detection,
            description: String::new(),
            severity: Severity::P3,
            mitre: Vec::new(),
            fields: Vec::new(),
            subscribe: Vec::new(),
            windows_ms: Vec::new(),
        }
    }

    /// A routing rule manifest: offered every alert (one match-all clause).
    pub fn routing(name: &str) -> Manifest {
        Manifest { kind: Kind::Routing, subscribe: vec![Subscription::all()], ..Manifest::detection(name) }
    }

    /// Sets the version.
    pub fn version(mut self, version: &str) -> Manifest {
        version.clone_into(&mut self.version);
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: &str) -> Manifest {
        text.clone_into(&mut self.description);
        self
    }

    /// Sets the default severity.
    pub fn severity(mut self, severity: Severity) -> Manifest {
        self.severity = severity;
        self
    }

    /// Adds MITRE ATT&CK technique ids.
    pub fn mitre<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Manifest {
        self.mitre.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Declares fields to be written into each record (duplicates are skipped).
    pub fn fields<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Manifest {
        for name in names {
            let name = name.into();
            if !self.fields.contains(&name) {
                self.fields.push(name);
            }
        }
        self
    }

    /// Adds a subscription clause.
    pub fn subscribe(mut self, clause: Subscription) -> Manifest {
        self.subscribe.push(clause);
        self
    }

    /// Declares windows used (ms).
    pub fn windows_ms(mut self, windows: impl IntoIterator<Item = i64>) -> Manifest {
        self.windows_ms.extend(windows);
        self
    }

    /// The longest declared window (0 when none).
    pub fn longest_window_ms(&self) -> i64 {
        self.windows_ms.iter().copied().max().unwrap_or(0)
    }

    /// Position of a declared field in each record.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == name)
    }

    /// Whether an event with these values (`""` when absent) is offered to this rule.
    pub fn matches(&self, category: &str, action: &str, outcome: &str) -> bool {
        self.subscribe.iter().any(|c| c.matches(category, action, outcome))
    }

    /// Checks the manifest against ABI.md (name, field names and count, windows).
    pub fn validate(&self) -> Result<(), ManifestError> {
        let bad = |msg: String| Err(ManifestError(msg));
        if self.name.is_empty()
            || self.name.len() > 64
            || !self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return bad(format!("name {:?} must match [a-z0-9_]{{1,64}}", self.name));
        }
        if self.fields.len() > MAX_FIELDS {
            return bad(format!("{} fields declared, at most {MAX_FIELDS}", self.fields.len()));
        }
        for (i, f) in self.fields.iter().enumerate() {
            if !is_field_name(self.kind, f) {
                return bad(format!("unknown field {f:?} for a {} rule", self.kind.as_str()));
            }
            if self.fields[..i].contains(f) {
                return bad(format!("field {f:?} declared twice"));
            }
        }
        if self.subscribe.len() > MAX_CLAUSES {
            return bad(format!(
                "{} subscription clauses declared, at most {MAX_CLAUSES} (limit: subscription clauses)",
                self.subscribe.len()
            ));
        }
        for (i, clause) in self.subscribe.iter().enumerate() {
            for (list, values) in
                [("categories", &clause.categories), ("actions", &clause.actions), ("outcomes", &clause.outcomes)]
            {
                if values.len() > MAX_CLAUSE_VALUES {
                    return bad(format!(
                        "subscription clause {i} lists {} {list}, at most {MAX_CLAUSE_VALUES} (limit: values per list)",
                        values.len()
                    ));
                }
                if let Some(v) = values.iter().find(|v| v.is_empty() || v.len() > MAX_CLAUSE_VALUE_BYTES) {
                    return bad(format!(
                        "subscription clause {i} has a {list} value of {} bytes, 1 to {MAX_CLAUSE_VALUE_BYTES} allowed (limit: value length)",
                        v.len()
                    ));
                }
            }
        }
        if self.windows_ms.len() > MAX_WINDOWS {
            return bad(format!("{} windows declared, at most {MAX_WINDOWS}", self.windows_ms.len()));
        }
        if self.mitre.len() > MAX_MITRE || self.mitre.iter().any(|m| m.len() > 32) {
            return bad(format!("at most {MAX_MITRE} MITRE ids of at most 32 bytes each"));
        }
        if self.description.len() > MAX_DESCRIPTION_BYTES {
            return bad(format!("description is {} bytes, at most {MAX_DESCRIPTION_BYTES}", self.description.len()));
        }
        if let Some(w) = self.windows_ms.iter().find(|w| **w <= 0) {
            return bad(format!("window {w} ms must be positive"));
        }
        Ok(())
    }

    /// The manifest JSON of ABI.md.
    pub fn to_json(&self) -> String {
        let strings = |items: &[String]| Value::Array(items.iter().map(Value::from).collect());
        let clauses = self
            .subscribe
            .iter()
            .map(|c| {
                Value::Object(vec![
                    ("categories".into(), strings(&c.categories)),
                    ("actions".into(), strings(&c.actions)),
                    ("outcomes".into(), strings(&c.outcomes)),
                ])
            })
            .collect();
        Value::Object(vec![
            ("name".into(), Value::from(&self.name)),
            ("version".into(), Value::from(&self.version)),
            ("kind".into(), Value::from(self.kind.as_str())),
            ("description".into(), Value::from(&self.description)),
            ("severity".into(), Value::from(self.severity.as_str())),
            ("mitre".into(), strings(&self.mitre)),
            ("fields".into(), strings(&self.fields)),
            ("subscribe".into(), Value::Array(clauses)),
            ("windows_ms".into(), Value::Array(self.windows_ms.iter().map(|w| Value::from(*w)).collect())),
        ])
        .to_json()
    }

    /// Reads manifest JSON and validates it. Missing optional members take the defaults of
    /// [`Manifest::detection`]; `name` and `kind` are required.
    pub fn from_json(text: &str) -> Result<Manifest, ManifestError> {
        let err = |m: &str| ManifestError(m.to_owned());
        let v = json::Value::parse(text).map_err(|e| ManifestError(e.to_string()))?;
        let name = v.get("name").and_then(Value::as_str).ok_or_else(|| err("`name` must be a string"))?;
        let kind = match v.get("kind").and_then(Value::as_str) {
            Some("detection") => Kind::Detection,
            Some("routing") => Kind::Routing,
            _ => return Err(err("`kind` must be \"detection\" or \"routing\"")),
        };
        let text_of = |key: &str| -> Result<Option<String>, ManifestError> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ManifestError(format!("`{key}` must be a string"))),
            }
        };
        let mut m = Manifest { kind, subscribe: Vec::new(), ..Manifest::detection(name) };
        if let Some(s) = text_of("version")? {
            m.version = s;
        }
        if let Some(s) = text_of("description")? {
            m.description = s;
        }
        if let Some(s) = text_of("severity")? {
            m.severity = Severity::parse(&s).ok_or_else(|| err("`severity` must be P1..P4"))?;
        }
        m.mitre = string_list(&v, "mitre")?;
        m.fields = string_list(&v, "fields")?;
        if let Some(clauses) = v.get("subscribe") {
            let clauses = clauses.as_array().ok_or_else(|| err("`subscribe` must be an array"))?;
            for c in clauses {
                if c.as_object().is_none() {
                    return Err(err("each `subscribe` clause must be an object"));
                }
                m.subscribe.push(Subscription {
                    categories: string_list(c, "categories")?,
                    actions: string_list(c, "actions")?,
                    outcomes: string_list(c, "outcomes")?,
                });
            }
        }
        if let Some(ws) = v.get("windows_ms") {
            let ws = ws.as_array().ok_or_else(|| err("`windows_ms` must be an array"))?;
            for w in ws {
                m.windows_ms.push(w.as_i64().ok_or_else(|| err("`windows_ms` must hold integers"))?);
            }
        }
        m.validate()?;
        Ok(m)
    }
}

fn string_list(v: &Value, key: &str) -> Result<Vec<String>, ManifestError> {
    let err = || ManifestError(format!("`{key}` must be an array of strings"));
    match v.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|i| i.as_str().map(str::to_owned).ok_or_else(err)).collect(),
        Some(_) => Err(err()),
    }
}

/// Whether `name` is a field a rule of `kind` may declare (ABI.md, "Field names").
pub fn is_field_name(kind: Kind, name: &str) -> bool {
    match kind {
        Kind::Routing => ALERT_FIELDS.contains(&name),
        Kind::Detection => {
            EVENT_FIELDS.contains(&name)
                || GEO_FIELDS.contains(&name)
                || name == "details"
                || name.strip_prefix("details.").is_some_and(|p| p.split('.').all(|seg| !seg.is_empty()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest::detection("brute_force")
            .version("1.0.0")
            .description("Many failed logins from one \"ip\"")
            .severity(Severity::P2)
            .mitre(["T1110"])
            .fields(["ip", "user_id", "ip"])
            .subscribe(Subscription::action("login_failed"))
            .subscribe(Subscription::category("authorization").outcomes(["failure"]))
            .windows_ms([300_000, 3_600_000])
    }

    #[test]
    fn json_round_trip() {
        let m = sample();
        assert_eq!(m.fields, ["ip", "user_id"]);
        let text = m.to_json();
        assert!(text.contains(r#""subscribe":[{"categories":[],"actions":["login_failed"],"outcomes":[]}"#));
        assert_eq!(Manifest::from_json(&text).unwrap(), m);
        assert_eq!(m.longest_window_ms(), 3_600_000);
    }

    #[test]
    fn subscription_matching() {
        let m = sample();
        assert!(m.matches("authentication", "login_failed", "failure"));
        assert!(m.matches("authorization", "read", "failure"));
        assert!(!m.matches("authorization", "read", "success"));
        assert!(!m.matches("authentication", "login_success", ""));
        assert!(!Manifest::detection("x").matches("a", "b", "c"), "no clause offers nothing");
        assert!(Manifest::routing("r").matches("", "", ""));
    }

    #[test]
    fn validation() {
        assert!(sample().validate().is_ok());
        assert!(Manifest::detection("Bad-Name").validate().is_err());
        assert!(Manifest::detection("x").fields(["nope"]).validate().is_err());
        assert!(Manifest::detection("x").fields(["details."]).validate().is_err());
        assert!(Manifest::detection("x").fields(["details.a.b", "geo.lat", "details"]).validate().is_ok());
        assert!(Manifest::routing("x").fields(["severity", "rule"]).validate().is_ok());
        assert!(Manifest::routing("x").fields(["ip"]).validate().is_err());
        assert!(Manifest::detection("x").fields((0..33).map(|i| format!("details.f{i}"))).validate().is_err());
        assert!(Manifest::detection("x").windows_ms([0]).validate().is_err());
        assert!(Manifest::from_json(r#"{"name":"x","kind":"other"}"#).is_err());
        let minimal = Manifest::from_json(r#"{"name":"x","kind":"detection"}"#).unwrap();
        assert!(minimal.subscribe.is_empty());
    }
}
