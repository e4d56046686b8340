//! Reads of the log are themselves logged (PCI DSS 10.2.1): each query, stats request,
//! export and verification a key makes is recorded here by the API (`api::events`,
//! `api::export`, `api::integrity`) and written to the chain, through the `Sequencer`, as a
//! system event: category `audit`, action `log_accessed`, `user_id` the key's id, `details`
//! what was read and how often.
//!
//! A key's reads are gathered for a window (`[audit] access_window_secs`, 60 s) from its
//! first read, then written as one event by a task that looks every `access_flush_ms`; the
//! next read opens the next window. So a key makes at most one event per window however
//! much it reads (reading the audit events back included: no feedback loop), and a read is
//! in the chain at most a window and a flush interval after it happened. Graceful shutdown
//! writes the open windows at once. The state is bounded: at most [`MAX_KEYS`] open
//! windows (only authenticated keys reach it) and [`MAX_FILTERS`] sample filters of at most
//! [`MAX_FILTER_CHARS`] each per window; reads past the key cap are counted, not recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::event::{NewEvent, format_rfc3339_ms, now_ms, system_event_with_id};
use crate::ledger::handoff::Handoff;
use crate::ledger::sequencer::SequencerHandle;
use crate::store::{Store, StoreError};

/// Most keys with an open window; reads of further keys are counted in
/// [`AccessLog::unrecorded`] until a window closes.
pub const MAX_KEYS: usize = 10_000;
/// Most distinct sample filters kept per window (the rest are counted).
pub const MAX_FILTERS: usize = 10;
/// Longest sample filter kept, characters (longer ones are cut).
pub const MAX_FILTER_CHARS: usize = 256;

/// What a key read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Read {
    /// `GET /v1/events`.
    EventsQuery,
    /// `GET /v1/events/stats`.
    EventsStats,
    /// `GET /v1/events/export`.
    EventsExport,
    /// `GET /v1/integrity/verify`.
    IntegrityVerify,
    /// `GET /v1/reports/security` and `/v1/reports/compliance`.
    Report,
}

impl Read {
    /// The name in the event's `details.reads`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EventsQuery => "events.query",
            Self::EventsStats => "events.stats",
            Self::EventsExport => "events.export",
            Self::IntegrityVerify => "integrity.verify",
            Self::Report => "reports",
        }
    }
}

/// One key's reads since its window opened.
#[derive(Debug, Clone)]
struct Window {
    /// First read, epoch ms.
    opened: i64,
    /// Newest read, epoch ms.
    last: i64,
    reads: BTreeMap<Read, u64>,
    /// Distinct sample filters (`events.query?user_id=...`), in the order first seen.
    filters: Vec<String>,
    /// Filters not kept past [`MAX_FILTERS`].
    filters_dropped: u64,
}

impl Window {
    fn new(now: i64) -> Self {
        Self { opened: now, last: now, reads: BTreeMap::new(), filters: Vec::new(), filters_dropped: 0 }
    }

    fn add(&mut self, read: Read, filter: &str, now: i64) {
        *self.reads.entry(read).or_default() += 1;
        self.last = self.last.max(now);
        let sample = if filter.is_empty() { read.as_str().to_owned() } else { format!("{}?{filter}", read.as_str()) };
        let sample: String = sample.chars().take(MAX_FILTER_CHARS).collect();
        if self.filters.contains(&sample) {
            return;
        }
        if self.filters.len() < MAX_FILTERS {
            self.filters.push(sample);
        } else {
            self.filters_dropped += 1;
        }
    }

    /// Folds a window that could not be written back into this (newer) one.
    fn absorb(&mut self, older: Window) {
        self.opened = self.opened.min(older.opened);
        self.last = self.last.max(older.last);
        for (read, n) in older.reads {
            *self.reads.entry(read).or_default() += n;
        }
        self.filters_dropped += older.filters_dropped;
        for f in older.filters {
            if self.filters.contains(&f) {
                continue;
            }
            if self.filters.len() < MAX_FILTERS {
                self.filters.push(f);
            } else {
                self.filters_dropped += 1;
            }
        }
    }
}

/// The open windows, as a pure state machine over explicit times (epoch ms).
#[derive(Debug)]
pub struct AccessWindows {
    window_ms: i64,
    open: HashMap<String, Window>,
}

impl AccessWindows {
    /// Windows of `window_ms`.
    pub fn new(window_ms: i64) -> Self {
        Self { window_ms: window_ms.max(1), open: HashMap::new() }
    }

