//! The typed, zero-copy view of one record of the input area that a rule evaluates.
//!
//! Declared fields (the manifest's `fields`) are read in place; any other field falls back
//! to the lazy `field` import once per event and is cached until the event is dropped.
//! Built by the runtime in `guest.rs` from a [`crate::record::RecordView`].

use std::cell::OnceCell;

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

/// One event (for routing rules: one alert record) offered to a rule.
#[derive(Debug)]
pub struct Event<'a> {
    index: u32,
    record: RecordView<'a>,
    names: &'a [String],
    lazy: OnceCell<Box<LazyChunk>>,
}

impl<'a> Event<'a> {
    pub(crate) fn new(index: u32, record: RecordView<'a>, names: &'a [String]) -> Event<'a> {
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
        match self.names.iter().position(|n| n == name) {
            Some(i) => self.declared(i),
            None => self.lazy(name),
        }
    }

    /// Declared field number `i` (manifest order).
    pub fn declared(&self, i: usize) -> Option<&'a str> {
        std::str::from_utf8(self.record.value(i)?).ok()
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
        self.get("category")
    }

    /// `action`.
    pub fn action(&self) -> Option<&str> {
        self.get("action")
    }

    /// `outcome`.
    pub fn outcome(&self) -> Option<&str> {
        self.get("outcome")
    }

    /// `ip`.
    pub fn ip(&self) -> Option<&str> {
        self.get("ip")
    }

    /// `user_id`.
    pub fn user_id(&self) -> Option<&str> {
        self.get("user_id")
    }

    /// `api_key_id`.
    pub fn api_key_id(&self) -> Option<&str> {
        self.get("api_key_id")
    }

    /// `resource`.
    pub fn resource(&self) -> Option<&str> {
        self.get("resource")
    }

    /// `organization_id`.
    pub fn organization_id(&self) -> Option<&str> {
        self.get("organization_id")
    }

    /// `(geo.lat, geo.lon)` when both are present numbers in range.
    pub fn geo(&self) -> Option<(f64, f64)> {
        let (lat, lon) = (self.f64("geo.lat")?, self.f64("geo.lon")?);
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
    }

    /// `severity` as an alert severity (routing rules: the routed alert's `P1`..`P4`).
    pub fn severity(&self) -> Option<Severity> {
        Severity::parse(self.get("severity")?)
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
