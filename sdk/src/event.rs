//! The typed, zero-copy view of one record of the input area that a rule evaluates.
//!
//! Declared fields (the manifest's `fields`) are read in place; any other field falls back
//! to the lazy `field` import once per event and is cached until the event is dropped.
//! Built by the runtime in `guest.rs` from a [`crate::record::RecordView`].

use std::cell::{Cell, OnceCell};

use crate::abi;
use crate::record::RecordView;
use crate::severity::Severity;

/// A lazily read field: its name and value (`None`: absent).
type LazyField = (Box<str>, Option<Box<str>>);

/// Lazily read fields cached per event, in small chunks that never move once filled.
#[derive(Debug, Default)]
struct LazyChunk {
    slots: [OnceCell<LazyField>; 4],
    next: OnceCell<Box<LazyChunk>>,
}

/// Equality of two short byte strings, eight bytes at a time (a byte-by-byte `memcmp` is
/// what `==` costs inside a wasm guest).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in x.by_ref().zip(y.by_ref()) {
        if u64::from_le_bytes(p.try_into().expect("8 bytes")) != u64::from_le_bytes(q.try_into().expect("8 bytes")) {
            return false;
        }
    }
    x.remainder() == y.remainder()
}

/// Whether every byte is ASCII, eight bytes at a time.
#[inline]
fn ascii(b: &[u8]) -> bool {
    let chunks = b.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(0u8, |acc, x| acc | x);
    let high = chunks.fold(0u64, |acc, c| acc | u64::from_le_bytes(c.try_into().expect("8 bytes")));
    (high & 0x8080_8080_8080_8080) == 0 && tail < 0x80
}

/// The typed accessors' fields, by constant index (see [`FieldNames::known`]).
const KNOWN: [&str; 9] =
    ["category", "action", "outcome", "ip", "user_id", "api_key_id", "resource", "organization_id", "severity"];
const K_CATEGORY: usize = 0;
const K_ACTION: usize = 1;
const K_OUTCOME: usize = 2;
const K_IP: usize = 3;
const K_USER_ID: usize = 4;
const K_API_KEY_ID: usize = 5;
const K_RESOURCE: usize = 6;
const K_ORGANIZATION_ID: usize = 7;
const K_SEVERITY: usize = 8;

/// The declared field names of a rule, resolved once per module load: the typed accessors
/// (`ip()`, `action()`...) find their field by a constant index, and other names go through
/// a small cache keyed by the name's address (rules pass string literals), confirmed by one
/// short compare (another string may later live at the same address). Reading a field never
/// scans the declared names, whatever their count.
#[derive(Debug)]
pub(crate) struct FieldNames {
    names: Vec<String>,
    /// Declared position + 1 of each [`KNOWN`] field (0: not declared).
    known: [u8; KNOWN.len()],
    /// (address, length, position + 1) of recently asked names; 0 = empty entry.
    cache: [Cell<(usize, usize, usize)>; 8],
    next: Cell<usize>,
}

impl FieldNames {
    pub(crate) fn new(names: Vec<String>) -> FieldNames {
        let mut known = [0u8; KNOWN.len()];
        for (k, name) in KNOWN.iter().enumerate() {
            if let Some(p) = names.iter().position(|n| n == name) {
                known[k] = u8::try_from(p + 1).unwrap_or(0);
            }
        }
        FieldNames { names, known, cache: Default::default(), next: Cell::new(0) }
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The position of `name` among the declared fields.
    #[inline]
    fn position(&self, name: &str) -> Option<usize> {
        let key = (name.as_ptr() as usize, name.len());
        for entry in &self.cache {
            let (ptr, len, pos) = entry.get();
            if (ptr, len) == key && pos != 0 && same(self.names[pos - 1].as_bytes(), name.as_bytes()) {
                return Some(pos - 1);
            }
        }
        let found = self.names.iter().position(|n| same(n.as_bytes(), name.as_bytes()));
        // Remember declared names only: an undeclared one goes to the host anyway.
        if let Some(p) = found {
            let slot = self.next.get();
            self.cache[slot % self.cache.len()].set((key.0, key.1, p + 1));
            self.next.set(slot + 1);
        }
        found
    }
}

/// One event (for routing rules: one alert record) offered to a rule.
#[derive(Debug)]
pub struct Event<'a> {
    index: u32,
    record: RecordView<'a>,
    names: &'a FieldNames,
    lazy: OnceCell<Box<LazyChunk>>,
}

