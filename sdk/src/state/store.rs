//! One rule's state: every key of every kind, bounded in keys and bytes, LRU eviction.
//!
//! Each method is one state import of ABI.md, so the host's import functions are one-liners
//! over a `StateStore` it keeps per rule name; [`crate::testing`] uses it the same way.
//! Entries are keyed by (kind, window, key bytes); reads of missing keys create nothing.
//! Everything a rule (or the events it reads) controls is bounded: keys longer than
//! [`MAX_KEY_BYTES`] and distinct-set values longer than [`MAX_DISTINCT_VALUE_BYTES`] are
//! replaced by a keyed 128-bit hash (seeded per process, so collisions cannot be crafted),
//! last-seen values longer than [`MAX_LAST_SEEN_BYTES`] likewise, and the byte budget counts
//! the newest entry too: an entry that alone exceeds it is not kept.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use super::{Baseline, BaselineStats, DEFAULT_MAX_DISTINCT_VALUES, DistinctSet, LastSeen, WindowCounter};

/// Longest key kept as is; longer keys are shortened by [`normalize_key`].
pub const MAX_KEY_BYTES: usize = 256;
/// Longest distinct-set value kept as is; longer values are replaced by their keyed hash.
pub const MAX_DISTINCT_VALUE_BYTES: usize = 64;
/// Longest last-seen value kept as is; longer values are replaced by their keyed hash.
pub const MAX_LAST_SEEN_BYTES: usize = 1024;

/// A keyed 128-bit hash of `bytes`: two independently seeded 64-bit hashes (foldhash,
/// fast on long inputs), the seeds drawn once per process.
fn digest128(bytes: &[u8]) -> [u8; 16] {
    static SEEDS: OnceLock<[foldhash::quality::RandomState; 2]> = OnceLock::new();
    let seeds =
        SEEDS.get_or_init(|| [foldhash::quality::RandomState::default(), foldhash::quality::RandomState::default()]);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&seeds[0].hash_one(bytes).to_le_bytes());
    out[8..].copy_from_slice(&seeds[1].hash_one(bytes).to_le_bytes());
    out
}

/// `bytes` itself when at most `max` bytes long, else `#` and its keyed 128-bit hash.
pub fn bounded_value(bytes: &[u8], max: usize) -> Cow<'_, [u8]> {
    if bytes.len() <= max {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(17);
    out.push(b'#');
    out.extend_from_slice(&digest128(bytes));
    Cow::Owned(out)
}

/// Bounds of one rule's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Most entries (each kind/window/key is one entry); default 100 000.
    pub max_keys: usize,
    /// Approximate byte budget of all entries; default 64 MiB.
    pub max_bytes: usize,
    /// Most values per distinct set; default 10 000.
    pub max_distinct_values: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits { max_keys: 100_000, max_bytes: 64 << 20, max_distinct_values: DEFAULT_MAX_DISTINCT_VALUES }
    }
}

/// Keys longer than [`MAX_KEY_BYTES`] become their first 223 bytes, `#` and 32 hex digits of
/// the keyed 128-bit hash of the whole key; shorter keys are unchanged.
pub fn normalize_key(key: &[u8]) -> Cow<'_, [u8]> {
    if key.len() <= MAX_KEY_BYTES {
        return Cow::Borrowed(key);
    }
    let mut out = key[..223].to_vec();
    out.push(b'#');
    for b in digest128(key) {
        out.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    Cow::Owned(out)
}

const WINDOW: u8 = 1;
const DISTINCT: u8 = 2;
const LAST_SEEN: u8 = 3;
const BASELINE: u8 = 4;
const NIL: usize = usize::MAX;
/// Rough per-entry overhead of the map slot and the list node.
const ENTRY_OVERHEAD: usize = 64;

#[derive(Debug, Clone)]
enum Entry {
    Window(WindowCounter),
    Distinct(DistinctSet),
    LastSeen(LastSeen),
    Baseline(Baseline),
}

