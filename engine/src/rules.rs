//! WebAssembly rules: the wasmtime host of `sdk/ABI.md`, and nothing else (L3: it imports
//! neither the store nor a service).
//!
//! `module` compiles and validates an uploaded module (ABI version, imports, exports,
//! manifest, a probing init) off the hot path; `abi` is the host side of the imports;
//! `instance` keeps one long-lived instance per rule version and evaluates batches;
//! `registry` holds the active rule set (swapped atomically with arc-swap), deploys,
//! deletes and quarantines. Events reach rules through `detect`, which owns the evaluation
//! thread; `deploy` records rule changes; decisions are admitted through [`DecisionGate`].

pub mod abi;
pub mod instance;
pub mod limits;
pub mod module;
pub mod registry;
pub mod sigma;

use serde_json::Value;

pub use registry::RuleRegistry;
pub use sigma::RuleFormat;

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
}

/// The policy the host asks before it accepts a rule's decision (`emit_decision`): the
/// runtime knows nothing of active decisions, their limits or the allowlist; `respond::Gate`
/// implements this over the `[decisions]` settings, the active set and the allowlist.
pub trait DecisionGate: Send + Sync + std::fmt::Debug {
    /// Whether `rule` may issue `decision`, given that it already issued `pending` in this
    /// call; why not if not.
    fn admit_decision(
        &self,
        rule: &str,
        decision: &crate::finding::EmittedDecision,
        pending: usize,
    ) -> Result<(), DecisionRefusal>;
    /// Counts a refusal (metrics, by its label).
    fn count_refusal(&self, refusal: &DecisionRefusal);
}

/// Why the gate refused a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRefusal {
    /// Label for logs and metrics (`scope`, `rule_cap`, `allowlisted`...).
    pub label: &'static str,
    /// Set when the refusal is the policy working as meant (the value is allowlisted), not
    /// a rule going past its limits: the refusal does not count towards a decision flood,
    /// and the decision goes out of the sandbox as a refused one so the alert it goes with
    /// says so, with this note (the allowlist entry).
    pub note: Option<serde_json::Value>,
}

/// The manifest type is the SDK's own (`vigil_sdk::Manifest`), so the host and rule authors
/// parse and validate manifests with the same code; the host adds its own checks on top
/// ([`validate_manifest`]).
pub use vigil_sdk::{Kind as RuleKind, Manifest, Subscription as Clause};

/// Longest window a rule may declare (31 days).
const MAX_WINDOW_MS: i64 = 31 * 86_400_000;

/// The SDK's manifest checks, plus the host's: every field resolves to a [`FieldPath`] and
/// windows stay within 31 days.
pub fn validate_manifest(m: &Manifest) -> Result<(), RuleError> {
    m.validate().map_err(|e| RuleError::Invalid(format!("manifest: {}", e.0)))?;
    if m.version.is_empty() || m.version.len() > 64 {
        return Err(RuleError::Invalid("manifest: version must be 1 to 64 bytes".into()));
    }
    for f in &m.fields {
        FieldPath::parse(f).map_err(|e| RuleError::Invalid(format!("manifest: field {f:?}: {e}")))?;
    }
    if m.windows_ms.iter().any(|w| *w > MAX_WINDOW_MS) {
        return Err(RuleError::Invalid("manifest: windows_ms must be at most 31 days".into()));
    }
    Ok(())
}

/// The manifest as JSON (for `GET /v1/rules`).
pub fn manifest_json(m: &Manifest) -> Value {
    serde_json::from_str(&m.to_json()).unwrap_or(Value::Null)
}

/// A field name resolved once per rule version, so reading an event never parses names:
/// most fields are a slot of the flat event (an index), the rest are read from the event
/// object (dotted `details` paths, and the alert fields of routing records).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldPath {
    /// A slot of [`crate::event::FlatEvent`].
    Slot(usize),
    /// A top-level member of `details` (`details.<key>`), read from the flat event.
    Detail(String),
    /// A top-level member without a slot.
    Top(String),
    /// A dotted path inside `details`.
    DetailsPath(Vec<String>),
}