    /// Records one read by `key_id` at `now`; false when it could not be (the key cap).
    pub fn record(&mut self, key_id: &str, read: Read, filter: &str, now: i64) -> bool {
        if let Some(w) = self.open.get_mut(key_id) {
            w.add(read, filter, now);
            return true;
        }
        if self.open.len() >= MAX_KEYS {
            return false;
        }
        let mut w = Window::new(now);
        w.add(read, filter, now);
        self.open.insert(key_id.to_owned(), w);
        true
    }

    /// Keys with an open window.
    pub fn open_keys(&self) -> usize {
        self.open.len()
    }

    /// Takes the windows that have closed by `now` (every one with `all`).
    fn take(&mut self, now: i64, all: bool) -> Vec<(String, Window)> {
        let due: Vec<String> =
            self.open.iter().filter(|(_, w)| all || w.opened + self.window_ms <= now).map(|(k, _)| k.clone()).collect();
        let mut taken: Vec<(String, Window)> =
            due.into_iter().filter_map(|k| self.open.remove(&k).map(|w| (k, w))).collect();
        taken.sort_by_key(|(_, w)| w.opened);
        taken
    }

    /// Puts back windows whose event could not be written (merged into a newer window of
    /// the same key, if one opened meanwhile).
    fn restore(&mut self, windows: Vec<(String, Window)>) {
        for (key, w) in windows {
            match self.open.get_mut(&key) {
                Some(newer) => newer.absorb(w),
                None => {
                    self.open.insert(key, w);
                }
            }
        }
    }

    /// The chain event of a closed window. Its id is derived from the key and the window's
    /// start, so writing it again after an uncertain commit stores it once.
    fn event(&self, key_id: &str, w: &Window) -> NewEvent {
        let reads: serde_json::Map<String, serde_json::Value> =
            w.reads.iter().map(|(r, n)| (r.as_str().to_owned(), json!(n))).collect();
        let mut details = json!({
            "reads": reads,
            "filters": w.filters,
            "window_start": format_rfc3339_ms(w.opened),
            "window_end": format_rfc3339_ms(w.opened + self.window_ms),
            "last_read": format_rfc3339_ms(w.last),
        });
        if w.filters_dropped > 0 {
            details["filters_dropped"] = json!(w.filters_dropped);
        }
        let id = format!("vigil:access:{key_id}:{}", w.opened);
        let mut ev = system_event_with_id(id, "audit", "log_accessed", key_id, details, now_ms());
        ev.fields.severity = "low".into();
        ev
    }
}

/// The recorder the API shares, and the task that writes closed windows to the chain.
#[derive(Clone)]
pub struct AccessLog {
    windows: Arc<Mutex<AccessWindows>>,
    sequencer: SequencerHandle,
    store: Store,
    /// The sequencer's committed head.
    handoff: Arc<Handoff>,
    /// Reads not recorded because [`MAX_KEYS`] windows were open.
    pub unrecorded: Arc<AtomicU64>,
    /// `log_accessed` events written.
    pub written: Arc<AtomicU64>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("open_keys", &self.open_keys()).finish_non_exhaustive()
    }
}

impl AccessLog {
    /// A recorder writing through `sequencer`, one event per key per `window`.
    pub fn new(sequencer: SequencerHandle, store: Store, handoff: Arc<Handoff>, window: Duration) -> Self {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        Self {
            windows: Arc::new(Mutex::new(AccessWindows::new(window_ms))),
            sequencer,
            store,
            handoff,
            unrecorded: Arc::default(),
            written: Arc::default(),
        }
    }

