//! Automated response: decisions (block, throttle, require_mfa, lock an ip, user, api_key,
//! session or organization for a while) issued by detection rules (`emit_decision`, ABI
//! 1.2) or by people (`POST /v1/decisions`), and enforced by the apps' bouncers, which read
//! them through `GET /v1/decisions` and `GET /v1/decisions/stream`.
//!
//! The store is the truth (`decisions`, `decision_changes`); [`ActiveSet`] is the copy in
//! memory of what applies now, rebuilt from the store at start, that answers checks without
//! a query. [`DecisionService`] (`service.rs`) is the one writer: every issue, expiry and
//! lift is a row of `decision_changes` written with the change and then an event of the
//! chain. [`Gate`] (`gate.rs`) is what the rule host consults on each `emit_decision`: the
//! policy of `[decisions]`, the rule's count of active decisions and the [`Allowlist`]
//! (`allowlist.rs`: values no decision may apply to). `[decisions] mode = "simulate"`
//! records rules' decisions without enforcing them.

pub mod allowlist;
mod gate;
mod service;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use allowlist::{AllowEntry, Allowlist};
pub use gate::{Gate, Refusal, annotate_refusals};
pub use service::{DecisionError, DecisionService, NewAllowEntry, NewDecision, RaisedDecision};
pub use service::{SNAPSHOT_PAGE, STREAM_PAGE, Snapshot, Stream, StreamPage};

use crate::store::decisions::DecisionRow;

// The decision vocabulary and its validation are the SDK's (`vigil_sdk::decision`), used by
// the host and by the native harness alike, so a native test and the server agree exactly.
pub use vigil_sdk::decision::MIN_DURATION_MS;
pub use vigil_sdk::{DecisionKind as Kind, Scope};

/// A stream client counts as connected this long after its last poll, ms.
const CLIENT_WINDOW_MS: i64 = 5 * 60_000;

/// The form a value is stored and looked up in: for scope `ip`, an address in its
/// canonical text (`2001:DB8::1` is `2001:db8::1`, `::ffff:192.0.2.1` is `192.0.2.1`), as
/// events store it; anything else as given.
pub fn canonical_value(scope: Scope, value: &str) -> std::borrow::Cow<'_, str> {
    if scope == Scope::Ip
        && let Ok(ip) = value.trim().parse::<std::net::IpAddr>()
    {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        let text = ip.to_string();
        if text != value {
            return std::borrow::Cow::Owned(text);
        }
    }
    std::borrow::Cow::Borrowed(value)
}

/// Checks a decision as the SDK does for rules (the one implementation of the rules of
/// ABI.md "Decision JSON"): value 1 to 256 characters without control characters, duration
/// at least a second, reason 1 to 1024 characters without NUL.
pub fn check(scope: Scope, value: &str, kind: Kind, duration_ms: i64, reason: &str) -> Result<(), String> {
    vigil_sdk::Decision::new(scope, value, kind).duration(duration_ms).reason(reason).validate().map_err(|e| e.0)
}

/// Parses a duration a person gives as text: a whole number and one unit, `s`, `m`, `h` or
/// `d` (`"90s"`, `"30m"`, `"4h"`, `"7d"`); returns ms. The error says what is wrong: no
/// number, no or an unknown unit, zero, or too large.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(format!("`{text}` is not a duration: a whole number and a unit, e.g. 90s, 30m, 4h, 7d"));
    }
    let unit_ms: i64 = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("`{text}` has no unit: add s, m, h or d (e.g. {text}m)")),
        other => return Err(format!("`{text}`: unknown unit `{other}` (s, m, h or d)")),
    };
    let n: i64 = number.parse().map_err(|_| format!("`{text}` is too large"))?;
    if n == 0 {
        return Err(format!("`{text}`: a duration must be more than zero"));
    }
    n.checked_mul(unit_ms).ok_or_else(|| format!("`{text}` is too large"))
}

/// What the rules' gate and the decision service share: the active set and the allowlist.
#[derive(Debug, Clone, Default)]
pub struct Guardrails {
    /// The decisions that apply now.
    pub set: Arc<ActiveSet>,
    /// The values no decision may apply to.
    pub allowlist: Arc<Allowlist>,
}

#[derive(Debug, Default)]
struct SetInner {
    /// (scope, value) -> decisions that apply (usually one).
    by_key: HashMap<(Scope, String), Vec<Arc<DecisionRow>>>,
    by_id: HashMap<i64, Arc<DecisionRow>>,
    /// Active decisions per issuing rule.
    per_rule: HashMap<String, usize>,
    /// Newest change applied.
    last_change: i64,
}

