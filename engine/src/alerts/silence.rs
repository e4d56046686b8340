//! Silences: matchers (`=`, `!=`, `=~` on rule, severity, dedup_key, title, `fields.<key>`)
//! that hold back an alert's notifications, and the [`AlertService`] operations that
//! create and expire silences (each a chain event through the sequencer, then a row in the
//! store). The rest of `alerts` asks [`AlertService`] for the silences active now.
//!
//! A `=~` pattern is compiled with a size limit ([`MAX_PATTERN_PROGRAM`]): a 1 KiB pattern
//! such as `(?:a{1000}){300}` would otherwise compile to a program of megabytes. Compiled
//! silences are kept in a [`SilenceCache`] keyed by silence id, so a silence is compiled
//! once, not for every alert batch. The server's own integrity and tamper alerts
//! ([`crate::finding::never_silenced`]) are never held back, whatever the matchers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
/// Largest compiled program of one `=~` pattern, bytes (regex-lite's size limit, checked
/// while compiling, so a pattern past it costs no more than the limit to refuse). Room for
/// any sensible pattern: `(?i)^(brute|lockout|spray).*` takes a few KiB.
pub const MAX_PATTERN_PROGRAM: usize = 256 * 1024;

/// Compiles a `=~` pattern (anchored: it matches the whole value) within the size limit.
fn compile_pattern(pattern: &str) -> Result<regex_lite::Regex, regex_lite::Error> {
    regex_lite::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(MAX_PATTERN_PROGRAM).build()
}

/// At most 64 characters of a pattern, for messages.
fn shown(pattern: &str) -> String {
    let mut s: String = pattern.chars().take(64).collect();
    if s.len() < pattern.len() {
        s.push('…');
    }
    s
}

