//! The local copy of the active decisions: indexed by scope and value, answered from memory.
//!
//! The sync task writes it (snapshot, then `added` and `deleted` by id); the middleware reads
//! it. A decision past its `expires_at` never applies, whatever the stream says yet, and is
//! dropped at the next sync.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Verdict;

/// The decision kinds a bouncer enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Block,
    Lock,
    Throttle,
    RequireMfa,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "block" => Kind::Block,
            "lock" => Kind::Lock,
            "throttle" => Kind::Throttle,
            "require_mfa" => Kind::RequireMfa,
            _ => return None,
        })
    }
}

/// A decision of the stream, as far as a bouncer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub id: u64,
    pub scope: String,
    pub value: String,
    pub kind: Kind,
    pub expires_at: OffsetDateTime,
    /// `status` is `active` (or absent); an ended decision in `added` is removed instead.
    pub active: bool,
}

/// The members of the server's decision object a bouncer reads: what a bouncer key is
/// given (`id`, `scope`, `value`, `kind`, `expires_at`); others, such as `status` from a
/// key with a wider role, are read when present and ignored otherwise.
#[derive(Deserialize)]
struct Wire {
    id: u64,
    scope: String,
    value: String,
    kind: String,
    expires_at: String,
    #[serde(default)]
    status: Option<String>,
}

impl Decision {
    /// Reads one decision object; the error says why it is unusable (for a log line).
    pub fn from_json(value: &Value) -> Result<Decision, String> {
        let wire = Wire::deserialize(value).map_err(|e| format!("not a decision object: {e}"))?;
        let kind =
            Kind::parse(&wire.kind).ok_or_else(|| format!("decision {}: unknown kind {:?}", wire.id, wire.kind))?;
        let expires_at = OffsetDateTime::parse(&wire.expires_at, &Rfc3339)
            .map_err(|e| format!("decision {}: expires_at {:?}: {e}", wire.id, wire.expires_at))?;
        let value = normalize(&wire.scope, &wire.value).into_owned();
        Ok(Decision {
            id: wire.id,
            scope: wire.scope,
            value,
            kind,
            expires_at,
            active: wire.status.as_deref().is_none_or(|s| s == "active"),
        })
    }
}

/// IP values in canonical text form (so `::ffff:203.0.113.7` matches `203.0.113.7`); any
/// other value as is.
fn normalize<'a>(scope: &str, value: &'a str) -> Cow<'a, str> {
    if scope == "ip"
        && let Ok(ip) = value.trim().parse::<IpAddr>()
    {
        return Cow::Owned(ip.to_canonical().to_string());
    }
    Cow::Borrowed(value)
}

/// One applicable decision, filed under its scope and value.
#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    kind: Kind,
    expires_at: OffsetDateTime,
}

/// The local copy and its sync state.
#[derive(Debug, Default)]
pub(crate) struct Store {
    /// id → (scope, value), to remove by id.
    by_id: HashMap<u64, (String, String)>,
    /// scope → value → decisions.
    entries: HashMap<String, HashMap<String, Vec<Entry>>>,
    /// A whole snapshot (every page) has arrived since the copy was last reset.
    complete: bool,
    /// The last successful answer of the server.
    last_ok: Option<Instant>,
}

impl Store {
    /// Forgets every decision (a new snapshot follows). The copy stays available if it was:
    /// the snapshot replaces it in one write.
    pub fn clear(&mut self) {
        self.by_id.clear();
        self.entries.clear();
    }

    /// Applies one page of the stream: `added` first, then `deleted` by id; drops decisions
    /// already past their `expires_at`.
    pub fn apply(&mut self, added: Vec<Decision>, deleted: &[u64], now: OffsetDateTime) {
        for decision in added {
            if decision.active && decision.expires_at > now {
                self.insert(decision);
            } else {
                self.remove(decision.id);
            }
        }
        for &id in deleted {
            self.remove(id);
        }
        self.prune(now);
    }

    /// Records a successful answer; `complete` when the server has nothing more right now.
    pub fn mark_ok(&mut self, complete: bool, at: Instant) {
        self.last_ok = Some(at);
        if complete {
            self.complete = true;
        }
    }

    /// A whole snapshot arrived and the last successful answer is at most `stale_after` old.
    pub fn is_available(&self, stale_after: Duration) -> bool {
        self.complete && self.last_ok.is_some_and(|at| at.elapsed() <= stale_after)
    }

