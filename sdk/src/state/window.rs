//! Sliding-window sums as a ring of 60 buckets (the `window_add` import).
//!
//! Used by [`super::StateStore`] for `ctx.window(..)`; precision is one bucket
//! (`ceil(window_ms / 60)`): the oldest, partly expired bucket drops out whole.
//!
//! The ring is sparse (only buckets that hold something are stored, one per ring position),
//! so a key seen once costs one bucket, and the answer of the last call is cached: events
//! arriving in order within one bucket are counted in O(1); the ring is scanned once per
//! new bucket.

/// Buckets per window.
pub const BUCKETS: usize = 60;

/// Most event seqs a window remembers per key (the events an alert can name).
pub const MAX_WINDOW_SEQS: usize = 100;

/// A sum over the last `window_ms` of event time, bucketed.
#[derive(Debug, Clone)]
pub struct WindowCounter {
    window_ms: i64,
    width_ms: i64,
    /// Newest time seen.
    latest_ms: i64,
    /// `(bucket index, sum)`, at most one per ring position (`index mod 60`); bucket index =
    /// `time_ms.div_euclid(width_ms)`. The ring spans at least the window, so every bucket
    /// inside the window ending at `latest_ms` is live.
    buckets: Vec<(i64, i64)>,
    /// `(lo, hi, sum)`: the sum of the buckets with index in `(lo, hi]`, as last computed
    /// (`lo == hi`: nothing cached).
    cache: (i64, i64, i64),
    /// `(time, seq)` of the newest contributions that named their event (at most
    /// [`MAX_WINDOW_SEQS`]): what a threshold alert lists as the events it counted.
    seqs: std::collections::VecDeque<(i64, i64)>,
}

impl WindowCounter {
    /// A counter for windows of `window_ms` (at least 1).
    pub fn new(window_ms: i64) -> WindowCounter {
        let window_ms = window_ms.max(1);
        WindowCounter {
            window_ms,
            width_ms: (window_ms - 1) / BUCKETS as i64 + 1,
            latest_ms: i64::MIN,
            buckets: Vec::new(),
            cache: (0, 0, 0),
            seqs: std::collections::VecDeque::new(),
        }
    }

    /// The window length.
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// The bucket width, `ceil(window_ms / 60)`.
    pub fn bucket_width_ms(&self) -> i64 {
        self.width_ms
    }

    /// Heap bytes held by the buckets.
    pub fn heap_bytes(&self) -> usize {
        (self.buckets.capacity() + self.seqs.capacity()) * size_of::<(i64, i64)>()
    }

    /// [`Self::add`], remembering `seq` as one of the events counted (when `amount > 0`;
    /// seq 0 means "no event named", as in [`super::DistinctSet::add_seq`]).
    pub fn add_seq(&mut self, time_ms: i64, amount: i64, seq: i64) -> i64 {
        let sum = self.add(time_ms, amount);
        if amount > 0 && seq != 0 && time_ms > self.latest_ms.saturating_sub(self.window_ms) {
            if self.seqs.len() == MAX_WINDOW_SEQS {
                self.seqs.pop_front();
            }
            self.seqs.push_back((time_ms, seq));
        }
        let horizon = self.latest_ms.saturating_sub(self.window_ms);
        while self.seqs.front().is_some_and(|(t, _)| *t <= horizon) {
            self.seqs.pop_front();
        }
        sum
    }