/// Keys that polled the stream, with when they last did (for the stream-clients gauge).
#[derive(Debug, Default)]
struct StreamClients(std::sync::Mutex<HashMap<String, i64>>);

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct DecisionCounters {
    /// Decisions issued (rules and people).
    pub issued: AtomicU64,
    /// The same by kind, in the order of `DecisionKind::ALL`.
    pub issued_by_kind: [AtomicU64; Kind::ALL.len()],
    /// Decisions that expired.
    pub expired: AtomicU64,
    /// Decisions lifted early.
    pub lifted: AtomicU64,
    /// Rule decisions refused (policy, caps, allowlist).
    pub refused: AtomicU64,
    /// The same by reason, in the order of [`Refusal::ALL`].
    pub refused_by: [AtomicU64; Refusal::ALL.len()],
    /// Rule decisions recorded as simulated (`mode = "simulate"`).
    pub simulated: AtomicU64,
    /// Rule decisions dropped as duplicates of an active one that lasts as long.
    pub duplicates: AtomicU64,
    /// Stream requests served.
    pub stream_requests: AtomicU64,
    /// Check requests (`GET /v1/decisions?scope&value`) served.
    pub checks: AtomicU64,
}

/// The decisions that apply now, in memory.
#[derive(Debug, Default)]
pub struct ActiveSet {
    inner: RwLock<SetInner>,
    clients: StreamClients,
    pub counters: DecisionCounters,
}

impl ActiveSet {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, SetInner> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, SetInner> {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes a stream poll by `key` at `now`.
    pub fn stream_polled(&self, key: &str, now: i64) {
        let mut map = self.clients.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 10_000 {
            map.retain(|_, t| *t > now - CLIENT_WINDOW_MS);
        }
        map.insert(key.to_owned(), now);
    }

    /// Keys that polled the stream in the last five minutes.
    pub fn stream_clients(&self, now: i64) -> usize {
        let map = self.clients.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.values().filter(|t| **t > now - CLIENT_WINDOW_MS).count()
    }

    /// Replaces the whole set (at start).
    pub fn reset(&self, rows: Vec<DecisionRow>, last_change: i64) {
        let mut inner = SetInner { last_change, ..SetInner::default() };
        for row in rows {
            Self::insert_into(&mut inner, Arc::new(row));
        }
        *self.write() = inner;
    }

    fn insert_into(inner: &mut SetInner, row: Arc<DecisionRow>) {
        if inner.by_id.contains_key(&row.id) {
            // Already in (cluster mode: seen through the change feed first).
            return;
        }
        let scope = row.scope;
        if let Some(rule) = &row.rule {
            *inner.per_rule.entry(rule.clone()).or_default() += 1;
        }
        inner.by_id.insert(row.id, row.clone());
        inner.by_key.entry((scope, row.value.clone())).or_default().push(row);
    }

    /// Adds a decision just issued (change `change`).
    pub fn insert(&self, row: DecisionRow, change: i64) {
        let mut inner = self.write();
        inner.last_change = inner.last_change.max(change);
        Self::insert_into(&mut inner, Arc::new(row));
    }

    /// Cluster mode: applies a change read from the shared change feed (made through any
    /// node). Idempotent, so the feed may be read again from an earlier point: an `issued`
    /// change adds its decision only while the row is still active; `expired` and `lifted`
    /// remove it.
    pub fn follow(&self, change: &crate::store::decisions::DecisionChange, row: DecisionRow) {
        match change.action.as_str() {
            "issued" if row.status == crate::store::decisions::DecisionStatus::Active => self.insert(row, change.id),
            "expired" | "lifted" => self.remove(change.decision_id, change.id),
            _ => {}
        }
    }

    /// Removes a decision that ended (change `change`).
    pub fn remove(&self, id: i64, change: i64) {
        let mut inner = self.write();
        inner.last_change = inner.last_change.max(change);
        let Some(row) = inner.by_id.remove(&id) else { return };
        if let Some(rule) = &row.rule
            && let Some(n) = inner.per_rule.get_mut(rule)
        {
            *n = n.saturating_sub(1);
        }
        let key = (row.scope, row.value.clone());
        if let Some(list) = inner.by_key.get_mut(&key) {
            list.retain(|d| d.id != id);
            if list.is_empty() {
                inner.by_key.remove(&key);
            }
        }
    }

    /// The decisions that apply to `value` in `scope` at `now`, newest first.
    pub fn lookup(&self, scope: Scope, value: &str, now: i64) -> Vec<Arc<DecisionRow>> {
        let value = canonical_value(scope, value);
        let inner = self.read();
        // The key is (Scope, String): borrow-free lookup needs an owned key; values are short.
        let mut out: Vec<Arc<DecisionRow>> = inner
            .by_key
            .get(&(scope, value.into_owned()))
            .map(|list| list.iter().filter(|d| d.expires_at > now).cloned().collect())
            .unwrap_or_default();
        out.sort_by_key(|d| std::cmp::Reverse(d.id));
        out
    }

