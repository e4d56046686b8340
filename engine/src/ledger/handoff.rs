//! The hand-off between the sequencer and detection: what the sequencer tells detection
//! besides the batches themselves (skipped batches, the head), and the bound of the queue in
//! events and canonical bytes. The sequencer reserves room; detection releases it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::CommittedEvent;

/// What the sequencer tells detection besides the batches themselves, and the bound of the
/// hand-off in events and bytes (besides the channel's bound in batches).
#[derive(Debug)]
pub struct Handoff {
    /// Batches not handed over because detection's queue was full.
    pub skipped: AtomicU64,
    /// Seq of the last committed event (detection catches up to it when idle).
    pub head: AtomicU64,
    /// Events queued for detection now.
    pub queued_events: AtomicU64,
    /// Canonical bytes queued for detection now.
    pub queued_bytes: AtomicU64,
    /// Most events queued for detection at once since start (what sizing the bound needs).
    pub queued_events_max: AtomicU64,
    /// Most canonical bytes queued for detection at once since start.
    pub queued_bytes_max: AtomicU64,
    /// Most events the sequencer wrote in one group-commit transaction since start.
    pub group_events_max: AtomicU64,
    max_events: u64,
    max_bytes: u64,
}

impl Handoff {
    /// A hand-off holding at most `max_events` events and `max_bytes` canonical bytes.
    pub fn new(max_events: u64, max_bytes: u64) -> Self {
        Self {
            skipped: AtomicU64::new(0),
            head: AtomicU64::new(0),
            queued_events: AtomicU64::new(0),
            queued_bytes: AtomicU64::new(0),
            queued_events_max: AtomicU64::new(0),
            queued_bytes_max: AtomicU64::new(0),
            group_events_max: AtomicU64::new(0),
            max_events,
            max_bytes,
        }
    }

    /// Reserves room for a batch; false (nothing reserved) when it would pass a bound.
    /// Only the sequencer reserves, so check-then-add cannot overshoot.
    pub(crate) fn reserve(&self, events: u64, bytes: u64) -> bool {
        let (e, b) = (self.queued_events.load(Ordering::Acquire), self.queued_bytes.load(Ordering::Acquire));
        if e + events > self.max_events || b + bytes > self.max_bytes {
            return false;
        }
        let e = self.queued_events.fetch_add(events, Ordering::AcqRel) + events;
        let b = self.queued_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.queued_events_max.fetch_max(e, Ordering::Relaxed);
        self.queued_bytes_max.fetch_max(b, Ordering::Relaxed);
        true
    }

    /// Records the size of a group the sequencer is about to write.
    pub(crate) fn note_group(&self, events: usize) {
        self.group_events_max.fetch_max(events as u64, Ordering::Relaxed);
    }

    /// Gives back the room of a batch detection took off the queue.
    pub fn release(&self, batch: &[CommittedEvent]) {
        let bytes: usize = batch.iter().map(|e| e.size).sum();
        self.queued_events.fetch_sub(batch.len() as u64, Ordering::AcqRel);
        self.queued_bytes.fetch_sub(bytes as u64, Ordering::AcqRel);
    }
}