    /// Seqs of the counted events still inside the window ending at the newest time seen,
    /// oldest first (at most [`MAX_WINDOW_SEQS`]).
    pub fn seqs(&self) -> Vec<i64> {
        let horizon = self.latest_ms.saturating_sub(self.window_ms);
        let mut out: Vec<i64> = self.seqs.iter().filter(|(t, _)| *t > horizon).map(|(_, s)| *s).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Adds `amount` (0: just read) at `time_ms` and returns the sum of the buckets inside
    /// `(time_ms - window_ms, time_ms]`. An event older than the window ending at the newest
    /// time seen is ignored, and the sum of that window is returned.
    pub fn add(&mut self, time_ms: i64, amount: i64) -> i64 {
        self.latest_ms = self.latest_ms.max(time_ms);
        let idx = time_ms.div_euclid(self.width_ms);
        if idx <= self.first_excluded(self.latest_ms) {
            return self.sum();
        }
        if amount != 0 {
            let pos = idx.rem_euclid(BUCKETS as i64);
            match self.buckets.iter().position(|(i, _)| i.rem_euclid(BUCKETS as i64) == pos) {
                Some(p) if self.buckets[p].0 == idx => self.buckets[p].1 = self.buckets[p].1.saturating_add(amount),
                // The ring spans at least the window, so a position holding another index
                // holds an older, expired bucket: it is replaced.
                Some(p) => {
                    let old = std::mem::replace(&mut self.buckets[p], (idx, amount));
                    self.uncache(old.0, old.1);
                }
                None => self.buckets.push((idx, amount)),
            }
            let (lo, hi, sum) = &mut self.cache;
            if *lo < idx && idx <= *hi {
                *sum = sum.saturating_add(amount);
            }
        }
        self.sum_between(self.first_excluded(time_ms), idx)
    }

    /// The sum of the window ending at the newest time seen.
    pub fn sum(&mut self) -> i64 {
        if self.latest_ms == i64::MIN {
            return 0;
        }
        self.sum_between(self.first_excluded(self.latest_ms), self.latest_ms.div_euclid(self.width_ms))
    }

    /// The newest bucket index outside the window ending at `time_ms`.
    fn first_excluded(&self, time_ms: i64) -> i64 {
        time_ms.saturating_sub(self.window_ms).div_euclid(self.width_ms)
    }

    /// Takes a dropped bucket out of the cached sum.
    fn uncache(&mut self, idx: i64, amount: i64) {
        let (lo, hi, sum) = &mut self.cache;
        if *lo < idx && idx <= *hi {
            *sum = sum.saturating_sub(amount);
            if *sum < 0 {
                // Saturation made the cached sum inexact: drop it.
                self.cache = (0, 0, 0);
            }
        }
    }

    /// Sum of the buckets with index in `(lo, hi]` (cached).
    fn sum_between(&mut self, lo: i64, hi: i64) -> i64 {
        if lo < hi && (lo, hi) == (self.cache.0, self.cache.1) {
            return self.cache.2;
        }
        let sum =
            self.buckets.iter().filter(|(i, _)| *i > lo && *i <= hi).fold(0i64, |acc, (_, s)| acc.saturating_add(*s));
        self.cache = (lo, hi, sum);
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_seqs_follow_the_window() {
        let mut w = WindowCounter::new(300_000);
        for i in 0..6 {
            w.add_seq(i * 1000, 1, 10 + i);
        }
        assert_eq!(w.seqs(), vec![10, 11, 12, 13, 14, 15]);
        // 10 minutes later only the new one is inside the window.
        w.add_seq(600_000, 1, 99);
        assert_eq!(w.seqs(), vec![99]);
        for i in 0..250 {
            w.add_seq(600_000 + i, 1, 1000 + i);
        }
        assert_eq!(w.seqs().len(), MAX_WINDOW_SEQS, "capped");
        assert_eq!(*w.seqs().last().unwrap(), 1249);
    }

    /// The dense ring this counter replaced, as the reference for the cached, sparse one.
    fn reference(window_ms: i64, events: &[(i64, i64)]) -> Vec<i64> {
        let width = (window_ms - 1) / BUCKETS as i64 + 1;
        let mut slots = [(i64::MIN, 0i64); BUCKETS];
        let mut latest = i64::MIN;
        let first_excluded = |t: i64| t.saturating_sub(window_ms).div_euclid(width);
        let sum = |slots: &[(i64, i64); BUCKETS], lo: i64, hi: i64| {
            slots.iter().filter(|(i, _)| *i > lo && *i <= hi).map(|(_, s)| *s).sum::<i64>()
        };
        events
            .iter()
            .map(|&(t, amount)| {
                latest = latest.max(t);
                let idx = t.div_euclid(width);
                if idx <= first_excluded(latest) {
                    return sum(&slots, first_excluded(latest), latest.div_euclid(width));
                }
                if amount != 0 {
                    let slot = &mut slots[idx.rem_euclid(BUCKETS as i64) as usize];
                    if slot.0 != idx {
                        *slot = (idx, 0);
                    }
                    slot.1 += amount;
                }
                sum(&slots, first_excluded(t), idx)
            })
            .collect()
    }

    #[test]
    fn agrees_with_the_dense_ring_on_a_pseudo_random_stream() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for window in [1, 7, 1000, 60_000, 100_000, 300_000] {
            let mut t = 0i64;
            let events: Vec<(i64, i64)> = (0..5000)
                .map(|_| {
                    let r = next();
                    // Mostly forward, sometimes late, sometimes a jump.
                    t += match r % 10 {
                        0 => -(((r >> 8) % (2 * window as u64 + 1)) as i64),
                        1 => ((r >> 8) % (3 * window as u64 + 1)) as i64,
                        _ => ((r >> 8) % (window as u64 / 20 + 2)) as i64,
                    };
                    (t, ((r >> 40) % 3) as i64)
                })
                .collect();
            let mut w = WindowCounter::new(window);
            let got: Vec<i64> = events.iter().map(|&(t, a)| w.add(t, a)).collect();
            assert_eq!(got, reference(window, &events), "window {window}");
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn counts_inside_the_window_and_expires() {
        let mut w = WindowCounter::new(5 * MIN);
        assert_eq!(w.bucket_width_ms(), 5_000);
        for i in 0..5 {
            assert_eq!(w.add(i * 1000, 1), i + 1);
        }
        assert_eq!(w.add(4 * MIN, 0), 5, "a read adds nothing");
        // 5 min after the first events they have all left the window.
        assert_eq!(w.add(5 * MIN + 4_999, 1), 1);
        assert_eq!(w.sum(), 1);
        assert!(w.heap_bytes() <= 64 * 16, "sparse: {}", w.heap_bytes());
    }

    #[test]
    fn spread_events_never_pile_up() {
        let mut w = WindowCounter::new(5 * MIN);
        let sums: Vec<i64> = (0..6).map(|i| w.add(i * 2 * MIN, 1)).collect();
        assert_eq!(sums, [1, 2, 3, 3, 3, 3]);
    }

    #[test]
    fn out_of_order_events() {
        let mut w = WindowCounter::new(5 * MIN);
        w.add(10 * MIN, 1);
        // Late but inside the ring: counted, sum ends at its own time.
        assert_eq!(w.add(9 * MIN, 1), 1);
        assert_eq!(w.sum(), 2);
        // Older than the window: ignored, the current sum is returned.
        assert_eq!(w.add(MIN, 5), 2);
        assert_eq!(w.add(10 * MIN, 0), 2);
    }

    #[test]
    fn amounts_negative_times_and_tiny_windows() {
        let mut w = WindowCounter::new(1);
        assert_eq!(w.bucket_width_ms(), 1);
        assert_eq!(w.add(-5, 3), 3);
        assert_eq!(w.add(-5, 4), 7);
        assert_eq!(w.add(-4, 1), 1);
        let mut odd = WindowCounter::new(100_000);
        assert_eq!(odd.bucket_width_ms(), 1_667);
        odd.add(0, 1);
        assert_eq!(odd.add(100_000, 1), 1, "the ring is wider than the window");
        let mut big = WindowCounter::new(3_600_000);
        assert_eq!(big.add(0, 1000), 1000);
        assert_eq!(big.add(1, 250), 1250);
    }
}