    /// Every decision that applies at `now` (filtered), newest first, and the newest change.
    pub fn snapshot(&self, now: i64, keep: impl Fn(&DecisionRow) -> bool) -> (Vec<Arc<DecisionRow>>, i64) {
        let inner = self.read();
        let mut out: Vec<Arc<DecisionRow>> =
            inner.by_id.values().filter(|d| d.expires_at > now && keep(d)).cloned().collect();
        out.sort_by_key(|d| std::cmp::Reverse(d.id));
        (out, inner.last_change)
    }

    /// The ids of every decision that applies at `now`, newest first, and the newest change
    /// (one moment: the stream's snapshot).
    pub fn snapshot_ids(&self, now: i64) -> (Vec<i64>, i64) {
        let inner = self.read();
        let mut ids: Vec<i64> = inner.by_id.values().filter(|d| d.expires_at > now).map(|d| d.id).collect();
        ids.sort_unstable_by_key(|id| std::cmp::Reverse(*id));
        (ids, inner.last_change)
    }

    /// The decisions of `ids` that still apply at `now`, in that order.
    pub fn rows(&self, ids: &[i64], now: i64) -> Vec<Arc<DecisionRow>> {
        let inner = self.read();
        ids.iter().filter_map(|id| inner.by_id.get(id)).filter(|d| d.expires_at > now).cloned().collect()
    }

    /// Ids of decisions past their expiry at `now`.
    pub fn due(&self, now: i64) -> Vec<i64> {
        self.read().by_id.values().filter(|d| d.expires_at <= now).map(|d| d.id).collect()
    }

    /// Active decisions of `rule`.
    pub fn rule_count(&self, rule: &str) -> usize {
        self.read().per_rule.get(rule).copied().unwrap_or(0)
    }

    /// Active decisions in all.
    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    /// Whether none is active.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest change applied.
    pub fn last_change(&self) -> i64 {
        self.read().last_change
    }

    /// An active decision of the same scope, value and kind lasting at least until `until`.
    pub fn covering(&self, scope: Scope, value: &str, kind: Kind, until: i64) -> Option<Arc<DecisionRow>> {
        let inner = self.read();
        inner.by_key.get(&(scope, value.to_owned()))?.iter().find(|d| d.kind == kind && d.expires_at >= until).cloned()
    }

    /// Active decisions by (scope, kind), for `/metrics`.
    pub fn by_scope_kind(&self, now: i64) -> HashMap<(Scope, Kind), u64> {
        let mut out = HashMap::new();
        for d in self.read().by_id.values().filter(|d| d.expires_at > now) {
            *out.entry((d.scope, d.kind)).or_insert(0) += 1;
        }
        out
    }

