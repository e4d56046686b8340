//! WebAssembly rules: the wasmtime host of `sdk/ABI.md`.
//!
//! `module` compiles and validates an uploaded module (ABI version, imports, exports,
//! manifest, a probing init) off the hot path; `abi` is the host side of the imports;
//! `instance` keeps one long-lived instance per rule version and evaluates batches;
//! `registry` holds the active rule set (swapped atomically with arc-swap), deploys,
//! deletes and quarantines; `watch` polls `--rules-dir`. Events reach rules through
//! `detect`, which owns the evaluation thread.

pub mod abi;
pub mod instance;
pub mod module;
pub mod registry;
pub mod watch;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use registry::RuleRegistry;

/// Errors of the rule runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The module was refused at deploy (clear message for the uploader).
    #[error("{0}")]
    Invalid(String),
    /// The rule does not exist.
    #[error("no rule named {0}")]
    NotFound(String),
    /// A runtime fault (trap, timeout, memory cap, bad return).
    #[error("rule fault: {0}")]
    Fault(String),
    /// Storage failed while recording a rule event.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Kind of rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Sees events, emits alerts.
    Detection,
    /// Sees alerts, names receivers.
    Routing,
}

/// One subscription clause: every non-empty list must contain the event's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Clause {
    /// Categories.
    pub categories: Vec<String>,
    /// Actions.
    pub actions: Vec<String>,
    /// Outcomes.
    pub outcomes: Vec<String>,
}

impl Clause {
    /// Whether an event with these values matches.
    pub fn matches(&self, category: &str, action: &str, outcome: &str) -> bool {
        let ok = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        ok(&self.categories, category) && ok(&self.actions, action) && ok(&self.outcomes, outcome)
    }
}

/// The manifest a rule exports (see `sdk/ABI.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Rule name, `[a-z0-9_]{1,64}`.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Kind.
    pub kind: RuleKind,
    /// What it detects.
    #[serde(default)]
    pub description: String,
    /// Default severity P1..P4.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// MITRE ATT&CK technique ids.
    #[serde(default)]
    pub mitre: Vec<String>,
    /// Fields written into each record, in order.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Subscription clauses (any may match).
    #[serde(default)]
    pub subscribe: Vec<Clause>,
    /// Windows the rule uses, ms (the longest drives replay at start).
    #[serde(default)]
    pub windows_ms: Vec<i64>,
}

fn default_severity() -> String {
    "P3".into()
}

/// Most fields a rule may declare.
pub const MAX_FIELDS: usize = 32;

impl Manifest {
    /// Checks the manifest's own consistency.
    pub fn validate(&self) -> Result<(), RuleError> {
        let bad = |m: String| Err(RuleError::Invalid(format!("manifest: {m}")));
        if !(1..=64).contains(&self.name.len())
            || !self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return bad(format!("name {:?} must match [a-z0-9_]{{1,64}}", self.name));
        }
        if self.version.is_empty() || self.version.len() > 64 {
            return bad("version must be 1 to 64 bytes".into());
        }
        if !matches!(self.severity.as_str(), "P1" | "P2" | "P3" | "P4") {
            return bad(format!("severity {:?} must be P1..P4", self.severity));
        }
        if self.fields.len() > MAX_FIELDS {
            return bad(format!("{} fields declared (at most {MAX_FIELDS})", self.fields.len()));
        }
        for f in &self.fields {
            FieldPath::parse(f).map_err(|m| RuleError::Invalid(format!("manifest: field {f:?}: {m}")))?;
        }
        if self.windows_ms.iter().any(|w| *w <= 0 || *w > 31 * 86_400_000) {
            return bad("windows_ms must be between 1 ms and 31 days".into());
        }
        Ok(())
    }

    /// Longest declared window, ms.
    pub fn longest_window_ms(&self) -> i64 {
        self.windows_ms.iter().copied().max().unwrap_or(0)
    }

    /// Whether any clause matches.
    pub fn wants(&self, category: &str, action: &str, outcome: &str) -> bool {
        self.subscribe.iter().any(|c| c.matches(category, action, outcome))
    }
}

const TOP_LEVEL: &[&str] = &[
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
    // routing rules read alerts
    "rule",
    "title",
    "dedup_key",
    "status",
    "count",
];

/// A field name resolved once, so encoding an event does not parse names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldPath {
    /// A top-level member.
    Top(String),
    /// `geo.<member>`.
    Geo(String),
    /// The whole `details` object.
    Details,
    /// A dotted path inside `details`.
    DetailsPath(Vec<String>),
}

impl FieldPath {
    /// Resolves a field name of the ABI.
    pub fn parse(name: &str) -> Result<Self, String> {
        if TOP_LEVEL.contains(&name) {
            return Ok(Self::Top(name.into()));
        }
        if let Some(member) = name.strip_prefix("geo.") {
            return match member {
                "country" | "city" | "lat" | "lon" => Ok(Self::Geo(member.into())),
                _ => Err("geo has country, city, lat, lon".into()),
            };
        }
        if name == "details" {
            return Ok(Self::Details);
        }
        if let Some(path) = name.strip_prefix("details.") {
            let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
            if parts.iter().any(String::is_empty) || parts.len() > 16 {
                return Err("empty or too deep path".into());
            }
            return Ok(Self::DetailsPath(parts));
        }
        Err("unknown field".into())
    }

    /// The value of this field in an event, if present and not null.
    pub fn lookup<'a>(&self, event: &'a Map<String, Value>) -> Option<&'a Value> {
        let v = match self {
            Self::Top(k) => event.get(k),
            Self::Geo(k) => event.get("geo").and_then(|g| g.get(k)),
            Self::Details => event.get("details"),
            Self::DetailsPath(parts) => parts.iter().try_fold(event.get("details")?, |v, p| v.get(p)),
        };
        v.filter(|v| !v.is_null())
    }
}

/// Appends the ABI byte form of a value: strings raw, everything else compact JSON.
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::String(s) => out.extend_from_slice(s.as_bytes()),
        other => serde_json::to_writer(out, other).expect("writing JSON to a Vec cannot fail"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_paths_resolve_and_read_values() {
        let ev = json!({"ip": "1.2.3.4", "geo": {"lat": 40.5}, "details": {"a": {"b": [1, 2]}, "n": null}});
        let ev = ev.as_object().unwrap();
        let read = |name: &str| {
            let mut out = Vec::new();
            FieldPath::parse(name).unwrap().lookup(ev).map(|v| {
                encode_value(v, &mut out);
                String::from_utf8(out).unwrap()
            })
        };
        assert_eq!(read("ip").as_deref(), Some("1.2.3.4"));
        assert_eq!(read("geo.lat").as_deref(), Some("40.5"));
        assert_eq!(read("details.a.b").as_deref(), Some("[1,2]"));
        assert_eq!(read("details.n"), None);
        assert_eq!(read("user_id"), None);
        assert!(FieldPath::parse("geo.alt").is_err());
        assert!(FieldPath::parse("password").is_err());
        assert!(FieldPath::parse("details..x").is_err());
    }

    #[test]
    fn clauses_match_on_every_non_empty_list() {
        let c = Clause { categories: vec!["authorization".into()], actions: vec![], outcomes: vec!["failure".into()] };
        assert!(c.matches("authorization", "anything", "failure"));
        assert!(!c.matches("authorization", "anything", "success"));
        assert!(!c.matches("authentication", "anything", "failure"));
    }
}
