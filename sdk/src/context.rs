//! What a rule can do while it evaluates one event: state, alerts, decisions, logs, routing.
//!
//! Every state call is made at the current event's time (never the wall clock) and goes to
//! the host through the ABI layer (`abi.rs`); the semantics are those of [`crate::state`].

use crate::abi;
use crate::alert::Alert;
use crate::decision::Decision;
use crate::state::BaselineStats;
pub use crate::time::IntoWindowMs;

/// Log levels of the `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// 0.
    Error = 0,
    /// 1.
    Warn = 1,
    /// 2.
    Info = 2,
    /// 3.
    Debug = 3,
}

/// What the host did with an emitted alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitStatus {
    /// Accepted.
    Accepted,
    /// Dropped by the per-rule rate limit.
    RateLimited,
    /// Refused as invalid (e.g. larger than 16 KiB).
    Invalid,
}

/// What the host did with a decision (`emit_decision`, ABI 1.2).
///
/// The native harness ([`crate::testing`]) accepts every valid decision: it has no rate
/// limit and no policy, so it only ever answers [`DecideStatus::Accepted`] or
/// [`DecideStatus::Invalid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecideStatus {
    /// Accepted (code 0): the host issues it when the batch is done.
    Accepted,
    /// Dropped by the per-rule decision rate limit (code 1).
    RateLimited,
    /// Refused as invalid decision JSON (code 2), e.g. without a reason.
    Invalid,
    /// Refused by the server's policy (code 3, and any code a later host adds): decisions
    /// from rules disabled, a scope rules may not decide on, a duration past the maximum,
    /// or the rule's cap on active decisions reached.
    Refused,
}

/// The rule's handle on the host while it evaluates one event.
#[derive(Debug)]
pub struct Context {
    index: u32,
    seq: i64,
    time_ms: i64,
}

impl Context {
    pub(crate) fn new(index: u32, seq: i64, time_ms: i64) -> Context {
        Context { index, seq, time_ms }
    }

    /// The current event's time (epoch ms): the clock of every state call.
    pub fn time_ms(&self) -> i64 {
        self.time_ms
    }

    /// The current event's seq.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// A sliding-window sum per key over the last `window`.
    pub fn window(&self, window: impl IntoWindowMs) -> WindowHandle {
        WindowHandle { window_ms: window.window_ms(), time_ms: self.time_ms, seq: self.seq }
    }

    /// A count of distinct values per key over the last `window`.
    pub fn distinct(&self, window: impl IntoWindowMs) -> DistinctHandle {
        DistinctHandle { window_ms: window.window_ms(), time_ms: self.time_ms, seq: self.seq }
    }

    /// The last value stored per key, with its time.
    pub fn last_seen(&self) -> LastSeenHandle {
        LastSeenHandle { time_ms: self.time_ms }
    }

    /// A running mean and standard deviation per key.
    pub fn baseline(&self) -> BaselineHandle {
        BaselineHandle
    }

    /// Emits an alert. When it names no event seq, the current event's seq is added.
    pub fn emit(&self, alert: Alert) -> EmitStatus {
        let alert = if alert.event_seqs.is_empty() { alert.event_seq(self.seq) } else { alert };
        match abi::emit_alert(alert.to_json().as_bytes()) {
            0 => EmitStatus::Accepted,
            1 => EmitStatus::RateLimited,
            _ => EmitStatus::Invalid,
        }
    }

    /// Issues a decision (an automated response: block, throttle, require MFA, lock). When
    /// it names no event seq, the current event's seq is added. Tie it to the alert it
    /// goes with by giving it that alert's dedup key ([`Decision::alert`]).
    pub fn decide(&self, decision: Decision) -> DecideStatus {
        let decision = if decision.event_seqs.is_empty() { decision.event_seq(self.seq) } else { decision };
        match abi::emit_decision(decision.to_json().as_bytes()) {
            0 => DecideStatus::Accepted,
            1 => DecideStatus::RateLimited,
            2 => DecideStatus::Invalid,
            _ => DecideStatus::Refused,
        }
    }

    /// Issues `decision` unless this rule's previous accepted decision of the same kind on
    /// the same scope and value still stands: one decision per subject at a time, however
    /// often the rule fires meanwhile. Remembered in the rule's last-seen state under
    /// `decided:<scope>:<value>` (so kept across a hot reload; keep that prefix for this).
    /// A decision the host did not accept is logged (Info) and not remembered, so the next
    /// firing tries again. `None` when skipped because the previous one stands.
    pub fn decide_once(&self, decision: Decision) -> Option<DecideStatus> {
        let key = format!("decided:{}:{}", decision.scope.as_str(), decision.value);
        let (kind, duration_ms) = (decision.kind, decision.duration_ms);
        let last = self.last_seen();
        let standing =
            last.get(&key).is_some_and(|p| p.as_str() == Some(kind.as_str()) && p.time_ms + duration_ms > self.time_ms);
        if standing {
            return None;
        }
        let target = format!("{} {}", decision.scope.as_str(), decision.value);
        let status = self.decide(decision);
        match status {
            DecideStatus::Accepted => last.set(&key, kind.as_str()),
            other => self.log(Level::Info, &format!("{kind} decision on {target} not accepted: {other:?}")),
        }
        Some(status)
    }

