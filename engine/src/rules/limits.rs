//! Limits a rule cannot choose (DESIGN section 4): the per-rule token buckets for alerts and
//! log lines, the per-batch time budget, and strike decay. Everything here is per rule
//! *name* (shared by its versions and by every re-made instance), so neither a fault nor a
//! redeploy resets a rate limit. Used by `abi` (the imports), `instance` (the budget) and
//! `registry` (strikes).

use std::time::{Duration, Instant};

/// A token bucket: `capacity` tokens, refilled continuously at `capacity` per `period`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_ns: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens refilled over `period`.
    pub fn new(capacity: u32, period: Duration) -> Self {
        let capacity = f64::from(capacity);
        Self { capacity, tokens: capacity, per_ns: capacity / period.as_nanos().max(1) as f64, last: Instant::now() }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely (the flood is over).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos() as f64;
        self.tokens = (self.tokens + elapsed * self.per_ns).min(self.capacity);
        self.last = now;
    }
}

/// Per-rule rate limits.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Alerts per minute (burst of the same size).
    pub alerts_per_minute: u32,
    /// Log lines per minute (burst of the same size).
    pub log_lines_per_minute: u32,
    /// Decisions per minute (burst of the same size).
    pub decisions_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { alerts_per_minute: 600, log_lines_per_minute: 60, decisions_per_minute: 120 }
    }
}

/// The rate-limit state of one rule name.
#[derive(Debug)]
pub struct Governor {
    alerts: TokenBucket,
    logs: TokenBucket,
    decisions: TokenBucket,
    /// When the rule last had a decision refused (rate or policy): a refusal after a quiet
    /// minute starts a new "decision flood", reported once.
    last_decision_refusal: Option<Instant>,
    /// A flood was reported and has not ended yet (the bucket has not refilled).
    flooding: bool,
    /// Alerts dropped since the flood began.
    pub flood_dropped: u64,
}

/// What the alert limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAdmission {
    /// Within the rate.
    Accepted,
    /// Over the rate: dropped. `first` is true for the first drop of a flood, the one that
    /// is reported as an "alert flood" alert.
    Dropped {
        /// First drop of this flood.
        first: bool,
    },
}

impl Governor {
    /// Full buckets.
    pub fn new(limits: RateLimits) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            alerts: TokenBucket::new(limits.alerts_per_minute, minute),
            logs: TokenBucket::new(limits.log_lines_per_minute, minute),
            decisions: TokenBucket::new(limits.decisions_per_minute, minute),
            last_decision_refusal: None,
            flooding: false,
            flood_dropped: 0,
        }
    }

    /// Admits one alert at `now`.
    pub fn admit_alert(&mut self, now: Instant) -> AlertAdmission {
        if self.flooding && self.alerts.is_full(now) {
            self.flooding = false;
            self.flood_dropped = 0;
        }
        if self.alerts.take(now) {
            return AlertAdmission::Accepted;
        }
        self.flood_dropped += 1;
        let first = !self.flooding;
        self.flooding = true;
        AlertAdmission::Dropped { first }
    }

    /// Admits one decision at `now`.
    pub fn admit_decision(&mut self, now: Instant) -> bool {
        self.decisions.take(now)
    }

    /// Notes a refused decision at `now`; true when it starts a flood (none in the minute before).
    pub fn decision_refused(&mut self, now: Instant) -> bool {
        let quiet =
            self.last_decision_refusal.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(60));
        self.last_decision_refusal = Some(now);
        quiet
    }

    /// Admits one log line at `now`.
    pub fn admit_log(&mut self, now: Instant) -> bool {
        self.logs.take(now)
    }
}

/// The time budget of one rule over one batch of `events` events.
pub fn batch_budget(base: Duration, per_event: Duration, events: usize) -> Duration {
    base.saturating_add(per_event.saturating_mul(u32::try_from(events).unwrap_or(u32::MAX)))
}

/// Strikes of one deployment, forgiven after a clean interval.
#[derive(Debug, Default)]
pub struct Strikes {
    count: u64,
    last: Option<Instant>,
}

impl Strikes {
    /// Counts a fault at `now` and returns the strikes that now stand: the count starts
    /// over when the previous fault is older than `decay`.
    pub fn strike(&mut self, now: Instant, decay: Duration) -> u64 {
        if self.last.is_some_and(|last| now.saturating_duration_since(last) > decay) {
            self.count = 0;
        }
        self.count += 1;
        self.last = Some(now);
        self.count
    }

    /// Strikes standing at `now`.
    pub fn current(&self, now: Instant, decay: Duration) -> u64 {
        match self.last {
            Some(last) if now.saturating_duration_since(last) <= decay => self.count,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_over_their_period() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, Duration::from_secs(60));
        b.last = t0;
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0), "empty after the burst");
        assert!(b.take(t0 + Duration::from_secs(20)), "one token back after a third of the period");
        assert!(!b.take(t0 + Duration::from_secs(20)));
        assert!(b.is_full(t0 + Duration::from_secs(200)));
    }

    #[test]
    fn a_flood_is_reported_once_until_it_ends() {
        let t0 = Instant::now();
        let mut g =
            Governor::new(RateLimits { alerts_per_minute: 2, log_lines_per_minute: 1, decisions_per_minute: 1 });
        g.alerts.last = t0;
        assert_eq!(g.admit_alert(t0), AlertAdmission::Accepted);
        assert_eq!(g.admit_alert(t0), AlertAdmission::Accepted);
        assert_eq!(g.admit_alert(t0), AlertAdmission::Dropped { first: true });
        assert_eq!(g.admit_alert(t0), AlertAdmission::Dropped { first: false });
        assert_eq!(g.flood_dropped, 2);
        // Refilled completely: the flood is over; the next excess is a new flood.
        let later = t0 + Duration::from_secs(120);
        assert_eq!(g.admit_alert(later), AlertAdmission::Accepted);
        assert_eq!(g.admit_alert(later), AlertAdmission::Accepted);
        assert_eq!(g.admit_alert(later), AlertAdmission::Dropped { first: true });
        assert_eq!(g.flood_dropped, 1);
    }

    #[test]
    fn strikes_decay_after_a_clean_interval() {
        let t0 = Instant::now();
        let decay = Duration::from_secs(600);
        let mut s = Strikes::default();
        assert_eq!(s.strike(t0, decay), 1);
        assert_eq!(s.strike(t0 + Duration::from_secs(60), decay), 2);
        assert_eq!(s.current(t0 + Duration::from_secs(61), decay), 2);
        assert_eq!(s.current(t0 + Duration::from_secs(3600), decay), 0);
        assert_eq!(s.strike(t0 + Duration::from_secs(3600), decay), 1, "forgiven after 10 clean minutes");
    }

    #[test]
    fn budgets_grow_with_the_events_offered() {
        let b = batch_budget(Duration::from_millis(50), Duration::from_micros(100), 1500);
        assert_eq!(b, Duration::from_millis(200));
        assert_eq!(batch_budget(Duration::from_millis(50), Duration::from_micros(100), 0), Duration::from_millis(50));
    }
}
