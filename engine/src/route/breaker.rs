//! Circuit breaker per receiver: closed until `failures` failed deliveries within
//! `window`, then open (nothing is sent; notifications wait in the outbox) for `open_for`,
//! then half-open: up to `trials` calls go through, `close_after` successes close it and a
//! failure opens it again. Operators can reset it or force it open or closed. Time comes
//! from the server clock (ms), so tests drive it. State is kept in memory: a restart
//! starts every breaker closed (the outbox keeps what was waiting).

use std::collections::VecDeque;

use serde_json::{Value, json};

use crate::config::BreakerConfig;

/// Breaker states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through.
    Closed,
    /// Calls wait.
    Open,
    /// A few trial calls go through.
    HalfOpen,
}

impl State {
    /// API name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// Operator override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forced {
    /// Held open until reset.
    Open,
    /// Held closed until reset.
    Closed,
}

/// One receiver's breaker and counters.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
    forced: Option<Forced>,
    failures: VecDeque<i64>,
    opened_at: i64,
    trials_started: u32,
    trial_successes: u32,
    /// Deliveries that succeeded.
    pub delivered: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Last error (no secrets).
    pub last_error: Option<(i64, String)>,
    /// Times it opened.
    pub opened: u64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: State::Closed,
            forced: None,
            failures: VecDeque::new(),
            opened_at: 0,
            trials_started: 0,
            trial_successes: 0,
            delivered: 0,
            failed: 0,
            last_error: None,
            opened: 0,
        }
    }

    /// The state at `now` (an open breaker turns half-open when its time is up).
    pub fn state(&mut self, now: i64) -> State {
        match self.forced {
            Some(Forced::Open) => return State::Open,
            Some(Forced::Closed) => return State::Closed,
            None => {}
        }
        if self.state == State::Open && now - self.opened_at >= self.config.open_secs as i64 * 1000 {
            self.state = State::HalfOpen;
            self.trials_started = 0;
            self.trial_successes = 0;
        }
        self.state
    }

    /// Whether a call may go now (counts a half-open trial).
    pub fn allow(&mut self, now: i64) -> bool {
        match self.state(now) {
            State::Closed => true,
            State::Open => false,
            State::HalfOpen if self.trials_started < self.config.half_open_trials => {
                self.trials_started += 1;
                true
            }
            State::HalfOpen => false,
        }
    }

    /// A call succeeded.
    pub fn success(&mut self, now: i64) {
        self.delivered += 1;
        if self.forced.is_some() {
            return;
        }
        if self.state(now) == State::HalfOpen {
            self.trial_successes += 1;
            if self.trial_successes >= self.config.close_after {
                self.state = State::Closed;
                self.failures.clear();
            }
        }
    }

    /// A call failed (retryably: the receiver is unhealthy).
    pub fn failure(&mut self, now: i64, error: &str) {
        self.failed += 1;
        self.last_error = Some((now, error.chars().take(512).collect()));
        if self.forced.is_some() {
            return;
        }
        match self.state(now) {
            State::HalfOpen => self.open(now),
            State::Closed => {
                let window = self.config.window_secs as i64 * 1000;
                self.failures.push_back(now);
                while self.failures.front().is_some_and(|t| now - t > window) {
                    self.failures.pop_front();
                }
                if self.failures.len() >= self.config.failures as usize {
                    self.open(now);
                }
            }
            State::Open => {}
        }
    }

    /// Records an error that is not the receiver's health (a 4xx not retried).
    pub fn rejected(&mut self, now: i64, error: &str) {
        self.failed += 1;
        self.last_error = Some((now, error.chars().take(512).collect()));
        // The receiver answered: as a trial call, that is a healthy one (else a half-open
        // breaker whose trials all got a 4xx would never close).
        if self.forced.is_none() && self.state(now) == State::HalfOpen {
            self.trial_successes += 1;
            if self.trial_successes >= self.config.close_after {
                self.state = State::Closed;
                self.failures.clear();
            }
        }
    }

    fn open(&mut self, now: i64) {
        self.state = State::Open;
        self.opened_at = now;
        self.opened += 1;
        self.failures.clear();
    }

    /// `reset`, `force_open` or `force_close`.
    pub fn command(&mut self, action: &str, now: i64) -> Result<(), String> {
        match action {
            "reset" => {
                self.forced = None;
                self.state = State::Closed;
                self.failures.clear();
            }
            "force_open" => {
                self.forced = Some(Forced::Open);
                self.opened_at = now;
            }
            "force_close" => self.forced = Some(Forced::Closed),
            other => return Err(format!("`action` must be reset, force_open or force_close, not `{other}`")),
        }
        Ok(())
    }

    /// API shape.
    pub fn to_json(&mut self, now: i64) -> Value {
        let state = self.state(now);
        json!({
            "state": state.as_str(),
            "forced": self.forced.map(|f| match f { Forced::Open => "open", Forced::Closed => "closed" }),
            "recent_failures": self.failures.len(),
            "delivered": self.delivered,
            "failed": self.failed,
            "opened": self.opened,
            "last_error": self.last_error.as_ref().map(|(_, e)| e),
            "last_error_at": self.last_error.as_ref().map(|(t, _)| crate::event::format_rfc3339_ms(*t)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_half_opens_and_closes_with_the_seed_numbers() {
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..4 {
            b.failure(i * 1000, "x");
        }
        assert_eq!(b.state(4000), State::Closed);
        b.failure(5000, "x");
        assert_eq!(b.state(5000), State::Open);
        assert!(!b.allow(34_000));
        assert_eq!(b.state(35_000), State::HalfOpen);
        assert!(b.allow(35_000) && b.allow(35_000) && b.allow(35_000));
        assert!(!b.allow(35_000), "only 3 trial calls");
        b.success(35_100);
        assert_eq!(b.state(35_100), State::HalfOpen);
        b.success(35_200);
        assert_eq!(b.state(35_200), State::Closed);
    }

    #[test]
    fn failures_outside_the_window_do_not_count_and_a_failed_trial_reopens() {
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..4 {
            b.failure(i * 1000, "x");
        }
        b.failure(70_000, "x");
        assert_eq!(b.state(70_000), State::Closed);
        for i in 0..5 {
            b.failure(80_000 + i, "x");
        }
        assert_eq!(b.state(80_010), State::Open);
        assert!(b.allow(111_000));
        b.failure(111_000, "x");
        assert_eq!(b.state(111_000), State::Open);
        b.command("force_close", 111_000).unwrap();
        assert_eq!(b.state(111_000), State::Closed);
        b.command("force_open", 111_000).unwrap();
        assert!(!b.allow(999_999));
        b.command("reset", 999_999).unwrap();
        assert!(b.allow(999_999));
        assert!(b.command("explode", 0).is_err());
    }

    #[test]
    fn trial_calls_answered_with_a_4xx_still_close_it() {
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..5 {
            b.failure(i, "x");
        }
        assert!(b.allow(31_000) && b.allow(31_000) && b.allow(31_000));
        b.rejected(31_000, "HTTP 409");
        b.rejected(31_001, "HTTP 409");
        assert_eq!(b.state(31_002), State::Closed, "the receiver answered: not stuck half-open");
    }
}
