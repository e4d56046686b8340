//! Sliding-window sums as a ring of 60 buckets (the `window_add` import).
//!
//! Used by [`super::StateStore`] for `ctx.window(..)`; precision is one bucket
//! (`ceil(window_ms / 60)`): the oldest, partly expired bucket drops out whole.

/// Buckets per window.
pub const BUCKETS: usize = 60;

/// A sum over the last `window_ms` of event time, bucketed.
#[derive(Debug, Clone)]
pub struct WindowCounter {
    window_ms: i64,
    width_ms: i64,
    /// Newest time seen.
    latest_ms: i64,
    /// `(bucket index, sum)`, bucket index = `time_ms.div_euclid(width_ms)`. The ring spans
    /// at least the window, so every bucket inside the window ending at `latest_ms` is live.
    slots: [(i64, i64); BUCKETS],
}

impl WindowCounter {
    /// A counter for windows of `window_ms` (at least 1).
    pub fn new(window_ms: i64) -> WindowCounter {
        let window_ms = window_ms.max(1);
        WindowCounter {
            window_ms,
            width_ms: (window_ms - 1) / BUCKETS as i64 + 1,
            latest_ms: i64::MIN,
            slots: [(i64::MIN, 0); BUCKETS],
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
            let slot = &mut self.slots[idx.rem_euclid(BUCKETS as i64) as usize];
            // The ring spans at least the window, so a slot holding another index holds an
            // older, expired bucket.
            if slot.0 != idx {
                *slot = (idx, 0);
            }
            slot.1 = slot.1.saturating_add(amount);
        }
        self.sum_between(self.first_excluded(time_ms), idx)
    }

    /// The sum of the window ending at the newest time seen.
    pub fn sum(&self) -> i64 {
        if self.latest_ms == i64::MIN {
            return 0;
        }
        self.sum_between(self.first_excluded(self.latest_ms), self.latest_ms.div_euclid(self.width_ms))
    }

    /// The newest bucket index outside the window ending at `time_ms`.
    fn first_excluded(&self, time_ms: i64) -> i64 {
        time_ms.saturating_sub(self.window_ms).div_euclid(self.width_ms)
    }

    /// Sum of the buckets with index in `(lo, hi]`.
    fn sum_between(&self, lo: i64, hi: i64) -> i64 {
        self.slots.iter().filter(|(i, _)| *i > lo && *i <= hi).fold(0i64, |acc, (_, s)| acc.saturating_add(*s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
