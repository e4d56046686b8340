//! Running mean and population standard deviation per key (the `baseline_*` imports).
//!
//! Welford's online algorithm; used by [`super::StateStore`] for `ctx.baseline()`, e.g.
//! "more than mean + 3 stddev" in `api_key_anomaly`.

/// Count, mean and population standard deviation of the samples so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BaselineStats {
    /// Samples observed.
    pub count: u64,
    /// Their mean (0 when none).
    pub mean: f64,
    /// Their population standard deviation (0 when none).
    pub stddev: f64,
}

/// Welford accumulator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Baseline {
    count: u64,
    mean: f64,
    m2: f64,
}

impl Baseline {
    /// No samples yet.
    pub fn new() -> Baseline {
        Baseline::default()
    }

    /// Adds a sample; non-finite samples are ignored.
    pub fn observe(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// The statistics so far.
    pub fn stats(&self) -> BaselineStats {
        let stddev = if self.count == 0 { 0.0 } else { (self.m2 / self.count as f64).max(0.0).sqrt() };
        BaselineStats { count: self.count, mean: self.mean, stddev }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_mean_and_stddev() {
        let mut b = Baseline::new();
        assert_eq!(b.stats(), BaselineStats::default());
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            b.observe(x);
        }
        b.observe(f64::NAN);
        let s = b.stats();
        assert_eq!(s.count, 8);
        assert!((s.mean - 5.0).abs() < 1e-12);
        assert!((s.stddev - 2.0).abs() < 1e-12);
    }
}
