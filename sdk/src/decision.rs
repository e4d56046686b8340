//! The decision a detection rule issues (ABI 1.2): builder, JSON form (ABI.md, "Decision
//! JSON") and reader.
//!
//! A decision is an automated response the apps' bouncers enforce for a while: block,
//! throttle, require MFA or lock one ip, user, API key, session or organization. Rules build
//! one with [`Decision::new`] (or [`Decision::block`], [`Decision::throttle`],
//! [`Decision::require_mfa`], [`Decision::lock`]) and hand it to `Context::decide`; the host
//! (and [`crate::testing`]) read it back with [`Decision::from_json`], which applies the
//! host's validation. A decision usually goes with an alert the same rule raised
//! ([`Decision::alert`] names that alert's dedup key), so a responder sees why it was taken
//! and can lift it.
//!
//! ```
//! use vigil_sdk::{Decision, DecisionKind, Scope};
//!
//! let d = Decision::block(Scope::Ip, "203.0.113.7")
//!     .duration("30m")
//!     .reason("21 failed logins from 203.0.113.7 in 1 hour")
//!     .alert("ip:203.0.113.7:1h")
//!     .event_seqs([12, 15]);
//! assert_eq!(d.kind, DecisionKind::Block);
//! assert_eq!(d.duration_ms, 1_800_000);
//! assert_eq!(Decision::from_json(&d.to_json()), Ok(d));
//! ```

use std::fmt;

use crate::json::Value;
use crate::time::HOUR_MS;
use crate::time::IntoWindowMs;

/// Largest decision JSON the host accepts, in bytes.
pub const MAX_DECISION_BYTES: usize = 4 * 1024;
/// Longest `value`, in characters.
pub const MAX_VALUE_CHARS: usize = 256;
/// Longest `reason`, in characters.
pub const MAX_REASON_CHARS: usize = 1024;
/// Shortest decision, in ms.
pub const MIN_DURATION_MS: i64 = 1000;
/// Most `event_seqs` a decision may name.
pub const MAX_DECISION_SEQS: usize = 100;
/// The duration a [`Decision`] built without [`Decision::duration`] gets: one hour.
pub const DEFAULT_DURATION_MS: i64 = HOUR_MS;

/// What a decision applies to; its value names one of them (an address, a user id...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A client address (`ip`).
    Ip,
    /// A user id (`user`).
    User,
    /// An API key id (`api_key`).
    ApiKey,
    /// A session id (`session`).
    Session,
    /// An organization (tenant) id (`organization`).
    Organization,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [Scope::Ip, Scope::User, Scope::ApiKey, Scope::Session, Scope::Organization];

    /// Its name in decision JSON: `ip`, `user`, `api_key`, `session`, `organization`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Ip => "ip",
            Scope::User => "user",
            Scope::ApiKey => "api_key",
            Scope::Session => "session",
            Scope::Organization => "organization",
        }
    }

    /// Parses a scope name (exactly as [`Scope::as_str`] writes it, as the host does).
    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a decision asks the app to do (ABI.md and the bouncer's enforcement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionKind {
    /// Refuse the requests (`block`: 403).
    Block,
    /// Slow the requests down (`throttle`: 429 with `Retry-After`).
    Throttle,
    /// Ask for a second factor (`require_mfa`: the app decides how).
    RequireMfa,
    /// Lock the account (`lock`: 403).
    Lock,
}

impl DecisionKind {
    /// Every kind.
    pub const ALL: [DecisionKind; 4] =
        [DecisionKind::Block, DecisionKind::Throttle, DecisionKind::RequireMfa, DecisionKind::Lock];

    /// Its name in decision JSON: `block`, `throttle`, `require_mfa`, `lock`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Block => "block",
            DecisionKind::Throttle => "throttle",
            DecisionKind::RequireMfa => "require_mfa",
            DecisionKind::Lock => "lock",
        }
    }

    /// Parses a kind name (exactly as [`DecisionKind::as_str`] writes it, as the host does).
    pub fn parse(text: &str) -> Option<DecisionKind> {
        DecisionKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision: what (scope and value), which response (kind), for how long, why, the alert
/// it goes with and the events that triggered it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Decision {
    /// What it applies to.
    pub scope: Scope,
    /// The ip, user id, API key id, session id or organization id: 1 to 256 bytes, no
    /// control characters.
    pub value: String,
    /// What the app should do.
    pub kind: DecisionKind,
    /// How long it stands, in ms: at least 1000. [`DEFAULT_DURATION_MS`] (one hour) unless
    /// set with [`Decision::duration`]; the host refuses more than its configured maximum
    /// (`[decisions] max_rule_duration_secs`, 24 hours by default).
    pub duration_ms: i64,
    /// Why, for the people and apps who see it: 1 to 1024 bytes. Required: a decision
    /// built without [`Decision::reason`] is refused as invalid.
    pub reason: String,
    /// The dedup key of the alert it goes with (raised by the same rule, in the same batch
    /// or still open); `None`: a decision that stands alone.
    pub dedup_key: Option<String>,
    /// Seqs of the events that triggered it, at most 100 (the current event when left
    /// empty).
    pub event_seqs: Vec<i64>,
}

