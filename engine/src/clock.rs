//! The server's wall clock, replaceable in tests: alert lifecycle times, the outbox's retry
//! schedule, circuit breakers, escalation timers and the daily digest all read it, so a
//! test moves time forward instead of sleeping. Event time (what rules see) never comes
//! from here.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::Notify;

/// System time, or a manual clock a test advances.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
    /// Woken when a manual clock moves (timer workers wait on it besides their tick).
    moved: Arc<Notify>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.manual {
            Some(t) => write!(f, "Clock::manual({})", t.load(Ordering::Relaxed)),
            None => f.write_str("Clock::system"),
        }
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock standing at `start_ms` until advanced.
    pub fn manual(start_ms: i64) -> Self {
        Self { manual: Some(Arc::new(AtomicI64::new(start_ms))), moved: Arc::default() }
    }

    /// Now, epoch ms.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(t) => t.load(Ordering::Acquire),
            None => crate::event::now_ms(),
        }
    }

    /// Moves a manual clock forward (no effect on the system clock) and wakes the timers.
    pub fn advance(&self, ms: i64) {
        if let Some(t) = &self.manual {
            t.fetch_add(ms, Ordering::AcqRel);
            self.moved.notify_waiters();
        }
    }

    /// Completes when a manual clock moves (never, for the system clock).
    pub async fn moved(&self) {
        if self.manual.is_some() {
            self.moved.notified().await;
        } else {
            std::future::pending::<()>().await;
        }
    }
}