impl Entry {
    fn heap_bytes(&self) -> usize {
        match self {
            Entry::Window(w) => w.heap_bytes(),
            Entry::Distinct(d) => d.approx_bytes(),
            Entry::LastSeen(l) => l.approx_bytes(),
            Entry::Baseline(_) => 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    /// Shared with the map (one allocation per entry's key).
    key: Arc<[u8]>,
    entry: Entry,
    bytes: usize,
    prev: usize,
    next: usize,
}

/// The state of one rule. Not shared: wrap it in a lock to share it between workers.
#[derive(Debug, Clone)]
pub struct StateStore {
    limits: StateLimits,
    /// Encoded key (kind, window, key bytes) to node index.
    map: HashMap<Arc<[u8]>, usize, foldhash::fast::RandomState>,
    nodes: Vec<Option<Node>>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used: evicted first.
    tail: usize,
    bytes: usize,
    evictions: u64,
    scratch: Vec<u8>,
}

impl Default for StateStore {
    fn default() -> Self {
        StateStore::new(StateLimits::default())
    }
}

impl StateStore {
    /// An empty store with these limits.
    pub fn new(limits: StateLimits) -> StateStore {
        StateStore {
            limits,
            map: HashMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            bytes: 0,
            evictions: 0,
            scratch: Vec::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> StateLimits {
        self.limits
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Approximate bytes held (the metric, and what `max_bytes` bounds).
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }

    /// Entries evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Drops every entry (the eviction counter is kept).
    pub fn clear(&mut self) {
        *self = StateStore { evictions: self.evictions, ..StateStore::new(self.limits) };
    }

    /// `window_add`: adds `amount` (0: just read) for `key` at `time_ms`; returns the sum over
    /// `(time_ms - window_ms, time_ms]` (see [`WindowCounter::add`]).
    pub fn window_add(&mut self, window_ms: i64, key: &[u8], time_ms: i64, amount: i64) -> i64 {
        self.window_add_seq(window_ms, key, time_ms, amount, 0)
    }

    /// `window_add_seq`: [`Self::window_add`] that also remembers `seq` among the events
    /// counted for `key` (see [`WindowCounter::add_seq`]).
    pub fn window_add_seq(&mut self, window_ms: i64, key: &[u8], time_ms: i64, amount: i64, seq: i64) -> i64 {
        let window_ms = window_ms.max(1);
        let idx = if amount == 0 {
            self.find(WINDOW, window_ms, key)
        } else {
            self.find_or_insert(WINDOW, window_ms, key, || Entry::Window(WindowCounter::new(window_ms)))
        };
        let Some(i) = idx else { return 0 };
        let (sum, grew) = match self.entry_mut(i) {
            Entry::Window(w) => {
                let before = w.heap_bytes();
                let sum = w.add_seq(time_ms, amount, seq);
                (sum, w.heap_bytes() != before)
            }
            _ => (0, false),
        };
        if grew {
            self.resized(i);
        }
        sum
    }

    /// `window_seqs`: the seqs of the events counted for `key` still in the window.
    pub fn window_seqs(&mut self, window_ms: i64, key: &[u8]) -> Vec<i64> {
        let Some(i) = self.find(WINDOW, window_ms.max(1), key) else { return Vec::new() };
        match self.entry_mut(i) {
            Entry::Window(w) => w.seqs(),
            _ => Vec::new(),
        }
    }

    /// `distinct_add`: adds `value` (empty: just read) to `key`'s set at `time_ms`; returns
    /// the number of distinct values in the window (see [`DistinctSet::add`]).
    pub fn distinct_add(&mut self, window_ms: i64, key: &[u8], value: &[u8], time_ms: i64) -> i64 {
        self.distinct_add_seq(window_ms, key, value, time_ms, 0)
    }

    /// `distinct_seqs`: the seqs of the events that last showed each value of `key`'s set
    /// still in the window (see [`DistinctSet::seqs`]).
    pub fn distinct_seqs(&mut self, window_ms: i64, key: &[u8]) -> Vec<i64> {
        let Some(i) = self.find(DISTINCT, window_ms.max(1), key) else { return Vec::new() };
        match self.entry_mut(i) {
            Entry::Distinct(d) => d.seqs(),
            _ => Vec::new(),
        }
    }

    /// `distinct_add_seq`: [`Self::distinct_add`] remembering `seq` with the value.
    pub fn distinct_add_seq(&mut self, window_ms: i64, key: &[u8], value: &[u8], time_ms: i64, seq: i64) -> i64 {
        let window_ms = window_ms.max(1);
        let value = bounded_value(value, MAX_DISTINCT_VALUE_BYTES);
        let value = value.as_ref();
        let max = self.limits.max_distinct_values;
        let idx = if value.is_empty() {
            self.find(DISTINCT, window_ms, key)
        } else {
            self.find_or_insert(DISTINCT, window_ms, key, || {
                Entry::Distinct(DistinctSet::with_max_values(window_ms, max))
            })
        };
        let Some(i) = idx else { return 0 };
        let n = match self.entry_mut(i) {
            Entry::Distinct(d) => d.add_seq(time_ms, value, seq),
            _ => 0,
        };
        self.resized(i);
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// `last_seen_get`: the value and time last stored for `key`.
    pub fn last_seen_get(&mut self, key: &[u8]) -> Option<(&[u8], i64)> {
        let i = self.find(LAST_SEEN, 0, key)?;
        match self.entry_mut(i) {
            Entry::LastSeen(l) => Some((&l.value, l.time_ms)),
            _ => None,
        }
    }

    /// `last_seen_set`: stores `value` and `time_ms` for `key`.
    pub fn last_seen_set(&mut self, key: &[u8], value: &[u8], time_ms: i64) {
        let value = bounded_value(value, MAX_LAST_SEEN_BYTES);
        let value = value.as_ref();
        let Some(i) = self.find_or_insert(LAST_SEEN, 0, key, || Entry::LastSeen(LastSeen::new(&[], time_ms))) else {
            return;
        };
        if let Entry::LastSeen(l) = self.entry_mut(i) {
            l.set(value, time_ms);
        }
        self.resized(i);
    }

    /// `baseline_observe`: adds a sample to `key`'s running mean and variance.
    pub fn baseline_observe(&mut self, key: &[u8], value: f64) {
        let Some(i) = self.find_or_insert(BASELINE, 0, key, || Entry::Baseline(Baseline::new())) else { return };
        if let Entry::Baseline(b) = self.entry_mut(i) {
            b.observe(value);
        }
    }

    /// `baseline_get`: count, mean and population stddev of `key`'s samples.
    pub fn baseline_get(&mut self, key: &[u8]) -> BaselineStats {
        match self.find(BASELINE, 0, key).map(|i| self.entry_mut(i)) {
            Some(Entry::Baseline(b)) => b.stats(),
            _ => BaselineStats::default(),
        }
    }

    fn encode(&mut self, kind: u8, window_ms: i64, key: &[u8]) {
        self.scratch.clear();
        self.scratch.push(kind);
        self.scratch.extend_from_slice(&window_ms.to_le_bytes());
        self.scratch.extend_from_slice(&normalize_key(key));
    }

    fn find(&mut self, kind: u8, window_ms: i64, key: &[u8]) -> Option<usize> {
        self.encode(kind, window_ms, key);
        let i = *self.map.get(self.scratch.as_slice())?;
        self.touch(i);
        Some(i)
    }

    /// The entry for the key, created when missing; `None` when a new entry alone would
    /// exceed the byte budget (it is not kept).
    fn find_or_insert(&mut self, kind: u8, window_ms: i64, key: &[u8], make: impl FnOnce() -> Entry) -> Option<usize> {
        if let Some(i) = self.find(kind, window_ms, key) {
            return Some(i);
        }
        if self.map.len() >= self.limits.max_keys.max(1) {
            self.evict_lru();
        }
        let key: Arc<[u8]> = self.scratch.as_slice().into();
        let entry = make();
        let bytes = 2 * key.len() + ENTRY_OVERHEAD + size_of::<Node>() + entry.heap_bytes();
        let node = Node { key: key.clone(), entry, bytes, prev: NIL, next: NIL };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = Some(node);
                i
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.map.insert(key, i);
        self.push_front(i);
        self.bytes += bytes;
        self.enforce();
        self.is_live(i).then_some(i)
    }

    /// Re-measures entry `i` (the most recently used) after a change and enforces the budget.
    fn resized(&mut self, i: usize) {
        let node = self.node_mut(i);
        let bytes = 2 * node.key.len() + ENTRY_OVERHEAD + size_of::<Node>() + node.entry.heap_bytes();
        let old = std::mem::replace(&mut node.bytes, bytes);
        self.bytes = self.bytes - old + bytes;
        self.enforce();
    }

    /// Evicts least recently used entries until within limits. The newest entry counts
    /// too: one that alone exceeds the byte budget is evicted as well (it is the most
    /// recently used, so it goes last).
    fn enforce(&mut self) {
        while (self.map.len() > self.limits.max_keys || self.bytes > self.limits.max_bytes) && !self.map.is_empty() {
            self.evict_lru();
        }
    }

    fn is_live(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(Option::is_some)
    }

    fn evict_lru(&mut self) {
        let i = self.tail;
        if i == NIL {
            return;
        }
        self.unlink(i);
        if let Some(node) = self.nodes[i].take() {
            self.map.remove(&node.key);
            self.bytes -= node.bytes;
            self.free.push(i);
            self.evictions += 1;
        }
    }

    fn node_mut(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().expect("state node indices in the map and list are live")
    }

    fn entry_mut(&mut self, i: usize) -> &mut Entry {
        &mut self.node_mut(i).entry
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = {
            let n = self.node_mut(i);
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.node_mut(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.node_mut(next).prev = prev;
        }
    }

    fn push_front(&mut self, i: usize) {
        let head = self.head;
        {
            let n = self.node_mut(i);
            n.prev = NIL;
            n.next = head;
        }
        if head != NIL {
            self.node_mut(head).prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    fn touch(&mut self, i: usize) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(max_keys: usize, max_bytes: usize) -> StateStore {
        StateStore::new(StateLimits { max_keys, max_bytes, max_distinct_values: 100 })
    }

    #[test]
    fn kinds_windows_and_keys_are_separate() {
        let mut s = StateStore::default();
        assert_eq!(s.window_add(300_000, b"ip:1", 0, 1), 1);
        assert_eq!(s.window_add(3_600_000, b"ip:1", 0, 1), 1);
        assert_eq!(s.window_add(300_000, b"ip:1", 1, 1), 2);
        assert_eq!(s.window_add(300_000, b"ip:2", 1, 0), 0, "read of a missing key");
        assert_eq!(s.distinct_add(60_000, b"ip:1", b"u1", 1), 1);
        s.last_seen_set(b"ip:1", b"x", 7);
        assert_eq!(s.last_seen_get(b"ip:1"), Some((b"x".as_slice(), 7)));
        assert_eq!(s.last_seen_get(b"ip:2"), None);
        s.baseline_observe(b"ip:1", 2.0);
        s.baseline_observe(b"ip:1", 4.0);
        assert_eq!(s.baseline_get(b"ip:1"), BaselineStats { count: 2, mean: 3.0, stddev: 1.0 });
        assert_eq!(s.baseline_get(b"ip:2"), BaselineStats::default());
        assert_eq!(s.len(), 5, "reads of missing keys create nothing");
        assert!(s.approx_bytes() > 0);
    }

    #[test]
    fn key_limit_evicts_least_recently_used() {
        let mut s = small(3, usize::MAX);
        for k in [b"a", b"b", b"c"] {
            s.window_add(1000, k, 0, 1);
        }
        s.window_add(1000, b"a", 1, 0); // touch a: b is now the oldest
        s.window_add(1000, b"d", 2, 1);
        assert_eq!(s.len(), 3);
        assert_eq!(s.evictions(), 1);
        assert_eq!(s.window_add(1000, b"b", 3, 0), 0, "b was evicted");
        assert_eq!(s.window_add(1000, b"a", 3, 0), 1, "a survived");
        assert_eq!(s.window_add(1000, b"c", 3, 0), 1);
    }

    #[test]
    fn byte_budget_evicts_and_accounts() {
        let mut s = small(1000, 4096);
        for i in 0..100u32 {
            s.last_seen_set(&i.to_le_bytes(), &[0u8; 100], 0);
            assert!(s.approx_bytes() <= 4096, "budget kept after {i}");
        }
        assert!(s.evictions() > 0);
        assert!(s.last_seen_get(&99u32.to_le_bytes()).is_some(), "newest kept");
        assert!(s.last_seen_get(&0u32.to_le_bytes()).is_none(), "oldest evicted");
        // A value past the whole budget is not kept, and everything older made room for it.
        s.last_seen_set(b"big", &[1u8; 8192], 1);
        assert!(s.approx_bytes() <= 4096, "the newest entry counts against the budget");
        assert!(s.last_seen_get(b"big").map(|(v, _)| v.len()) != Some(8192));
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.approx_bytes(), 0);
    }

    #[test]
    fn distinct_sets_grow_in_the_accounting_and_respect_the_value_cap() {
        let mut s = small(10, usize::MAX);
        let before = {
            s.distinct_add(60_000, b"k", b"v0", 0);
            s.approx_bytes()
        };
        for i in 1..500 {
            s.distinct_add(60_000, b"k", format!("v{i}").as_bytes(), i);
        }
        assert!(s.approx_bytes() > before);
        assert_eq!(s.distinct_add(60_000, b"k", b"", 500), 100, "capped at max_distinct_values");
    }

    #[test]
    fn long_values_are_hashed_and_an_entry_past_the_budget_is_not_kept() {
        let mut s = small(100, usize::MAX);
        let long = vec![b'x'; 10_000];
        let mut other = long.clone();
        other[9_999] = b'y';
        assert_eq!(s.distinct_add(60_000, b"k", &long, 0), 1);
        assert_eq!(s.distinct_add(60_000, b"k", &long, 1), 1, "the same long value counts once");
        assert_eq!(s.distinct_add(60_000, b"k", &other, 2), 2, "a different long value counts");
        assert!(s.approx_bytes() < 2_000, "long values are stored as hashes: {}", s.approx_bytes());
        s.last_seen_set(b"l", &long, 3);
        let (v, t) = s.last_seen_get(b"l").unwrap();
        assert_eq!((v.len(), t), (17, 3));
        assert_eq!(s.last_seen_get(b"l").unwrap().0, bounded_value(&long, MAX_LAST_SEEN_BYTES).as_ref());
        // A budget smaller than one window counter: nothing is kept, nothing panics.
        let mut tiny = small(100, 96);
        assert_eq!(tiny.window_add(1000, b"a", 0, 1), 0);
        assert!(tiny.is_empty() && tiny.approx_bytes() == 0);
        tiny.baseline_observe(b"b", 1.0);
        tiny.last_seen_set(b"c", b"v", 0);
        assert!(tiny.approx_bytes() <= 96);
        // A budget for a few entries: the newest one that no longer fits pushes out the
        // oldest, and a value that grows past the budget alone is not kept.
        let mut few = small(100, 1024);
        for k in 0..20u8 {
            few.window_add(1000, &[k], 0, 1);
            assert!(few.approx_bytes() <= 1024);
        }
        assert!(few.evictions() > 0 && !few.is_empty());
    }

    #[test]
    fn long_keys_are_hashed_consistently() {
        let long_a = vec![b'a'; 1000];
        let mut long_b = long_a.clone();
        long_b[999] = b'b';
        let na = normalize_key(&long_a);
        assert_eq!(na.len(), MAX_KEY_BYTES);
        assert_eq!(na, normalize_key(&long_a));
        assert_ne!(na, normalize_key(&long_b));
        assert!(matches!(normalize_key(b"short"), Cow::Borrowed(_)));
        let mut s = StateStore::default();
        s.window_add(1000, &long_a, 0, 1);
        assert_eq!(s.window_add(1000, &long_a, 0, 1), 2);
        assert_eq!(s.window_add(1000, &long_b, 0, 1), 1);
    }
}