/// Why a decision JSON is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionError(pub String);

impl fmt::Display for DecisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid decision: {}", self.0)
    }
}

impl std::error::Error for DecisionError {}

/// Checks a reason as [`Decision::validate`] does (1 to 1024 characters, no NUL); the
/// host applies it to the reason a person gives for lifting a decision too.
pub fn check_reason(reason: &str) -> Result<(), DecisionError> {
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(DecisionError(format!("`reason` is required: 1 to {MAX_REASON_CHARS} characters")));
    }
    if reason.contains('\0') {
        return Err(DecisionError("`reason` must not contain NUL".to_owned()));
    }
    Ok(())
}

impl Decision {
    /// A decision of `kind` on `value` of `scope`, lasting [`DEFAULT_DURATION_MS`] (one hour)
    /// until [`Decision::duration`] says otherwise. Give it a [`Decision::reason`].
    pub fn new(scope: Scope, value: impl Into<String>, kind: DecisionKind) -> Decision {
        Decision {
            scope,
            value: value.into(),
            kind,
            duration_ms: DEFAULT_DURATION_MS,
            reason: String::new(),
            dedup_key: None,
            event_seqs: Vec::new(),
        }
    }

    /// A [`DecisionKind::Block`] decision.
    pub fn block(scope: Scope, value: impl Into<String>) -> Decision {
        Decision::new(scope, value, DecisionKind::Block)
    }

    /// A [`DecisionKind::Throttle`] decision.
    pub fn throttle(scope: Scope, value: impl Into<String>) -> Decision {
        Decision::new(scope, value, DecisionKind::Throttle)
    }

    /// A [`DecisionKind::RequireMfa`] decision.
    pub fn require_mfa(scope: Scope, value: impl Into<String>) -> Decision {
        Decision::new(scope, value, DecisionKind::RequireMfa)
    }

    /// A [`DecisionKind::Lock`] decision.
    pub fn lock(scope: Scope, value: impl Into<String>) -> Decision {
        Decision::new(scope, value, DecisionKind::Lock)
    }

    /// Sets how long it stands: ms (`1_800_000`), a duration text (`"30m"`, `"1h"`) or a
    /// [`std::time::Duration`]. Panics on an unparsable text (a bug in the rule, caught by
    /// its tests); less than 1 s is refused as invalid when emitted.
    pub fn duration(mut self, duration: impl IntoWindowMs) -> Decision {
        self.duration_ms = duration.window_ms();
        self
    }

    /// Sets the reason (required).
    pub fn reason(mut self, text: impl Into<String>) -> Decision {
        self.reason = text.into();
        self
    }

    /// Ties it to the alert with dedup key `dedup_key` that the same rule raised (in the
    /// same call or batch, or still open).
    pub fn alert(mut self, dedup_key: impl Into<String>) -> Decision {
        self.dedup_key = Some(dedup_key.into());
        self
    }

    /// Adds a triggering event seq.
    pub fn event_seq(mut self, seq: i64) -> Decision {
        self.event_seqs.push(seq);
        self
    }

    /// Adds triggering event seqs (at most 100 in all: more is refused as invalid).
    pub fn event_seqs(mut self, seqs: impl IntoIterator<Item = i64>) -> Decision {
        self.event_seqs.extend(seqs);
        self
    }

    /// Checks the rules of ABI.md "Decision JSON" on the fields, as the host does: `value`
    /// 1 to 256 characters without control characters, `duration_ms` at least 1000,
    /// `reason` 1 to 1024 characters without NUL, at most 100 `event_seqs`.
    pub fn validate(&self) -> Result<(), DecisionError> {
        let err = |m: &str| Err(DecisionError(m.to_owned()));
        if self.value.is_empty() || self.value.chars().count() > MAX_VALUE_CHARS {
            return Err(DecisionError(format!("`value` must be 1 to {MAX_VALUE_CHARS} characters")));
        }
        if self.value.chars().any(char::is_control) {
            return err("`value` must not contain control characters");
        }
        if self.duration_ms < MIN_DURATION_MS {
            return Err(DecisionError(format!("`duration_ms` must be at least {MIN_DURATION_MS}")));
        }
        check_reason(&self.reason)?;
        if self.event_seqs.len() > MAX_DECISION_SEQS {
            return Err(DecisionError(format!("at most {MAX_DECISION_SEQS} `event_seqs`")));
        }
        Ok(())
    }

