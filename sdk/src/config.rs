//! Rule configuration: the JSON object the host hands to `vigil_init`.
//!
//! Parsed once at init with [`crate::json`]; rules read typed keys with defaults
//! (`config.i64_or("threshold", 5)?`) and may refuse unknown keys with
//! [`Config::deny_unknown`]. An error refuses the deploy, with the message logged.

use crate::decision::DecisionKind;
use crate::json::Value;
use crate::time::{DAY_MS, MINUTE_MS};

/// Longest decision duration a rule's configuration may ask for
/// ([`Config::decision_minutes_or`]), in minutes: 30 days. The server's own policy
/// (`[decisions] max_rule_duration_secs`) may refuse less.
pub const MAX_DECISION_MINUTES: i64 = 30 * DAY_MS / MINUTE_MS;

/// The configuration object of a rule (`{}` when none was given).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    entries: Vec<(String, Value)>,
}

impl Config {
    /// An empty configuration.
    pub fn empty() -> Config {
        Config::default()
    }

    /// Parses a JSON object; empty or blank text is `{}`.
    pub fn parse(text: &str) -> Result<Config, String> {
        if text.trim().is_empty() {
            return Ok(Config::empty());
        }
        match Value::parse(text) {
            Ok(Value::Object(entries)) => Ok(Config { entries }),
            Ok(_) => Err("rule configuration must be a JSON object".to_owned()),
            Err(e) => Err(format!("rule configuration: {e}")),
        }
    }

    /// The value of `key` (nested values are kept whole).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v).filter(|v| !v.is_null())
    }

    /// The keys present, in document order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Refuses keys not in `known` (the rule equivalent of `deny_unknown_fields`).
    pub fn deny_unknown(&self, known: &[&str]) -> Result<(), String> {
        match self.keys().find(|k| !known.contains(k)) {
            Some(k) => Err(format!("unknown configuration key `{k}` (known: {})", known.join(", "))),
            None => Ok(()),
        }
    }

    /// An integer key, or `default` when absent; an error when present with another type.
    pub fn i64_or(&self, key: &str, default: i64) -> Result<i64, String> {
        self.typed(key, default, Value::as_i64, "an integer")
    }

    /// A number key, or `default` when absent.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, String> {
        self.typed(key, default, Value::as_f64, "a number")
    }

    /// A boolean key, or `default` when absent.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, String> {
        self.typed(key, default, Value::as_bool, "a boolean")
    }

    /// A string key, or `default` when absent.
    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> Result<&'a str, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_str().ok_or_else(|| type_error(key, "a string", v)),
        }
    }

    /// A list of strings (a JSON array of strings, or one comma-separated string).
    pub fn strings_or(&self, key: &str, default: &[&str]) -> Result<Vec<String>, String> {
        match self.get(key) {
            None => Ok(default.iter().map(|s| (*s).to_owned()).collect()),
            Some(Value::String(s)) => {
                Ok(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            }
            Some(v @ Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| type_error(key, "a list of strings", v)))
                .collect(),
            Some(v) => Err(type_error(key, "a list of strings", v)),
        }
    }

    /// A rule's automated-response switch: `"off"` (`None`) or the name of one of the
    /// `allowed` kinds (`"block"`, `"throttle"`, `"require_mfa"`, `"lock"`), `default` when
    /// absent. Any other text is an error naming what is accepted.
    pub fn decision_or(
        &self,
        key: &str,
        default: &str,
        allowed: &[DecisionKind],
    ) -> Result<Option<DecisionKind>, String> {
        let name = self.str_or(key, default)?;
        if name == "off" {
            return Ok(None);
        }
        match DecisionKind::parse(name).filter(|k| allowed.contains(k)) {
            Some(kind) => Ok(Some(kind)),
            None => {
                let accepted: Vec<&str> = allowed.iter().map(|k| k.as_str()).chain(["off"]).collect();
                Err(format!("{key} must be one of {}, not {name:?}", accepted.join(", ")))
            }
        }
    }

    /// A decision duration given in minutes (1 to [`MAX_DECISION_MINUTES`]), `default`
    /// when absent; returned in ms.
    pub fn decision_minutes_or(&self, key: &str, default: i64) -> Result<i64, String> {
        let minutes = self.i64_or(key, default)?;
        if !(1..=MAX_DECISION_MINUTES).contains(&minutes) {
            return Err(format!("{key} must be 1 to {MAX_DECISION_MINUTES} (30 days), not {minutes}"));
        }
        Ok(minutes * MINUTE_MS)
    }

    fn typed<T>(&self, key: &str, default: T, get: impl Fn(&Value) -> Option<T>, what: &str) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => get(v).ok_or_else(|| type_error(key, what, v)),
        }
    }
}