    /// Active decisions tied to an alert.
    pub fn for_alert(&self, alert_id: i64) -> Vec<Arc<DecisionRow>> {
        let mut out: Vec<_> = self.read().by_id.values().filter(|d| d.alert_id == Some(alert_id)).cloned().collect();
        out.sort_by_key(|d| d.id);
        out
    }
}

impl DecisionCounters {
    /// Counts a refused rule decision.
    pub fn refuse(&self, why: Refusal) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.refused_by[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes the decision metrics: active by scope and kind, issued/expired/lifted/refused
/// counts, stream and check requests.
pub fn render_metrics(out: &mut String, set: &ActiveSet, now: i64) {
    use std::fmt::Write as _;
    out.push_str("# HELP vigil_decisions_active Decisions that apply now, by scope and kind.\n# TYPE vigil_decisions_active gauge\n");
    let counts = set.by_scope_kind(now);
    for scope in Scope::ALL {
        for kind in Kind::ALL {
            let n = counts.get(&(scope, kind)).copied().unwrap_or(0);
            let _ =
                writeln!(out, "vigil_decisions_active{{scope=\"{}\",kind=\"{}\"}} {n}", scope.as_str(), kind.as_str());
        }
    }
    let c = &set.counters;
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for (name, help, value) in [
        ("vigil_decisions_issued_total", "Decisions issued (rules and people).", g(&c.issued)),
        ("vigil_decisions_expired_total", "Decisions that reached their expiry.", g(&c.expired)),
        ("vigil_decisions_lifted_total", "Decisions lifted early by people.", g(&c.lifted)),
        (
            "vigil_decisions_refused_total",
            "Rule decisions refused by [decisions] (scope, duration, caps).",
            g(&c.refused),
        ),
        (
            "vigil_decisions_duplicate_total",
            "Rule decisions not issued again: an active one lasted as long.",
            g(&c.duplicates),
        ),
        (
            "vigil_decision_stream_requests_total",
            "GET /v1/decisions/stream requests (bouncer polls).",
            g(&c.stream_requests),
        ),
        ("vigil_decision_checks_total", "GET /v1/decisions?scope=&value= checks.", g(&c.checks)),
    ] {
        crate::telemetry::counter(out, name, help, value);
    }
    out.push_str(
        "# HELP vigil_decisions_refused_by_reason_total Rule decisions refused, by reason (allowlisted: the value is on the allowlist).\n# TYPE vigil_decisions_refused_by_reason_total counter\n",
    );
    for (r, n) in Refusal::ALL.iter().zip(&c.refused_by) {
        let _ = writeln!(out, "vigil_decisions_refused_by_reason_total{{reason=\"{}\"}} {}", r.as_str(), g(n));
    }
    out.push_str(
        "# HELP vigil_decisions_issued_by_kind_total Decisions issued (rules and people), by kind.\n# TYPE vigil_decisions_issued_by_kind_total counter\n",
    );
    for (kind, n) in Kind::ALL.iter().zip(&c.issued_by_kind) {
        let _ = writeln!(out, "vigil_decisions_issued_by_kind_total{{kind=\"{}\"}} {}", kind.as_str(), g(n));
    }
    crate::telemetry::counter(
        out,
        "vigil_decisions_simulated_total",
        "Rule decisions recorded as simulated ([decisions] mode = \"simulate\"), never enforced.",
        g(&c.simulated),
    );
    crate::telemetry::gauge(
        out,
        "vigil_decision_stream_clients",
        "Distinct keys that polled the decision stream in the last 5 minutes.",
        set.stream_clients(now),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::decisions::DecisionStatus;

    /// An active decision row (the gate's tests use it too).
    pub(super) fn row(id: i64, scope: Scope, value: &str, rule: Option<&str>, expires_at: i64) -> DecisionRow {
        DecisionRow {
            id,
            scope,
            value: value.into(),
            kind: Kind::Block,
            rule: rule.map(str::to_owned),
            expires_at,
            status: DecisionStatus::Active,
            ..DecisionRow::default()
        }
    }

    #[test]
    fn the_set_answers_by_scope_and_value_and_counts_per_rule() {
        let set = Arc::new(ActiveSet::default());
        set.reset(vec![row(1, Scope::Ip, "203.0.113.7", Some("brute_force"), 10_000)], 3);
        set.insert(row(2, Scope::User, "alice", None, 20_000), 4);
        assert_eq!(set.lookup(Scope::Ip, "203.0.113.7", 5_000).len(), 1);
        assert!(set.lookup(Scope::User, "203.0.113.7", 5_000).is_empty(), "scopes are apart");
        assert_eq!(set.lookup(Scope::Ip, "::ffff:203.0.113.7", 5_000).len(), 1, "addresses compare canonically");
        assert_eq!(canonical_value(Scope::Ip, "2001:DB8::1"), "2001:db8::1");
        assert_eq!(canonical_value(Scope::User, "Alice"), "Alice");
        assert!(set.lookup(Scope::Ip, "203.0.113.7", 10_000).is_empty(), "past its expiry it no longer applies");
        assert_eq!(set.rule_count("brute_force"), 1);
        assert_eq!((set.last_change(), set.due(15_000)), (4, vec![1]));
        set.remove(1, 5);
        assert_eq!(set.rule_count("brute_force"), 0);
        assert!(set.lookup(Scope::Ip, "203.0.113.7", 0).is_empty());
        let (all, cursor) = set.snapshot(0, |_| true);
        assert_eq!((all.len(), cursor), (1, 5));
    }

    #[test]
    fn durations_as_text() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("30m"), Ok(1_800_000));
        assert_eq!(parse_duration("4h"), Ok(14_400_000));
        assert_eq!(parse_duration("7d"), Ok(604_800_000));
        for (bad, why) in [
            ("", "not a duration"),
            ("m", "not a duration"),
            ("30", "no unit"),
            ("30 m", "unknown unit"),
            ("30min", "unknown unit"),
            ("1.5h", "unknown unit"),
            ("-5m", "not a duration"),
            ("+5m", "not a duration"),
            ("0s", "more than zero"),
            ("000h", "more than zero"),
            ("99999999999999999999d", "too large"),
            ("999999999999999d", "too large"),
            ("30M", "unknown unit"),
            (" 30m", "not a duration"),
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