impl<'a> Event<'a> {
    pub(crate) fn new(index: u32, record: RecordView<'a>, names: &'a FieldNames) -> Event<'a> {
        Event { index, record, names, lazy: OnceCell::new() }
    }

    /// Position of this event in the current batch.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The event seq (routing rules: the alert id).
    pub fn seq(&self) -> i64 {
        self.record.seq()
    }

    /// The event time, epoch ms: the rule's clock.
    pub fn time_ms(&self) -> i64 {
        self.record.time_ms()
    }

    /// The text of field `name` (ABI.md naming: `ip`, `geo.lat`, `details.a.b`...); numbers
    /// are their JSON text, objects compact JSON, `None` when absent. Declared fields are read
    /// in place; others cost one host call per event (declare what you read on every event).
    pub fn get(&self, name: &str) -> Option<&str> {
        match self.names.position(name) {
            Some(i) => self.declared(i),
            None => self.lazy(name),
        }
    }

    /// Declared field number `i` (manifest order).
    pub fn declared(&self, i: usize) -> Option<&'a str> {
        let bytes = self.record.value(i)?;
        if self.record.utf8() || ascii(bytes) {
            // SAFETY: the host checked every value of the batch (ABI 1.5's `FLAG_UTF8`: it
            // validated each event once when it flattened it, and a value is a whole piece
            // of it), or the bytes are ASCII (a check cheaper than full validation inside a
            // wasm guest, for hosts before 1.5).
            #[allow(unsafe_code)]
            return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes).ok()
    }

    /// A typed accessor's field: declared (read in place) or lazily read.
    #[inline]
    fn known(&self, k: usize) -> Option<&str> {
        match self.names.known[k] {
            0 => self.lazy(KNOWN[k]),
            p => self.declared(usize::from(p) - 1),
        }
    }

    /// Whether field `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Field `name` as an integer (integral JSON numbers, also `12.0`, or numeric strings).
    pub fn i64(&self, name: &str) -> Option<i64> {
        crate::json::parse_i64(self.get(name)?.trim())
    }

    /// Field `name` as a number.
    pub fn f64(&self, name: &str) -> Option<f64> {
        self.get(name)?.trim().parse().ok().filter(|x: &f64| x.is_finite())
    }

    /// Field `name` as a boolean (`true`/`false`, as JSON or as a string).
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name)? {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// `category`.
    pub fn category(&self) -> Option<&str> {
        self.known(K_CATEGORY)
    }

    /// `action`.
    pub fn action(&self) -> Option<&str> {
        self.known(K_ACTION)
    }

    /// `outcome`.
    pub fn outcome(&self) -> Option<&str> {
        self.known(K_OUTCOME)
    }

    /// `ip`.
    pub fn ip(&self) -> Option<&str> {
        self.known(K_IP)
    }

    /// `user_id`.
    pub fn user_id(&self) -> Option<&str> {
        self.known(K_USER_ID)
    }

    /// `api_key_id`.
    pub fn api_key_id(&self) -> Option<&str> {
        self.known(K_API_KEY_ID)
    }

    /// `resource`.
    pub fn resource(&self) -> Option<&str> {
        self.known(K_RESOURCE)
    }

    /// `organization_id`.
    pub fn organization_id(&self) -> Option<&str> {
        self.known(K_ORGANIZATION_ID)
    }

    /// `(geo.lat, geo.lon)` when both are present numbers in range.
    pub fn geo(&self) -> Option<(f64, f64)> {
        let (lat, lon) = (self.f64("geo.lat")?, self.f64("geo.lon")?);
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
    }

    /// `severity` as an alert severity (routing rules: the routed alert's `P1`..`P4`).
    pub fn severity(&self) -> Option<Severity> {
        Severity::parse(self.known(K_SEVERITY)?)
    }

    fn lazy(&self, name: &str) -> Option<&str> {
        let mut chunk: &LazyChunk = self.lazy.get_or_init(Box::default);
        loop {
            for slot in &chunk.slots {
                match slot.get() {
                    Some((n, v)) if **n == *name => return v.as_deref(),
                    Some(_) => {}
                    None => {
                        let value = abi::field(self.index, name).and_then(|b| String::from_utf8(b).ok());
                        let (_, v) = slot.get_or_init(|| (name.into(), value.map(String::into_boxed_str)));
                        return v.as_deref();
                    }
                }
            }
            chunk = chunk.next.get_or_init(Box::default);
        }
    }
}