    /// The decision JSON (an unset dedup key is left out). Written whatever the fields
    /// hold: the host (and [`Decision::from_json`]) judge it.
    pub fn to_json(&self) -> String {
        let mut o = vec![
            ("scope".to_owned(), Value::from(self.scope.as_str())),
            ("value".to_owned(), Value::from(&self.value)),
            ("kind".to_owned(), Value::from(self.kind.as_str())),
            ("duration_ms".to_owned(), Value::from(self.duration_ms)),
            ("reason".to_owned(), Value::from(&self.reason)),
        ];
        if let Some(k) = &self.dedup_key {
            o.push(("dedup_key".into(), Value::from(k)));
        }
        o.push(("event_seqs".into(), Value::Array(self.event_seqs.iter().map(|s| Value::from(*s)).collect())));
        Value::Object(o).to_json()
    }

    /// Reads decision JSON with the host's validation: at most [`MAX_DECISION_BYTES`], an
    /// object with `scope`, `value`, `kind`, `duration_ms` (an integer) and `reason`, all
    /// required, an optional string `dedup_key`, an optional array of integers
    /// `event_seqs`, and the rules of [`Decision::validate`]. Other members are ignored.
    pub fn from_json(text: &str) -> Result<Decision, DecisionError> {
        let err = |m: &str| DecisionError(m.to_owned());
        if text.len() > MAX_DECISION_BYTES {
            return Err(DecisionError(format!("{} bytes, at most {MAX_DECISION_BYTES}", text.len())));
        }
        let v = Value::parse(text).map_err(|e| DecisionError(e.to_string()))?;
        if v.as_object().is_none() {
            return Err(err("a decision must be a JSON object"));
        }
        let text_member = |name: &str| v.get(name).and_then(Value::as_str);
        let scope = text_member("scope").and_then(Scope::parse);
        let scope = scope.ok_or_else(|| err("`scope` must be ip, user, api_key, session or organization"))?;
        let kind = text_member("kind").and_then(DecisionKind::parse);
        let kind = kind.ok_or_else(|| err("`kind` must be block, throttle, require_mfa or lock"))?;
        let value = text_member("value").ok_or_else(|| err("`value` must be a string"))?;
        let reason = text_member("reason").ok_or_else(|| err("`reason` must be a string"))?;
        let duration_ms = v.get("duration_ms").and_then(integer);
        let duration_ms = duration_ms.ok_or_else(|| err("`duration_ms` must be an integer"))?;
        let mut decision = Decision::new(scope, value, kind).duration(duration_ms).reason(reason);
        match v.get("dedup_key") {
            None | Some(Value::Null) => {}
            Some(Value::String(k)) => decision.dedup_key = Some(k.clone()),
            Some(_) => return Err(err("`dedup_key` must be a string")),
        }
        if let Some(seqs) = v.get("event_seqs").filter(|s| !s.is_null()) {
            let seqs = seqs.as_array().ok_or_else(|| err("`event_seqs` must be an array"))?;
            if seqs.len() > MAX_DECISION_SEQS {
                return Err(DecisionError(format!("at most {MAX_DECISION_SEQS} `event_seqs`")));
            }
            for s in seqs {
                decision.event_seqs.push(integer(s).ok_or_else(|| err("`event_seqs` must hold integers"))?);
            }
        }
        decision.validate()?;
        Ok(decision)
    }
}