    /// Logs a message (the host truncates to 1 KiB and rate-limits).
    pub fn log(&self, level: Level, msg: &str) {
        abi::log(level as i32, msg.as_bytes());
    }

    /// Whether `value` is on the server's list `name` (`[[lists]]` in its configuration):
    /// an address for `ip` and `cidr` lists (a network entry holds every address in it),
    /// the exact text for `value` lists. `None` when the server has no list of that name
    /// (ABI 1.4; a server without lists answers `None` for every name).
    pub fn in_list(&self, name: &str, value: &str) -> Option<bool> {
        match abi::in_list(name, value) {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        }
    }

    /// Routing rules: delivers the current alert to `receiver`.
    pub fn route(&self, receiver: &str) {
        abi::route(self.index, receiver);
    }

    /// Routing rules: escalates the current alert, while unacknowledged, by the configured
    /// `[[escalation]]` policy `name` instead of the one for its severity (a route to
    /// `policy:<name>` on the wire; an unknown name is ignored).
    pub fn escalation_policy(&self, name: &str) {
        abi::route(self.index, &format!("policy:{name}"));
    }
}

/// Sliding-window sums (see [`crate::state::WindowCounter`]).
#[derive(Debug, Clone, Copy)]
pub struct WindowHandle {
    window_ms: i64,
    time_ms: i64,
    seq: i64,
}

impl WindowHandle {
    /// Adds `amount` for `key` at the event time; returns the sum over the window ending now.
    /// The current event is remembered among the events counted (see [`Self::seqs`]).
    pub fn add(&self, key: impl AsRef<[u8]>, amount: i64) -> i64 {
        if amount > 0 {
            abi::window_add_seq(self.window_ms, key.as_ref(), self.time_ms, amount, self.seq)
        } else {
            abi::window_add(self.window_ms, key.as_ref(), self.time_ms, amount)
        }
    }

    /// Seqs of the events counted for `key` that are still inside the window (oldest
    /// first, at most 100): what a threshold alert names with [`crate::Alert::event_seqs`].
    pub fn seqs(&self, key: impl AsRef<[u8]>) -> Vec<i64> {
        abi::window_seqs(self.window_ms, key.as_ref())
    }

    /// The sum for `key` over the window ending now.
    pub fn count(&self, key: impl AsRef<[u8]>) -> i64 {
        self.add(key, 0)
    }
}

/// Distinct-value counts (see [`crate::state::DistinctSet`]).
#[derive(Debug, Clone, Copy)]
pub struct DistinctHandle {
    window_ms: i64,
    time_ms: i64,
    seq: i64,
}

impl DistinctHandle {
    /// Adds `value` to `key`'s set; returns the distinct values in the window. An empty value
    /// only reads.
    /// The current event is remembered as the one that last showed `value` (see [`Self::seqs`]).
    pub fn add(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> i64 {
        let value = value.as_ref();
        if value.is_empty() {
            abi::distinct_add(self.window_ms, key.as_ref(), value, self.time_ms)
        } else {
            abi::distinct_add_seq(self.window_ms, key.as_ref(), value, self.time_ms, self.seq)
        }
    }

    /// Seqs of the events that last showed each value of `key` still in the window
    /// (ascending, at most 100): what a distinct-count alert names.
    pub fn seqs(&self, key: impl AsRef<[u8]>) -> Vec<i64> {
        abi::distinct_seqs(self.window_ms, key.as_ref())
    }

    /// The distinct values of `key` in the window.
    pub fn count(&self, key: impl AsRef<[u8]>) -> i64 {
        self.add(key, b"")
    }
}

/// A value remembered for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// The event time it was stored at.
    pub time_ms: i64,
}

impl Seen {
    /// The value as text (`None` if not UTF-8).
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// Last-seen values (see [`crate::state::LastSeen`]).
#[derive(Debug, Clone, Copy)]
pub struct LastSeenHandle {
    time_ms: i64,
}

impl LastSeenHandle {
    /// The value last stored for `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<Seen> {
        abi::last_seen_get(key.as_ref()).map(|(value, time_ms)| Seen { value, time_ms })
    }

    /// Stores `value` for `key` at the event time.
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        abi::last_seen_set(key.as_ref(), value.as_ref(), self.time_ms);
    }
}

/// Running statistics (see [`crate::state::Baseline`]).
#[derive(Debug, Clone, Copy)]
pub struct BaselineHandle;

impl BaselineHandle {
    /// Adds a sample for `key`.
    pub fn observe(&self, key: impl AsRef<[u8]>, x: f64) {
        abi::baseline_observe(key.as_ref(), x);
    }

    /// Count, mean and population stddev of `key`'s samples.
    pub fn get(&self, key: impl AsRef<[u8]>) -> BaselineStats {
        abi::baseline_get(key.as_ref())
    }
}