impl Matcher {
    /// Checks the matcher is well formed (and compiles its pattern within the size limit).
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
            "=~" => compile_pattern(&self.value).map(|_| ()).map_err(|e| {
                format!(
                    "matcher pattern `{}` is refused: {e} (a pattern must be a valid regular expression that \
                     compiles to at most {} KiB)",
                    shown(&self.value),
                    MAX_PATTERN_PROGRAM / 1024
                )
            }),
            other => Err(format!("matcher op `{other}` must be =, != or =~")),
        }
    }

    /// The matcher with its pattern compiled once (for matching many alerts). A pattern
    /// that does not compile (within the limit) matches nothing.
    pub fn compile(&self) -> Compiled {
        let re = (self.op == "=~").then(|| compile_pattern(&self.value).ok()).flatten();
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

/// A silence with its matchers compiled.
#[derive(Debug)]
pub struct CompiledSilence {
    /// The silence's id.
    pub id: String,
    /// The matchers as stored (a change means a recompile).
    source: String,
    /// Its matchers, compiled.
    pub matchers: Vec<Compiled>,
}

impl CompiledSilence {
    /// Compiles a stored silence (matchers that no longer parse match nothing).
    pub fn new(row: &SilenceRow) -> Self {
        let m: Vec<Matcher> = serde_json::from_str(&row.matchers).unwrap_or_default();
        Self { id: row.id.clone(), source: row.matchers.clone(), matchers: m.iter().map(Matcher::compile).collect() }
    }
}

/// The id of the first of `silences` whose matchers all match the alert; never one for the
/// server's own integrity and tamper alerts.
pub fn first_match(silences: &[Arc<CompiledSilence>], alert: &AlertRow) -> Option<String> {
    if crate::finding::never_silenced(&alert.rule, &alert.rule_sha256, &alert.dedup_key) {
        return None;
    }
    silences.iter().find(|s| matches_all(&s.matchers, alert)).map(|s| s.id.clone())
}

/// Compiled silences by id: each compiled once, recompiled only if its stored matchers
/// change, forgotten once it is no longer active.
#[derive(Debug, Default)]
pub struct SilenceCache {
    compiled: Mutex<HashMap<String, Arc<CompiledSilence>>>,
    compilations: AtomicU64,
}

impl SilenceCache {
    /// The compiled form of each of `active`, in order (compiling only the new or changed
    /// ones); every other silence is forgotten.
    pub fn compiled(&self, active: &[SilenceRow]) -> Vec<Arc<CompiledSilence>> {
        let mut map = self.compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let ids: HashSet<&str> = active.iter().map(|s| s.id.as_str()).collect();
        map.retain(|id, _| ids.contains(id.as_str()));
        active
            .iter()
            .map(|row| match map.get(&row.id) {
                Some(c) if c.source == row.matchers => c.clone(),
                _ => {
                    self.compilations.fetch_add(1, Ordering::Relaxed);
                    let c = Arc::new(CompiledSilence::new(row));
                    map.insert(row.id.clone(), c.clone());
                    c
                }
            })
            .collect()
    }

    /// How many silences were compiled so far.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }
}

/// Most silences active or pending at once.
pub const MAX_ACTIVE_SILENCES: usize = 1000;

impl AlertService {
    /// The silences in force at `now`, their matchers compiled (once per silence: see
    /// [`SilenceCache`]).
    pub(super) async fn active_silences(&self, now: i64) -> Result<Vec<Arc<CompiledSilence>>, StoreError> {
        let mut active = self.inner.store.live_silences(now).await?;
        active.retain(|s| s.active_at(now));
        Ok(self.inner.silences.compiled(&active))
    }

    /// How many silences were compiled since start (each once while it is active).
    pub fn silence_compilations(&self) -> u64 {
        self.inner.silences.compilations()
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Matcher, SilenceCache, first_match};
    use crate::store::{AlertRow, SilenceRow};

    fn matcher(name: &str, op: &str, value: &str) -> Matcher {
        Matcher { name: name.into(), op: op.into(), value: value.into() }
    }

    fn silence(id: &str, matchers: &[Matcher]) -> SilenceRow {
        SilenceRow { id: id.into(), matchers: serde_json::to_string(matchers).unwrap(), ..Default::default() }
    }

    #[test]
    fn a_pattern_compiling_past_the_size_limit_is_refused_and_sensible_ones_are_not() {
        // The silence bomb: 1 KiB of pattern at most, megabytes of program.
        for bomb in ["(?:a{1000}){300}", "(?:(?:a{100}){100}){100}", "[\\w\\W]{1000}(?:x{999}){9}", "(?:a{1000}){10}"] {
            let started = std::time::Instant::now();
            let err = matcher("title", "=~", bomb).validate().unwrap_err();
            assert!(err.contains("256 KiB"), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(5), "refused within the limit's cost");
            // A stored one (written before the limit, or by hand) matches nothing.
            assert!(
                !matcher("title", "=~", bomb).matches(&AlertRow { title: "a".repeat(300_000), ..Default::default() })
            );
        }
        for ok in ["account_.*", "(?i)^(brute|lockout|spray).*$", "[a-z0-9._-]{1,64}@example\\.org", "P[12]", ".*"] {
            assert_eq!(matcher("rule", "=~", ok).validate(), Ok(()), "{ok}");
        }
        assert!(matcher("rule", "=~", "(unclosed").validate().unwrap_err().contains("is refused"));
    }

    #[test]
    fn a_silence_is_compiled_once_while_it_stays_active() {
        let cache = SilenceCache::default();
        let a = silence("s-a", &[matcher("rule", "=~", "brute.*")]);
        let b = silence("s-b", &[matcher("severity", "=", "P4")]);
        let first = cache.compiled(&[a.clone(), b.clone()]);
        assert_eq!(cache.compilations(), 2);
        // Every later batch: no compilation, the same compiled values.
        for _ in 0..100 {
            let again = cache.compiled(&[a.clone(), b.clone()]);
            assert!(Arc::ptr_eq(&first[0], &again[0]) && Arc::ptr_eq(&first[1], &again[1]));
        }
        assert_eq!(cache.compilations(), 2, "compiled once each, not per batch");
        let alert = AlertRow { rule: "brute_force".into(), ..Default::default() };
        assert_eq!(first_match(&first, &alert), Some("s-a".into()));
        // `b` ends: forgotten. Back under the same id with other matchers: compiled anew.
        cache.compiled(std::slice::from_ref(&a));
        let changed = silence("s-b", &[matcher("rule", "=", "brute_force")]);
        let now = cache.compiled(&[changed]);
        assert_eq!(cache.compilations(), 3);
        assert_eq!(first_match(&now, &alert), Some("s-b".into()));
    }

    #[test]
    fn the_servers_own_integrity_and_tamper_alerts_are_never_silenced() {
        let cache = SilenceCache::default();
        let hush_all = cache.compiled(&[
            silence("rule-any", &[matcher("rule", "=~", ".*")]),
            silence("p1", &[matcher("severity", "=", "P1")]),
            silence("title", &[matcher("title", "=~", "(?i).*integrity.*")]),
        ]);
        let own = |dedup_key: &str| AlertRow {
            rule: "vigil".into(),
            dedup_key: dedup_key.into(),
            title: "Integrity failure: truncated at seq 13".into(),
            severity: vigil_sdk::Severity::P1,
            ..Default::default()
        };
        for key in ["integrity:Truncated@13", "integrity:HashMismatch@2,Missing@3", "decisions:chain_mismatch"] {
            assert_eq!(first_match(&hush_all, &own(key)), None, "{key}");
        }
        // Other alerts of the server (a quarantine) and a deployed rule that calls itself
        // `vigil` (it has a module SHA-256) are silenced as usual.
        assert_eq!(first_match(&hush_all, &own("quarantine:x:abc")), Some("rule-any".into()));
        let impostor = AlertRow { rule_sha256: "ab".repeat(32), ..own("integrity:Truncated@1") };
        assert_eq!(first_match(&hush_all, &impostor), Some("rule-any".into()));
    }
}