/// A JSON integer: a number written without fraction or exponent (`1800000`, not
/// `1.8e6`), as the host's JSON reader takes it.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_with_escaping() {
        let d = Decision::block(Scope::Ip, "203.0.113.7")
            .duration("30m")
            .reason("21 failed logins from \"203.0.113.7\" in 1 hour")
            .alert("ip:203.0.113.7:1h")
            .event_seqs([12, 15]);
        let text = d.to_json();
        assert_eq!(
            text,
            r#"{"scope":"ip","value":"203.0.113.7","kind":"block","duration_ms":1800000,"reason":"21 failed logins from \"203.0.113.7\" in 1 hour","dedup_key":"ip:203.0.113.7:1h","event_seqs":[12,15]}"#
        );
        assert_eq!(Decision::from_json(&text).unwrap(), d);
        let alone = Decision::new(Scope::ApiKey, "k1", DecisionKind::Throttle).reason("r");
        assert_eq!(
            alone.to_json(),
            r#"{"scope":"api_key","value":"k1","kind":"throttle","duration_ms":3600000,"reason":"r","event_seqs":[]}"#
        );
        assert_eq!(Decision::from_json(&alone.to_json()).unwrap(), alone);
    }

    #[test]
    fn builders_names_and_durations() {
        assert_eq!(Decision::throttle(Scope::User, "u").kind, DecisionKind::Throttle);
        assert_eq!(Decision::require_mfa(Scope::Session, "s").kind, DecisionKind::RequireMfa);
        assert_eq!(Decision::lock(Scope::Organization, "o").kind, DecisionKind::Lock);
        assert_eq!(Decision::lock(Scope::User, "u").duration_ms, DEFAULT_DURATION_MS);
        assert_eq!(Decision::lock(Scope::User, "u").duration(90_000).duration_ms, 90_000);
        let d = Decision::lock(Scope::User, "u").duration(std::time::Duration::from_secs(120));
        assert_eq!(d.duration_ms, 120_000);
        assert_eq!(Decision::lock(Scope::User, "u").event_seq(3).event_seqs([4, 5]).event_seqs, [3, 4, 5]);
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        for k in DecisionKind::ALL {
            assert_eq!(DecisionKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Scope::parse("IP"), None, "names are exact, as on the host");
        assert_eq!(DecisionKind::parse("ban"), None);
    }

    #[test]
    fn refusals_follow_the_host() {
        let ok = r#"{"scope":"ip","value":"x","kind":"block","duration_ms":1000,"reason":"r"}"#;
        let d = Decision::from_json(ok).unwrap();
        assert_eq!((d.duration_ms, d.dedup_key, d.event_seqs), (1000, None, vec![]));
        for bad in [
            r#"{"scope":"planet","value":"x","kind":"block","duration_ms":1000,"reason":"r"}"#,
            r#"{"value":"x","kind":"block","duration_ms":1000,"reason":"r"}"#,
            r#"{"scope":"ip","value":"","kind":"block","duration_ms":1000,"reason":"r"}"#,
            r#"{"scope":"ip","value":"a\nb","kind":"block","duration_ms":1000,"reason":"r"}"#,
            r#"{"scope":"ip","value":5,"kind":"block","duration_ms":1000,"reason":"r"}"#,
            r#"{"scope":"ip","value":"x","kind":"ban","duration_ms":1000,"reason":"r"}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":999,"reason":"r"}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":1000.5,"reason":"r"}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":"1000","reason":"r"}"#,
            r#"{"scope":"ip","value":"x","kind":"block","reason":"r"}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":1000,"reason":""}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":1000,"reason":"a\u0000b"}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":1000}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":1000,"reason":"r","dedup_key":5}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":1000,"reason":"r","event_seqs":{}}"#,
            r#"{"scope":"ip","value":"x","kind":"block","duration_ms":1000,"reason":"r","event_seqs":["1"]}"#,
            r#"[1]"#,
            "not json",
        ] {
            assert!(Decision::from_json(bad).is_err(), "{bad}");
        }
        let long_value = Decision::block(Scope::Ip, "v".repeat(MAX_VALUE_CHARS + 1)).reason("r");
        assert!(Decision::from_json(&long_value.to_json()).is_err());
        let multibyte = Decision::block(Scope::User, "é".repeat(MAX_VALUE_CHARS)).reason("r");
        assert!(multibyte.validate().is_ok(), "the value limit counts characters, as the host does");
        let long_reason = Decision::block(Scope::Ip, "x").reason("r".repeat(MAX_REASON_CHARS + 1));
        assert!(Decision::from_json(&long_reason.to_json()).is_err());
        let no_reason = Decision::block(Scope::Ip, "x");
        assert!(Decision::from_json(&no_reason.to_json()).is_err(), "the reason is required");
        let seqs = |n: i64| Decision::block(Scope::Ip, "x").reason("r").event_seqs(1..=n);
        assert!(Decision::from_json(&seqs(100).to_json()).is_ok());
        assert!(Decision::from_json(&seqs(101).to_json()).is_err());
        let huge = format!(
            r#"{{"scope":"ip","value":"x","kind":"block","duration_ms":1000,"reason":"r","pad":"{}"}}"#,
            "p".repeat(MAX_DECISION_BYTES)
        );
        assert!(Decision::from_json(&huge).unwrap_err().0.contains("at most 4096"));
    }
}