    /// How many decisions the copy holds.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    fn insert(&mut self, decision: Decision) {
        self.remove(decision.id);
        self.by_id.insert(decision.id, (decision.scope.clone(), decision.value.clone()));
        self.entries.entry(decision.scope).or_default().entry(decision.value).or_default().push(Entry {
            id: decision.id,
            kind: decision.kind,
            expires_at: decision.expires_at,
        });
    }

    fn remove(&mut self, id: u64) {
        let Some((scope, value)) = self.by_id.remove(&id) else { return };
        let Some(values) = self.entries.get_mut(&scope) else { return };
        if let Some(list) = values.get_mut(&value) {
            list.retain(|e| e.id != id);
            if list.is_empty() {
                values.remove(&value);
            }
        }
        if values.is_empty() {
            self.entries.remove(&scope);
        }
    }

    fn prune(&mut self, now: OffsetDateTime) {
        let expired: Vec<u64> = self
            .entries
            .values()
            .flat_map(|values| values.values().flatten())
            .filter(|e| e.expires_at <= now)
            .map(|e| e.id)
            .collect();
        for id in expired {
            self.remove(id);
        }
    }

    /// The verdict for `value` in `scope` at `now` (availability is the caller's business).
    pub fn check(&self, scope: &str, value: &str, now: OffsetDateTime) -> Verdict {
        let value = normalize(scope, value);
        let Some(list) = self.entries.get(scope).and_then(|values| values.get(value.as_ref())) else {
            return Verdict::Allow;
        };
        list.iter().filter(|e| e.expires_at > now).fold(Verdict::Allow, |verdict, e| {
            verdict.strongest(match e.kind {
                Kind::Block | Kind::Lock => Verdict::Block { decision_id: e.id, expires_at: e.expires_at },
                Kind::Throttle => Verdict::Throttle { retry_after_secs: seconds_until(e.expires_at, now) },
                Kind::RequireMfa => Verdict::RequireMfa,
            })
        })
    }

    /// [`Store::check`] for an IP address (scope `ip`).
    pub fn check_ip(&self, ip: IpAddr, now: OffsetDateTime) -> Verdict {
        self.check("ip", &ip.to_canonical().to_string(), now)
    }
}

