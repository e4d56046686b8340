//! Silences: matchers (`=`, `!=`, `=~` on rule, severity, dedup_key, title, `fields.<key>`)
//! that hold back an alert's notifications, and the [`AlertService`] operations that
//! create and expire silences (each a chain event through the sequencer, then a row in the
//! store). The rest of `alerts` asks [`AlertService`] for the silences active now.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AlertError, AlertService};
use crate::event::system_event_with_id;
use crate::store::{AlertRow, SilenceRow, StoreError};

/// One condition on an alert; a silence holds the alerts all its matchers match.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// rule, severity, dedup_key, title or `fields.<key>`.
    pub name: String,
    /// `=`, `!=` or `=~` (a regular expression matching the whole value).
    pub op: String,
    /// The value or pattern.
    pub value: String,
}

/// Most matchers in one silence, and the longest pattern.
pub const MAX_MATCHERS: usize = 32;
/// Longest value or pattern, bytes.
pub const MAX_VALUE: usize = 1024;

impl Matcher {
    /// Checks the matcher is well formed (and compiles its pattern).
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = matches!(self.name.as_str(), "rule" | "severity" | "dedup_key" | "title")
            || self.name.strip_prefix("fields.").is_some_and(|k| !k.is_empty());
        if !name_ok {
            return Err(format!(
                "matcher name `{}` must be rule, severity, dedup_key, title or fields.<key>",
                self.name
            ));
        }
        if self.value.len() > MAX_VALUE {
            return Err(format!("matcher values are at most {MAX_VALUE} bytes"));
        }
        match self.op.as_str() {
            "=" | "!=" => Ok(()),
            "=~" => regex_lite::Regex::new(&format!("^(?:{})$", self.value))
                .map(|_| ())
                .map_err(|e| format!("matcher pattern `{}` is not a valid regular expression: {e}", self.value)),
            other => Err(format!("matcher op `{other}` must be =, != or =~")),
        }
    }

    /// The matcher with its pattern compiled once (for matching many alerts).
    pub fn compile(&self) -> Compiled {
        let re = (self.op == "=~").then(|| regex_lite::Regex::new(&format!("^(?:{})$", self.value)).ok()).flatten();
        Compiled { matcher: self.clone(), re }
    }

    /// Whether the alert matches (compiles a pattern each time: see [`Self::compile`]).
    pub fn matches(&self, alert: &AlertRow) -> bool {
        self.compile().matches(alert)
    }
}

/// A matcher ready to test many alerts.
#[derive(Debug, Clone)]
pub struct Compiled {
    matcher: Matcher,
    re: Option<regex_lite::Regex>,
}

impl Compiled {
    /// Whether the alert matches.
    pub fn matches(&self, alert: &AlertRow) -> bool {
        let m = &self.matcher;
        let fields;
        let value: Option<&str> = match m.name.as_str() {
            "rule" => Some(&alert.rule),
            "severity" => Some(alert.severity.as_str()),
            "dedup_key" => Some(&alert.dedup_key),
            "title" => Some(&alert.title),
            other => {
                let key = other.strip_prefix("fields.").unwrap_or_default();
                fields = serde_json::from_str::<serde_json::Value>(&alert.fields).ok().and_then(|f| {
                    f.get(key).map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    })
                });
                fields.as_deref()
            }
        };
        let v = value.unwrap_or("");
        match m.op.as_str() {
            "=" => value.is_some() && v == m.value,
            "!=" => v != m.value,
            "=~" => self.re.as_ref().is_some_and(|re| re.is_match(v)),
            _ => false,
        }
    }
}

/// Whether every matcher matches (a silence with no matchers matches nothing).
pub fn matches_all(matchers: &[Compiled], alert: &AlertRow) -> bool {
    !matchers.is_empty() && matchers.iter().all(|m| m.matches(alert))
}

/// The id of the first of `silences` whose matchers all match the alert.
pub fn first_match(silences: &[(SilenceRow, Vec<Compiled>)], alert: &AlertRow) -> Option<String> {
    silences.iter().find(|(_, m)| matches_all(m, alert)).map(|(s, _)| s.id.clone())
}

/// Most silences active or pending at once.
pub const MAX_ACTIVE_SILENCES: usize = 1000;

impl AlertService {
    /// The silences in force at `now`, their matchers compiled.
    pub(super) async fn active_silences(&self, now: i64) -> Result<Vec<(SilenceRow, Vec<Compiled>)>, StoreError> {
        let all = self.inner.store.live_silences(now).await?;
        Ok(all
            .into_iter()
            .filter(|s| s.active_at(now))
            .map(|s| {
                let m: Vec<Matcher> = serde_json::from_str(&s.matchers).unwrap_or_default();
                let compiled = m.iter().map(Matcher::compile).collect();
                (s, compiled)
            })
            .collect())
    }

    /// Creates a silence (a chain event).
    pub async fn create_silence(&self, silence: SilenceRow, actor: &str) -> Result<SilenceRow, AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let live = self.inner.store.live_silences(now).await?.len();
        if live >= MAX_ACTIVE_SILENCES {
            return Err(AlertError::Conflict(format!(
                "{live} silences are active or pending (at most {MAX_ACTIVE_SILENCES}); expire some first"
            )));
        }
        // The chain event first: a silence never takes effect without its evidence.
        let details = json!({"silence_id": silence.id, "matchers": serde_json::from_str::<Value>(&silence.matchers).unwrap_or(Value::Null),
            "starts_at": silence.starts_at, "ends_at": silence.ends_at, "created_by": silence.created_by, "comment": silence.comment});
        let ev = system_event_with_id(
            format!("vigil:silence:{}:created", silence.id),
            "alert",
            "silence_created",
            actor,
            details,
            self.now(),
        );
        self.inner.sequencer.submit(vec![ev]).await.map_err(AlertError::Store)?;
        self.inner.store.insert_silence(&silence).await?;
        Ok(silence)
    }

    /// Expires a silence now (it stays listed); a chain event.
    pub async fn expire_silence(&self, id: &str, actor: &str) -> Result<(), AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let live = self.inner.store.silence(id).await?.is_some_and(|s| s.expired_at.is_none());
        if !live {
            return Err(AlertError::Conflict(format!("no active or pending silence {id}")));
        }
        // The chain event first, with a fixed id: retrying after a failure writes it once.
        let ev = system_event_with_id(
            format!("vigil:silence:{id}:expired"),
            "alert",
            "silence_expired",
            actor,
            json!({"silence_id": id}),
            now,
        );
        self.inner.sequencer.submit(vec![ev]).await.map_err(AlertError::Store)?;
        self.inner.store.expire_silence(id, now).await?;
        Ok(())
    }
}
