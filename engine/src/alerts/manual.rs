//! Manual alerts (`POST /v1/alerts` from `api`): the request body, its checks, and the
//! alert raised like a detected one (silences and routing apply) but by a person.

use serde_json::{Value, json};
use vigil_sdk::Severity;

use super::raise::storable;
use super::{AlertError, AlertService};
use crate::store::alerts::MAX_EVENT_SEQS;
use crate::store::{AlertRow, AlertStatus};

/// A manual alert (`POST /v1/alerts`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualAlert {
    /// 1 to 512 bytes.
    pub title: String,
    /// P1..P4, in any case.
    pub severity: String,
    /// Dedup key (default: a fresh one, so each manual alert stands alone).
    pub dedup_key: Option<String>,
    /// Summary fields.
    #[serde(default)]
    pub fields: serde_json::Map<String, Value>,
    /// Event seqs it concerns (integers; `5.0` is read as 5, as JSON Schema does).
    #[serde(default, deserialize_with = "integers")]
    pub event_seqs: Vec<i64>,
    /// Suggested actions.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Free text, kept as `fields.description`.
    #[serde(default, alias = "message")]
    pub description: Option<String>,
}

/// A JSON number as an integer, where an integral float (`5.0`, `4.3e17`) counts as one, as
/// in JSON Schema, strictly inside the i64 range (past 2^53 a float is the integer it
/// names; a literal past the range rounds to +-2^63, which is refused, never clamped).
pub fn integral(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64().filter(|f| f.fract() == 0.0 && *f > i64::MIN as f64 && *f < i64::MAX as f64).map(|f| f as i64)
    })
}

/// A list of integers where an integral float (`5.0`) counts as an integer ([`integral`]).
fn integers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    use serde::Deserialize as _;
    use serde::de::Error as _;
    Vec::<serde_json::Number>::deserialize(d)?
        .iter()
        .map(|n| integral(n).ok_or_else(|| D::Error::custom(format!("{n} is not an integer seq"))))
        .collect()
}

impl AlertService {
    /// Raises a manual alert for `actor` (key id).
    pub async fn manual(&self, actor: &str, m: ManualAlert) -> Result<AlertRow, AlertError> {
        if m.title.trim().is_empty() || m.title.len() > 512 {
            return Err(AlertError::Invalid("`title` must be 1 to 512 bytes".into()));
        }
        // `Severity::parse` ignores (ASCII) case, as this endpoint always has.
        let Some(severity) = Severity::parse(&m.severity) else {
            return Err(AlertError::Invalid("`severity` must be P1, P2, P3 or P4".into()));
        };
        if m.event_seqs.iter().any(|s| *s < 1) {
            return Err(AlertError::Invalid("`event_seqs` are positive integers".into()));
        }
        if m.dedup_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 256) {
            return Err(AlertError::Invalid("`dedup_key` must be 1 to 256 bytes".into()));
        }
        if m.event_seqs.len() > MAX_EVENT_SEQS
            || m.actions.len() > 32
            || Value::Object(m.fields.clone()).to_string().len() > 16 * 1024
        {
            return Err(AlertError::Invalid(format!(
                "at most {MAX_EVENT_SEQS} event_seqs, 32 actions and 16 KiB of fields"
            )));
        }
        let mut fields = m.fields;
        if let Some(d) = m.description {
            if d.len() > 4096 {
                return Err(AlertError::Invalid("`description` is at most 4096 bytes".into()));
            }
            fields.insert("description".into(), Value::String(d));
        }
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let alert = AlertRow {
            rule: "manual".into(),
            rule_version: env!("CARGO_PKG_VERSION").into(),
            rule_sha256: String::new(),
            severity,
            title: storable(&m.title),
            dedup_key: storable(&m.dedup_key.unwrap_or_else(|| format!("manual:{}", uuid::Uuid::now_v7()))),
            status: AlertStatus::Open,
            count: 1,
            first_seen: now,
            last_seen: now,
            event_seqs: serde_json::to_string(&m.event_seqs).unwrap_or_else(|_| "[]".into()),
            fields: Value::Object(fields).to_string(),
            actions: serde_json::to_string(&m.actions).unwrap_or_else(|_| "[]".into()),
            created_at: now,
            receivers: "[]".into(),
            ..AlertRow::default()
        };
        let silences = self.active_silences(now).await?;
        let mut writes =
            vec![self.create(alert, &silences, now, "manual", actor, json!({"event": "MANUAL_ALERT_GENERATED"}))];
        self.commit(&mut writes).await?;
        Ok(writes.remove(0).alert)
    }
}

#[cfg(test)]
mod tests {
    use super::integral;

    /// An integral float with 17 significant digits names the integer exactly: serde_json's
    /// default float parsing could be one unit off (`4247470923423342.0` read as
    /// `...342.5`, refused as "not an integer"; schemathesis found it), so the workspace
    /// enables its `float_roundtrip` parsing.
    #[test]
    fn integral_floats_with_many_digits_are_their_integer() {
        for (text, want) in [
            ("4247470923423342.0", Some(4_247_470_923_423_342)),
            ("9007199254740993.0", Some(9_007_199_254_740_992)),
            ("1e3", Some(1000)),
            ("12", Some(12)),
            ("0.5", None),
            ("9.3e18", None),
        ] {
            let n: serde_json::Number = serde_json::from_str(text).unwrap();
            assert_eq!(integral(&n), want, "{text}");
        }
    }
}
