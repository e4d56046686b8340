//! The alert a detection rule emits: builder, JSON form (ABI.md, "Alert JSON") and reader.
//!
//! Rules build one with [`Alert::new`] and hand it to `Context::emit`; the host (and
//! [`crate::testing`]) read it back with [`Alert::from_json`], which enforces the size cap.

use std::fmt;

use crate::json::Value;
use crate::severity::Severity;

/// Largest alert JSON the host accepts, in bytes.
pub const MAX_ALERT_BYTES: usize = 16 * 1024;

/// An alert: title, severity, dedup key, summary fields, triggering event seqs, actions.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Alert {
    /// One line for humans.
    pub title: String,
    /// `None`: the manifest's default severity.
    pub severity: Option<Severity>,
    /// Alerts with the same key are grouped; `None`: the title.
    pub dedup_key: Option<String>,
    /// Summary fields, in order.
    pub fields: Vec<(String, Value)>,
    /// Seqs of the events that triggered it (the current event when left empty).
    pub event_seqs: Vec<i64>,
    /// Suggested actions for the responder.
    pub actions: Vec<String>,
}

/// Why an alert JSON is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertError(pub String);

impl fmt::Display for AlertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid alert: {}", self.0)
    }
}

impl std::error::Error for AlertError {}

impl Alert {
    /// A new alert with a title.
    pub fn new(title: impl Into<String>) -> Alert {
        Alert {
            title: title.into(),
            severity: None,
            dedup_key: None,
            fields: Vec::new(),
            event_seqs: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// Sets the severity.
    pub fn severity(mut self, severity: Severity) -> Alert {
        self.severity = Some(severity);
        self
    }

    /// Sets the dedup key.
    pub fn dedup_key(mut self, key: impl Into<String>) -> Alert {
        self.dedup_key = Some(key.into());
        self
    }

    /// Adds a summary field (strings, numbers, booleans, `Option`s, `Vec`s, [`Value`]s).
    /// `None` and null values are left out.
    pub fn field(mut self, name: &str, value: impl Into<Value>) -> Alert {
        let value = value.into();
        if !value.is_null() {
            self.fields.push((name.to_owned(), value));
        }
        self
    }

    /// Adds a triggering event seq.
    pub fn event_seq(mut self, seq: i64) -> Alert {
        self.event_seqs.push(seq);
        self
    }

    /// Adds triggering event seqs.
    pub fn event_seqs(mut self, seqs: impl IntoIterator<Item = i64>) -> Alert {
        self.event_seqs.extend(seqs);
        self
    }

    /// Adds a suggested action.
    pub fn action(mut self, text: impl Into<String>) -> Alert {
        self.actions.push(text.into());
        self
    }

    /// The value of summary field `name`.
    pub fn field_value(&self, name: &str) -> Option<&Value> {
        self.fields.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The severity, or `default` (the manifest's) when unset.
    pub fn severity_or(&self, default: Severity) -> Severity {
        self.severity.unwrap_or(default)
    }

    /// The dedup key, or the title when unset.
    pub fn effective_dedup_key(&self) -> &str {
        self.dedup_key.as_deref().unwrap_or(&self.title)
    }

    /// The alert JSON (unset severity and dedup key are left out).
    pub fn to_json(&self) -> String {
        let mut o = vec![("title".to_owned(), Value::from(&self.title))];
        if let Some(s) = self.severity {
            o.push(("severity".into(), Value::from(s.as_str())));
        }
        if let Some(k) = &self.dedup_key {
            o.push(("dedup_key".into(), Value::from(k)));
        }
        o.push(("fields".into(), Value::Object(self.fields.clone())));
        o.push(("event_seqs".into(), Value::Array(self.event_seqs.iter().map(|s| Value::from(*s)).collect())));
        o.push(("actions".into(), Value::Array(self.actions.iter().map(Value::from).collect())));
        Value::Object(o).to_json()
    }

    /// Reads alert JSON, refusing more than [`MAX_ALERT_BYTES`], a missing or empty title, a
    /// severity other than `P1`..`P4` and ill-typed members.
    pub fn from_json(text: &str) -> Result<Alert, AlertError> {
        let err = |m: &str| AlertError(m.to_owned());
        if text.len() > MAX_ALERT_BYTES {
            return Err(AlertError(format!("{} bytes, at most {MAX_ALERT_BYTES}", text.len())));
        }
        let v = Value::parse(text).map_err(|e| AlertError(e.to_string()))?;
        let title = v.get("title").and_then(Value::as_str).filter(|t| !t.is_empty());
        let mut alert = Alert::new(title.ok_or_else(|| err("`title` must be a non-empty string"))?);
        match v.get("severity") {
            None | Some(Value::Null) => {}
            Some(s) => {
                let s = s.as_str().and_then(Severity::parse);
                alert.severity = Some(s.ok_or_else(|| err("`severity` must be P1..P4"))?);
            }
        }
        match v.get("dedup_key") {
            None | Some(Value::Null) => {}
            Some(Value::String(k)) => alert.dedup_key = Some(k.clone()),
            Some(_) => return Err(err("`dedup_key` must be a string")),
        }
        match v.get("fields") {
            None | Some(Value::Null) => {}
            Some(Value::Object(f)) => alert.fields = f.clone(),
            Some(_) => return Err(err("`fields` must be an object")),
        }
        if let Some(seqs) = v.get("event_seqs").filter(|s| !s.is_null()) {
            let seqs = seqs.as_array().ok_or_else(|| err("`event_seqs` must be an array"))?;
            for s in seqs {
                alert.event_seqs.push(s.as_i64().ok_or_else(|| err("`event_seqs` must hold integers"))?);
            }
        }
        if let Some(actions) = v.get("actions").filter(|a| !a.is_null()) {
            let actions = actions.as_array().ok_or_else(|| err("`actions` must be an array"))?;
            for a in actions {
                alert.actions.push(a.as_str().ok_or_else(|| err("`actions` must hold strings"))?.to_owned());
            }
        }
        Ok(alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_with_escaping() {
        let a = Alert::new("Brute force from \"1.2.3.4\"")
            .severity(Severity::P2)
            .dedup_key("ip:1.2.3.4")
            .field("ip", "1.2.3.4")
            .field("count", 6)
            .field("ratio", 0.5)
            .field("absent", None::<&str>)
            .event_seqs([12, 15])
            .action("Block IP at the edge");
        let text = a.to_json();
        assert_eq!(
            text,
            r#"{"title":"Brute force from \"1.2.3.4\"","severity":"P2","dedup_key":"ip:1.2.3.4","fields":{"ip":"1.2.3.4","count":6,"ratio":0.5},"event_seqs":[12,15],"actions":["Block IP at the edge"]}"#
        );
        assert_eq!(Alert::from_json(&text).unwrap(), a);
        assert_eq!(a.field_value("count").and_then(Value::as_i64), Some(6));
    }

    #[test]
    fn defaults_and_refusals() {
        let a = Alert::from_json(r#"{"title":"t"}"#).unwrap();
        assert_eq!(a.severity_or(Severity::P3), Severity::P3);
        assert_eq!(a.effective_dedup_key(), "t");
        assert!(Alert::from_json(r#"{"title":""}"#).is_err());
        assert!(Alert::from_json(r#"{"title":"t","severity":"P9"}"#).is_err());
        assert!(Alert::from_json(r#"{"title":"t","event_seqs":["x"]}"#).is_err());
        let huge = Alert::new("t").field("blob", "x".repeat(MAX_ALERT_BYTES)).to_json();
        assert!(Alert::from_json(&huge).is_err());
    }
}