/// Whole seconds from `now` to `end`, rounded up, at least 1.
fn seconds_until(end: OffsetDateTime, now: OffsetDateTime) -> u64 {
    let left = end - now;
    let secs = left.whole_seconds() + i64::from(left.subsec_nanoseconds() > 0);
    u64::try_from(secs).unwrap_or(0).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2026-12-01T10:00:00.000Z";

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse(NOW, &Rfc3339).unwrap()
    }

    /// A decision as a bouncer key gets it: exactly these five members.
    fn decision(id: u64, scope: &str, value: &str, kind: &str, expires_at: &str) -> Decision {
        Decision::from_json(&json!({"id": id, "scope": scope, "value": value, "kind": kind, "expires_at": expires_at}))
            .unwrap()
    }

    fn store_with(decisions: Vec<Decision>) -> Store {
        let mut store = Store::default();
        store.apply(decisions, &[], now());
        store
    }

    #[test]
    fn parses_the_contract_object() {
        let d = decision(12, "ip", "203.0.113.7", "block", "2026-12-01T10:30:00.000Z");
        assert_eq!(d.id, 12);
        assert_eq!(d.kind, Kind::Block);
        assert!(d.active, "no status: active (a bouncer is given active decisions only)");
        assert_eq!(d.expires_at, now() + Duration::from_secs(1800));
    }

    #[test]
    fn reads_the_whole_object_a_wider_key_gets() {
        let whole = json!({
            "id": 3, "scope": "ip", "value": "203.0.113.7", "kind": "block", "reason": "r",
            "origin": "rule", "actor": "rule:brute_force", "rule": "brute_force", "rule_sha256": "ab",
            "alert_id": null, "event_seqs": [1], "created_at": NOW, "expires_at": NOW,
            "status": "lifted", "ended_at": NOW, "ended_by": "k_1", "end_reason": "x"
        });
        let d = Decision::from_json(&whole).unwrap();
        assert!(!d.active, "a lifted one in `added` is removed");
    }

    #[test]
    fn refuses_unusable_objects() {
        assert!(Decision::from_json(&json!({"id": 1})).is_err());
        let mut bad = json!({"id": 1, "scope": "ip", "value": "x", "kind": "ban", "expires_at": NOW});
        assert!(Decision::from_json(&bad).unwrap_err().contains("unknown kind"));
        bad["kind"] = json!("block");
        bad["expires_at"] = json!("tomorrow");
        assert!(Decision::from_json(&bad).unwrap_err().contains("expires_at"));
        assert!(Decision::from_json(&json!("text")).is_err());
    }

    #[test]
    fn block_and_lock_beat_throttle_beat_require_mfa() {
        let later = "2026-12-01T11:00:00.000Z";
        let store = store_with(vec![
            decision(1, "user", "alice", "require_mfa", later),
            decision(2, "user", "alice", "throttle", "2026-12-01T10:01:00.500Z"),
            decision(3, "user", "bob", "require_mfa", later),
            decision(4, "user", "bob", "throttle", later),
            decision(5, "user", "bob", "lock", later),
            decision(6, "user", "carol", "require_mfa", later),
        ]);
        assert_eq!(store.check("user", "alice", now()), Verdict::Throttle { retry_after_secs: 61 });
        assert!(matches!(store.check("user", "bob", now()), Verdict::Block { decision_id: 5, .. }));
        assert_eq!(store.check("user", "carol", now()), Verdict::RequireMfa);
        assert_eq!(store.check("user", "dave", now()), Verdict::Allow);
        // Same value, other scope: no match.
        assert_eq!(store.check("ip", "alice", now()), Verdict::Allow);
    }

    #[test]
    fn expired_decisions_never_apply() {
        let store = store_with(vec![decision(1, "ip", "203.0.113.7", "block", "2026-12-01T10:30:00.000Z")]);
        assert!(matches!(store.check("ip", "203.0.113.7", now()), Verdict::Block { .. }));
        let at_expiry = now() + Duration::from_secs(1800);
        assert_eq!(store.check("ip", "203.0.113.7", at_expiry), Verdict::Allow);
        // Already expired when it arrives: not even stored.
        let store = store_with(vec![decision(2, "ip", "203.0.113.8", "block", "2026-12-01T09:00:00.000Z")]);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn deleted_and_ended_remove_by_id() {
        let later = "2026-12-01T11:00:00.000Z";
        let mut store = store_with(vec![
            decision(1, "ip", "203.0.113.7", "block", later),
            decision(2, "ip", "203.0.113.7", "throttle", later),
        ]);
        store.apply(vec![], &[1], now());
        assert!(matches!(store.check("ip", "203.0.113.7", now()), Verdict::Throttle { .. }));
        let mut ended = decision(2, "ip", "203.0.113.7", "throttle", later);
        ended.active = false;
        store.apply(vec![ended], &[], now());
        assert_eq!(store.check("ip", "203.0.113.7", now()), Verdict::Allow);
        assert_eq!(store.len(), 0);
        assert!(store.entries.is_empty());
        // Removing an unknown id is harmless; re-adding an id replaces it.
        store.apply(vec![decision(3, "ip", "a", "block", later)], &[99], now());
        store.apply(vec![decision(3, "ip", "b", "block", later)], &[], now());
        assert_eq!(store.check("ip", "a", now()), Verdict::Allow);
        assert!(matches!(store.check("ip", "b", now()), Verdict::Block { .. }));
    }

    #[test]
    fn ip_values_match_in_canonical_form() {
        let later = "2026-12-01T11:00:00.000Z";
        let store = store_with(vec![
            decision(1, "ip", "2001:DB8:0:0::1", "block", later),
            decision(2, "ip", "::ffff:198.51.100.1", "block", later),
        ]);
        assert!(matches!(store.check("ip", "2001:db8::1", now()), Verdict::Block { .. }));
        assert!(matches!(store.check_ip("198.51.100.1".parse().unwrap(), now()), Verdict::Block { .. }));
        assert!(matches!(store.check_ip("::ffff:198.51.100.1".parse().unwrap(), now()), Verdict::Block { .. }));
    }

    #[test]
    fn availability_needs_a_complete_snapshot_and_a_fresh_sync() {
        let mut store = Store::default();
        assert!(!store.is_available(Duration::from_secs(30)));
        store.mark_ok(false, Instant::now());
        assert!(!store.is_available(Duration::from_secs(30)), "a partial snapshot is not enough");
        store.mark_ok(true, Instant::now());
        assert!(store.is_available(Duration::from_secs(30)));
        let long_ago = Instant::now().checked_sub(Duration::from_secs(60)).unwrap();
        store.mark_ok(true, long_ago);
        assert!(!store.is_available(Duration::from_secs(30)), "stale");
    }
}