fn type_error(key: &str, what: &str, got: &Value) -> String {
    format!("configuration key `{key}` must be {what}, got {got}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_switches_and_durations() {
        use DecisionKind::{Block, Lock, RequireMfa, Throttle};
        let c = Config::parse(r#"{"a": "lock", "b": "off", "c": "throttle", "d": 5, "m": 90, "z": 0}"#).unwrap();
        assert_eq!(c.decision_or("a", "off", &[RequireMfa, Lock]), Ok(Some(Lock)));
        assert_eq!(c.decision_or("b", "require_mfa", &[RequireMfa]), Ok(None));
        assert_eq!(c.decision_or("missing", "require_mfa", &[RequireMfa]), Ok(Some(RequireMfa)));
        assert_eq!(c.decision_or("missing", "off", &[Block]), Ok(None));
        let err = c.decision_or("c", "off", &[Block, Lock]).unwrap_err();
        assert_eq!(err, r#"c must be one of block, lock, off, not "throttle""#);
        assert!(c.decision_or("d", "off", &[Throttle]).unwrap_err().contains("must be a string"));
        assert_eq!(c.decision_minutes_or("m", 30), Ok(90 * MINUTE_MS));
        assert_eq!(c.decision_minutes_or("missing", 30), Ok(30 * MINUTE_MS));
        assert!(c.decision_minutes_or("z", 30).unwrap_err().contains("1 to 43200"));
        let long = Config::parse(r#"{"m": 43201}"#).unwrap();
        assert!(long.decision_minutes_or("m", 30).is_err());
    }

    #[test]
    fn typed_keys_with_defaults() {
        let c =
            Config::parse(r#"{"threshold": 5, "name": "x", "flag": true, "ratio": 0.5, "nested": {"a": 1}}"#).unwrap();
        assert_eq!(c.i64_or("threshold", 1), Ok(5));
        assert_eq!(c.i64_or("missing", 7), Ok(7));
        assert_eq!(c.str_or("name", "y"), Ok("x"));
        assert_eq!(c.bool_or("flag", false), Ok(true));
        assert_eq!(c.f64_or("ratio", 1.0), Ok(0.5));
        assert_eq!(c.get("nested").map(Value::to_json).as_deref(), Some(r#"{"a":1}"#));
        assert!(c.i64_or("name", 1).unwrap_err().contains("must be an integer"));
        assert!(c.deny_unknown(&["threshold"]).unwrap_err().contains("`name`"));
    }

    #[test]
    fn empty_and_invalid_configs() {
        assert_eq!(Config::parse("").unwrap(), Config::empty());
        assert_eq!(Config::parse("{}").unwrap(), Config::empty());
        assert!(Config::parse("[1]").is_err());
        assert!(Config::parse("{").is_err());
    }

    #[test]
    fn string_lists() {
        let c = Config::parse(r#"{"a": "x, y", "b": ["z"], "c": 1}"#).unwrap();
        assert_eq!(c.strings_or("a", &[]).unwrap(), ["x", "y"]);
        assert_eq!(c.strings_or("b", &[]).unwrap(), ["z"]);
        assert_eq!(c.strings_or("d", &["w"]).unwrap(), ["w"]);
        assert!(c.strings_or("c", &[]).is_err());
    }
}
