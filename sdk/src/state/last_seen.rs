//! The last value seen for a key and its time (the `last_seen_get` / `last_seen_set` imports).
//!
//! Used by [`super::StateStore`] for `ctx.last_seen()`, e.g. the previous login location of
//! a user in `impossible_travel`.

/// A stored value and the event time it was stored at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSeen {
    /// The value bytes.
    pub value: Box<[u8]>,
    /// Event time of the `set`.
    pub time_ms: i64,
}

impl LastSeen {
    /// A value seen at `time_ms`.
    pub fn new(value: &[u8], time_ms: i64) -> LastSeen {
        LastSeen { value: value.into(), time_ms }
    }

    /// Replaces value and time (the last `set` wins, whatever its time).
    pub fn set(&mut self, value: &[u8], time_ms: i64) {
        if *self.value != *value {
            self.value = value.into();
        }
        self.time_ms = time_ms;
    }

    /// Approximate heap bytes held.
    pub fn approx_bytes(&self) -> usize {
        self.value.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_value_and_time() {
        let mut l = LastSeen::new(b"40.7,-74.0", 5);
        l.set(b"51.5,-0.1", 3);
        assert_eq!(l, LastSeen::new(b"51.5,-0.1", 3));
        assert_eq!(l.approx_bytes(), 9);
    }
}