impl FieldPath {
    /// Resolves a field name of the ABI.
    pub fn parse(name: &str) -> Result<Self, String> {
        if let Some(slot) = crate::event::flat_slot(name) {
            return Ok(Self::Slot(slot));
        }
        // The SDK's field lists are the one source of truth: event fields for detection
        // rules, alert fields for routing rules.
        if vigil_sdk::manifest::ALERT_FIELDS.contains(&name) {
            return Ok(Self::Top(name.into()));
        }
        if name.starts_with("geo.") {
            return Err("geo has country, city, lat, lon".into());
        }
        if let Some(path) = name.strip_prefix("details.") {
            let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
            if parts.iter().any(String::is_empty) || parts.len() > 16 {
                return Err("empty or too deep path".into());
            }
            if parts.len() == 1 {
                return Ok(Self::Detail(path.into()));
            }
            return Ok(Self::DetailsPath(parts));
        }
        Err("unknown field".into())
    }

    /// Whether the value is read straight from the flat event (no per-batch encoding).
    pub fn is_flat(&self) -> bool {
        matches!(self, Self::Slot(_) | Self::Detail(_))
    }

    /// The value bytes in the flat event, for the fields it holds (see [`Self::is_flat`]).
    #[inline]
    pub fn flat<'a>(&self, event: &'a crate::event::CommittedEvent) -> Option<&'a [u8]> {
        self.flat_span(event).map(|span| event.flat().at(span))
    }

    /// The value's span in the flat event's bytes, for the fields it holds.
    #[inline]
    pub fn flat_span(&self, event: &crate::event::CommittedEvent) -> Option<(u32, u32)> {
        match self {
            Self::Slot(slot) => event.flat().slot_span(*slot),
            Self::Detail(key) => event.flat().detail_span(key),
            _ => None,
        }
    }

    /// Appends the ABI byte form of this field of `event` to `out`; false when absent.
    pub fn encode(&self, event: &crate::event::CommittedEvent, out: &mut Vec<u8>) -> bool {
        let value = match self {
            Self::Slot(_) | Self::Detail(_) => return self.flat(event).map(|b| out.extend_from_slice(b)).is_some(),
            Self::Top(k) => event.event().get(k),
            Self::DetailsPath(parts) => {
                parts.iter().fold(event.event().get("details"), |v, p| v.and_then(|v| v.get(p)))
            }
        };
        match value.filter(|v| !v.is_null()) {
            Some(v) => {
                encode_value(v, out);
                true
            }
            None => false,
        }
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
        let mut canon = Vec::new();
        crate::event::canonical::write_value(&ev, &mut canon);
        let ev = crate::event::CommittedEvent::from_canon(1, canon);
        let read = |name: &str| {
            let mut out = Vec::new();
            FieldPath::parse(name).unwrap().encode(&ev, &mut out).then(|| String::from_utf8(out).unwrap())
        };
        assert_eq!(read("ip").as_deref(), Some("1.2.3.4"));
        assert_eq!(read("geo.lat").as_deref(), Some("40.5"));
        assert_eq!(read("details.a.b").as_deref(), Some("[1,2]"));
        assert_eq!(read("details").as_deref(), Some(r#"{"a":{"b":[1,2]},"n":null}"#));
        assert_eq!(read("details.n"), None);
        assert_eq!(read("user_id"), None);
        assert!(FieldPath::parse("geo.alt").is_err());
        assert!(FieldPath::parse("password").is_err());
        assert!(FieldPath::parse("details..x").is_err());
        assert_eq!(FieldPath::parse("action").unwrap(), FieldPath::Slot(crate::event::SLOT_ACTION));
        assert_eq!(read("details.n"), None);
        assert!(FieldPath::parse("details.a").unwrap().is_flat());
        assert_eq!(read("details.a").as_deref(), Some(r#"{"b":[1,2]}"#));
    }
}