    /// Records a read by `key_id`; `filter` is the request's query string (masked by the
    /// caller; kept as a bounded sample).
    pub fn record(&self, key_id: &str, read: Read, filter: &str) {
        let recorded = self.lock().record(key_id, read, filter, now_ms());
        if !recorded && self.unrecorded.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                max_keys = MAX_KEYS,
                "Too many keys reading the log at once; further reads are only counted"
            );
        }
    }

    /// Keys with an open window.
    pub fn open_keys(&self) -> usize {
        self.lock().open_keys()
    }

    /// Writes the windows that have closed; returns how many events were written.
    pub async fn flush_due(&self) -> Result<usize, StoreError> {
        let due = self.lock().take(now_ms(), false);
        self.write(due).await
    }

    /// Writes every open window now (graceful shutdown, tests).
    pub async fn flush_all(&self) -> Result<usize, StoreError> {
        let all = self.lock().take(now_ms(), true);
        self.write(all).await
    }

    async fn write(&self, windows: Vec<(String, Window)>) -> Result<usize, StoreError> {
        if windows.is_empty() {
            return Ok(0);
        }
        // Never on top of a log whose newest rows vanished (a truncation the sequencer has
        // not met yet): the checkpoint after this write would re-anchor the shortened
        // database and hide the loss from the start-up comparison. The records wait.
        let committed = self.handoff.head.load(Ordering::Relaxed) as i64;
        let gone = match committed {
            0 => Ok(false),
            seq => self.store.row(seq).await.map(|row| row.is_none()),
        };
        if !matches!(gone, Ok(false)) {
            self.lock().restore(windows);
            return Err(gone.err().unwrap_or_else(|| StoreError::Corrupt {
                seq: committed,
                problem: "the newest committed row is gone (truncated?); log access records are not written on top"
                    .into(),
            }));
        }
        let events: Vec<NewEvent> = {
            let state = self.lock();
            windows.iter().map(|(k, w)| state.event(k, w)).collect()
        };
        match self.sequencer.submit(events).await {
            Ok(acks) => {
                self.written.fetch_add(acks.len() as u64, Ordering::Relaxed);
                Ok(acks.len())
            }
            Err(e) => {
                // Kept for the next flush: a full disk or a busy database must not lose
                // the record of who read the log.
                self.lock().restore(windows);
                Err(e)
            }
        }
    }

    /// Writes closed windows every `every` until the sequencer stops.
    pub fn spawn(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Each distinct problem is logged once, not at every tick.
            let mut last_problem = String::new();
            loop {
                tick.tick().await;
                match self.flush_due().await {
                    Ok(_) => last_problem.clear(),
                    Err(StoreError::SequencerStopped) => return,
                    Err(e) => {
                        let problem = e.to_string();
                        if problem != last_problem {
                            tracing::warn!(error = %problem, "Could not write the log access records; retrying");
                            last_problem = problem;
                        }
                    }
                }
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AccessWindows> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn a_keys_reads_in_a_window_are_one_event_and_the_next_read_opens_the_next() {
        let mut w = AccessWindows::new(MIN);
        for i in 0..50 {
            assert!(w.record("k_a", Read::EventsQuery, &format!("user_id=u{}", i % 3), 1000 + i));
        }
        w.record("k_a", Read::IntegrityVerify, "", 2000);
        w.record("k_b", Read::EventsExport, "format=csv", 30_000);
        assert!(w.take(1000 + MIN - 1, false).is_empty(), "nothing closes before its window ends");
        let closed = w.take(1000 + MIN, false);
        assert_eq!(closed.len(), 1, "k_b's window is still open");
        let ev = w.event(&closed[0].0, &closed[0].1);
        let fields = ev.fields.to_map();
        assert_eq!(fields["category"], "audit");
        assert_eq!(fields["action"], "log_accessed");
        assert_eq!(fields["user_id"], "k_a");
        let d = &fields["details"];
        assert_eq!(d["reads"], json!({"events.query": 50, "integrity.verify": 1}));
        assert_eq!(
            d["filters"],
            json!([
                "events.query?user_id=u0",
                "events.query?user_id=u1",
                "events.query?user_id=u2",
                "integrity.verify"
            ])
        );
        assert!(ev.event_id.starts_with("vigil:access:k_a:"));
        w.record("k_a", Read::EventsQuery, "", 1000 + MIN + 5);
        assert_eq!(w.take(30_000 + MIN, false).len(), 1, "k_b now; k_a's new window is open");
        assert_eq!(w.take(i64::MAX, false).len(), 1);
    }

    #[test]
    fn the_state_is_bounded() {
        let mut w = AccessWindows::new(MIN);
        for i in 0..100 {
            w.record("k", Read::EventsQuery, &format!("ip=10.0.0.{i}&{}", "x".repeat(10_000)), 0);
        }
        let (key, win) = w.take(0, true).pop().unwrap();
        assert_eq!(win.filters.len(), MAX_FILTERS);
        assert!(win.filters.iter().all(|f| f.chars().count() <= MAX_FILTER_CHARS));
        assert_eq!(win.filters_dropped, 90);
        assert_eq!(w.event(&key, &win).fields.to_map()["details"]["filters_dropped"], 90);
        for i in 0..MAX_KEYS {
            assert!(w.record(&format!("k{i}"), Read::EventsStats, "", 0));
        }
        assert!(!w.record("one_too_many", Read::EventsStats, "", 0));
        assert!(w.record("k7", Read::EventsStats, "", 0), "a key with an open window is still counted");
    }

    #[test]
    fn a_window_that_could_not_be_written_is_kept() {
        let mut w = AccessWindows::new(MIN);
        w.record("k", Read::EventsQuery, "a=1", 0);
        let taken = w.take(MIN, false);
        w.record("k", Read::EventsExport, "", MIN + 1);
        w.restore(taken);
        let (_, win) = w.take(i64::MAX, true).pop().unwrap();
        assert_eq!(win.opened, 0, "the older start is kept");
        assert_eq!(win.reads.values().sum::<u64>(), 2);
    }
}
