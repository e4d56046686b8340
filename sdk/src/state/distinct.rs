//! Distinct values per key within a window (the `distinct_add` import).
//!
//! Used by [`super::StateStore`] for `ctx.distinct(..)`: remembers the last time each value
//! was seen and counts those seen within the window; capped, oldest evicted first.

use std::collections::HashMap;

/// Default cap on values remembered per set.
pub const DEFAULT_MAX_DISTINCT_VALUES: usize = 10_000;

/// The set of values seen within the last `window_ms` of event time.
#[derive(Debug, Clone)]
pub struct DistinctSet {
    window_ms: i64,
    max_values: usize,
    /// Newest time seen; the window ends here.
    latest: i64,
    /// A lower bound of the oldest last-seen time (exact right after a prune).
    oldest: i64,
    /// Value -> (last time seen, seq of that event; 0 when not given).
    values: HashMap<Box<[u8]>, (i64, i64), foldhash::fast::RandomState>,
    value_bytes: usize,
}

impl DistinctSet {
    /// A set for windows of `window_ms` (at least 1), capped at [`DEFAULT_MAX_DISTINCT_VALUES`].
    pub fn new(window_ms: i64) -> DistinctSet {
        DistinctSet::with_max_values(window_ms, DEFAULT_MAX_DISTINCT_VALUES)
    }

    /// A set remembering at most `max_values` values (at least 1).
    pub fn with_max_values(window_ms: i64, max_values: usize) -> DistinctSet {
        DistinctSet {
            window_ms: window_ms.max(1),
            max_values: max_values.max(1),
            latest: i64::MIN,
            oldest: i64::MAX,
            values: HashMap::default(),
            value_bytes: 0,
        }
    }

    /// Adds `value` seen at `time_ms` (empty: just read) and returns how many distinct values
    /// were seen in `(latest - window_ms, latest]`, `latest` being the newest time seen. A
    /// value older than that window is ignored.
    pub fn add(&mut self, time_ms: i64, value: &[u8]) -> usize {
        self.add_seq(time_ms, value, 0)
    }

    /// [`Self::add`], remembering `seq` as the event that last showed `value`.
    pub fn add_seq(&mut self, time_ms: i64, value: &[u8], seq: i64) -> usize {
        self.latest = self.latest.max(time_ms);
        let cutoff = self.latest.saturating_sub(self.window_ms);
        if !value.is_empty() && time_ms > cutoff {
            if let Some((t, s)) = self.values.get_mut(value) {
                if time_ms >= *t {
                    *t = time_ms;
                    if seq != 0 {
                        *s = seq;
                    }
                }
            } else {
                if self.values.len() >= self.max_values {
                    self.evict_oldest();
                }
                self.values.insert(value.into(), (time_ms, seq));
                self.value_bytes += value.len();
                self.oldest = self.oldest.min(time_ms);
            }
        }
        if self.oldest <= cutoff {
            self.prune(cutoff);
        }
        self.values.len()
    }

    /// Seqs of the events that last showed each value still in the window, ascending (the
    /// newest [`super::MAX_WINDOW_SEQS`] by time; values added without a seq are left out).
    pub fn seqs(&self) -> Vec<i64> {
        let cutoff = self.latest.saturating_sub(self.window_ms);
        let mut live: Vec<(i64, i64)> = self.values.values().filter(|(t, s)| *t > cutoff && *s != 0).copied().collect();
        live.sort_unstable_by(|a, b| b.cmp(a));
        live.truncate(super::MAX_WINDOW_SEQS);
        let mut out: Vec<i64> = live.into_iter().map(|(_, s)| s).collect();
        out.sort_unstable();
        out
    }

    /// Values currently remembered.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value is remembered.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Approximate heap bytes held.
    pub fn approx_bytes(&self) -> usize {
        self.value_bytes + self.values.capacity() * (size_of::<(Box<[u8]>, (i64, i64))>() + 1)
    }

    fn prune(&mut self, cutoff: i64) {
        let mut freed = 0;
        self.values.retain(|v, (t, _)| {
            let keep = *t > cutoff;
            if !keep {
                freed += v.len();
            }
            keep
        });
        self.value_bytes -= freed;
        self.oldest = self.values.values().map(|(t, _)| *t).min().unwrap_or(i64::MAX);
    }

    fn evict_oldest(&mut self) {
        let oldest = self.values.iter().min_by_key(|(_, (t, _))| *t).map(|(v, _)| v.clone());
        if let Some(v) = oldest {
            self.value_bytes -= v.len();
            self.values.remove(&v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn counts_distinct_values_in_the_window() {
        let mut s = DistinctSet::new(HOUR);
        assert_eq!(s.add(0, b"u1"), 1);
        assert_eq!(s.add(1, b"u1"), 1, "repeats count once");
        assert_eq!(s.add(2, b"u2"), 2);
        assert_eq!(s.add(3, b""), 2, "empty value just reads");
        // u1 was refreshed at 1, u2 seen at 2: at HOUR + 1 only u2 remains.
        assert_eq!(s.add(HOUR + 1, b""), 1);
        assert_eq!(s.add(HOUR + 2, b""), 0);
        assert!(s.is_empty());
    }

    #[test]
    fn seqs_name_the_event_that_last_showed_each_value() {
        let mut s = DistinctSet::new(HOUR);
        s.add_seq(0, b"u1", 10);
        s.add_seq(1, b"u2", 11);
        s.add_seq(2, b"u1", 12);
        s.add(3, b"u3");
        assert_eq!(s.seqs(), vec![11, 12], "u1's latest event; u3 had no seq");
        s.add_seq(HOUR + 2, b"u4", 40);
        assert_eq!(s.seqs(), vec![40], "the others left the window");
    }

    #[test]
    fn late_values_outside_the_window_are_ignored() {
        let mut s = DistinctSet::new(HOUR);
        s.add(2 * HOUR, b"a");
        assert_eq!(s.add(HOUR, b"b"), 1);
        assert_eq!(s.add(HOUR + 1, b"c"), 2, "late but inside the window");
    }

    #[test]
    fn cap_evicts_the_oldest_value() {
        let mut s = DistinctSet::with_max_values(HOUR, 3);
        for (t, v) in [(1, "a"), (2, "b"), (3, "c")] {
            s.add(t, v.as_bytes());
        }
        s.add(0, b"a");
        assert_eq!(s.add(4, b"d"), 3);
        assert!(!s.values.contains_key(b"a".as_slice()), "a (last seen at 1) was the oldest");
        assert!(s.values.contains_key(b"d".as_slice()));
    }
}
