//! The input-area layout of ABI.md: a batch of flat records, and how field values are encoded.
//!
//! [`RecordWriter`] fills an input area (the host writes into guest memory with it, the
//! test harness into a buffer), [`RecordReader`] reads one back (the guest's `Event` view),
//! and [`field_text`] is the reference encoding of one event field, so all three agree.

use std::borrow::Cow;
use std::fmt;

use crate::json::Value;

/// Bytes before the first record (`u32 n_events`, `u32 n_fields | flags`).
pub const HEADER_BYTES: usize = 8;
/// Flag of the header's second word (ABI 1.5, high half; `n_fields` is the low half): every
/// value of the batch is valid UTF-8 (the host checked each event once when it flattened
/// it), so the guest reads values as text without checking them again. A host sets it
/// only for modules of minor 5 or later; older modules read the word as `n_fields` alone.
pub const FLAG_UTF8: u32 = 1 << 31;
/// The bits of the header's second word that hold `n_fields`.
const N_FIELDS_MASK: u32 = 0xFFFF;
/// The `len` marking an absent value.
pub const ABSENT: u32 = u32::MAX;

/// Bytes of one record with `n_fields` fields: `i64 seq`, `i64 time_ms`, `n_fields` slots.
pub const fn record_bytes(n_fields: usize) -> usize {
    16 + 8 * n_fields
}

/// A layout problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// The area is too small for the header and the reserved records.
    AreaTooSmall,
    /// No room left for this record's values (send the batch, start a new one).
    Full,
    /// A record was given a different number of values than `n_fields`.
    FieldCount,
    /// The header claims more records than the area holds.
    Truncated,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayoutError::AreaTooSmall => "input area too small for the reserved records",
            LayoutError::Full => "input area full",
            LayoutError::FieldCount => "wrong number of field values for the record",
            LayoutError::Truncated => "input area shorter than its header claims",
        })
    }
}

impl std::error::Error for LayoutError {}

/// Writes a batch: records are reserved for `max_events` up front, values go after them.
#[derive(Debug)]
pub struct RecordWriter<'a> {
    area: &'a mut [u8],
    n_fields: usize,
    max_events: usize,
    n_events: usize,
    string_pos: usize,
    flags: u32,
}

impl<'a> RecordWriter<'a> {
    /// Starts an empty batch in `area` for records of `n_fields` fields.
    pub fn new(area: &'a mut [u8], n_fields: usize, max_events: usize) -> Result<RecordWriter<'a>, LayoutError> {
        let string_pos = max_events
            .checked_mul(record_bytes(n_fields))
            .and_then(|r| r.checked_add(HEADER_BYTES))
            .filter(|end| *end <= area.len() && u32::try_from(area.len()).is_ok())
            .ok_or(LayoutError::AreaTooSmall)?;
        let mut w = RecordWriter { area, n_fields, max_events, n_events: 0, string_pos, flags: 0 };
        w.write_header();
        Ok(w)
    }

    /// Records written so far.
    pub fn len(&self) -> usize {
        self.n_events
    }

    /// Marks the batch's values as valid UTF-8 ([`FLAG_UTF8`]); a later [`Self::push`] of
    /// bytes that are not UTF-8 clears the mark.
    pub fn set_utf8(&mut self, utf8: bool) {
        self.flags = if utf8 { FLAG_UTF8 } else { 0 };
        self.write_header();
    }

    /// Whether no record was written.
    pub fn is_empty(&self) -> bool {
        self.n_events == 0
    }

    /// Appends a record with one value per field (`None` = absent). On [`LayoutError::Full`]
    /// nothing was written.
    pub fn push(&mut self, seq: i64, time_ms: i64, values: &[Option<&[u8]>]) -> Result<(), LayoutError> {
        if values.len() != self.n_fields {
            return Err(LayoutError::FieldCount);
        }
        let needed: usize = values.iter().flatten().map(|v| v.len()).sum();
        if self.flags & FLAG_UTF8 != 0 && values.iter().flatten().any(|v| std::str::from_utf8(v).is_err()) {
            self.flags &= !FLAG_UTF8;
        }
        if self.n_events >= self.max_events || needed > self.area.len() - self.string_pos {
            return Err(LayoutError::Full);
        }
        let rec = HEADER_BYTES + self.n_events * record_bytes(self.n_fields);
        self.area[rec..rec + 8].copy_from_slice(&seq.to_le_bytes());
        self.area[rec + 8..rec + 16].copy_from_slice(&time_ms.to_le_bytes());
        for (i, v) in values.iter().enumerate() {
            let slot = rec + 16 + 8 * i;
            let (off, len) = match v {
                Some(v) => {
                    let off = self.string_pos;
                    self.area[off..off + v.len()].copy_from_slice(v);
                    self.string_pos += v.len();
                    // The area length fits in u32 (checked in `new`).
                    (off as u32, v.len() as u32)
                }
                None => (0, ABSENT),
            };
            self.area[slot..slot + 4].copy_from_slice(&off.to_le_bytes());
            self.area[slot + 4..slot + 8].copy_from_slice(&len.to_le_bytes());
        }
        self.n_events += 1;
        self.write_header();
        Ok(())
    }

    fn write_header(&mut self) {
        self.area[0..4].copy_from_slice(&(self.n_events as u32).to_le_bytes());
        self.area[4..8].copy_from_slice(&(self.n_fields as u32 | self.flags).to_le_bytes());
    }
}

/// Reads a batch written per ABI.md. Bounds are checked; a value slot pointing outside the
/// area reads as absent.
#[derive(Debug, Clone, Copy)]
pub struct RecordReader<'a> {
    area: &'a [u8],
    n_events: usize,
    n_fields: usize,
    utf8: bool,
}

impl<'a> RecordReader<'a> {
    /// Reads the header and checks that the records fit.
    pub fn new(area: &'a [u8]) -> Result<RecordReader<'a>, LayoutError> {
        let n_events = read_u32(area, 0).ok_or(LayoutError::Truncated)? as usize;
        let word = read_u32(area, 4).ok_or(LayoutError::Truncated)?;
        let (n_fields, utf8) = ((word & N_FIELDS_MASK) as usize, word & FLAG_UTF8 != 0);
        let end = n_events.checked_mul(record_bytes(n_fields)).and_then(|r| r.checked_add(HEADER_BYTES));
        match end {
            Some(end) if end <= area.len() => Ok(RecordReader { area, n_events, n_fields, utf8 }),
            _ => Err(LayoutError::Truncated),
        }
    }

    /// Records in the batch.
    pub fn n_events(&self) -> usize {
        self.n_events
    }

    /// Fields per record.
    pub fn n_fields(&self) -> usize {
        self.n_fields
    }

    /// Whether the host marked every value of the batch as valid UTF-8 ([`FLAG_UTF8`]).
    pub fn utf8(&self) -> bool {
        self.utf8
    }

    /// Record `i`.
    pub fn record(&self, i: usize) -> Option<RecordView<'a>> {
        if i >= self.n_events {
            return None;
        }
        let start = HEADER_BYTES + i * record_bytes(self.n_fields);
        let rec = &self.area[start..start + record_bytes(self.n_fields)];
        Some(RecordView {
            area: self.area,
            utf8: self.utf8,
            seq: i64::from_le_bytes(rec[0..8].try_into().ok()?),
            time_ms: i64::from_le_bytes(rec[8..16].try_into().ok()?),
            slots: &rec[16..],
        })
    }
}

/// One record of a batch.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    area: &'a [u8],
    utf8: bool,
    seq: i64,
    time_ms: i64,
    slots: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// The event seq (for routing rules, the alert id).
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// The event time, epoch ms.
    pub fn time_ms(&self) -> i64 {
        self.time_ms
    }

    /// Whether the host marked every value of the batch as valid UTF-8 ([`FLAG_UTF8`]).
    #[inline]
    pub fn utf8(&self) -> bool {
        self.utf8
    }

    /// The bytes of field `i`, `None` when absent (or out of bounds).
    pub fn value(&self, i: usize) -> Option<&'a [u8]> {
        let off = read_u32(self.slots, 8 * i)? as usize;
        let len = read_u32(self.slots, 8 * i + 4)?;
        if len == ABSENT {
            return None;
        }
        self.area.get(off..off.checked_add(len as usize)?)
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The value of field `name` (ABI.md naming: `ip`, `geo.lat`, `details`, `details.a.b`) of an
/// event, encoded as written into a record: a string is its text, a number its JSON text, a
/// boolean `true`/`false`, an object or array its compact JSON; `null` and missing are `None`.
pub fn field_text<'v>(event: &'v Value, name: &str) -> Option<Cow<'v, str>> {
    match event.path(name)? {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Borrowed(n)),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        v @ (Value::Array(_) | Value::Object(_)) => Some(Cow::Owned(v.to_json())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_back() {
        let mut area = vec![0u8; 256];
        let mut w = RecordWriter::new(&mut area, 2, 3).unwrap();
        w.push(7, 1000, &[Some(b"1.2.3.4"), None]).unwrap();
        w.push(8, 2000, &[Some(b""), Some(b"u1")]).unwrap();
        assert_eq!(w.push(9, 0, &[None]), Err(LayoutError::FieldCount));
        assert_eq!(w.len(), 2);
        let r = RecordReader::new(&area).unwrap();
        assert_eq!((r.n_events(), r.n_fields()), (2, 2));
        let a = r.record(0).unwrap();
        assert_eq!((a.seq(), a.time_ms()), (7, 1000));
        assert_eq!(a.value(0), Some(b"1.2.3.4".as_slice()));
        assert_eq!(a.value(1), None);
        let b = r.record(1).unwrap();
        assert_eq!(b.value(0), Some(b"".as_slice()), "empty is not absent");
        assert_eq!(b.value(1), Some(b"u1".as_slice()));
        assert!(r.record(2).is_none());
        assert!(b.value(2).is_none(), "no such field");
    }

    #[test]
    fn the_utf8_flag_rides_in_the_high_half_of_the_field_count() {
        let mut area = vec![0u8; 256];
        let mut w = RecordWriter::new(&mut area, 2, 3).unwrap();
        w.set_utf8(true);
        w.push(1, 0, &[Some("é".as_bytes()), None]).unwrap();
        let r = RecordReader::new(&area).unwrap();
        assert_eq!((r.n_fields(), r.utf8()), (2, true));
        assert!(r.record(0).unwrap().utf8());
        assert_eq!(u32::from_le_bytes(area[4..8].try_into().unwrap()), 2 | FLAG_UTF8);
        // Bytes that are not UTF-8 clear it.
        let mut w = RecordWriter::new(&mut area, 2, 3).unwrap();
        w.set_utf8(true);
        w.push(1, 0, &[Some(b"\xff"), None]).unwrap();
        let r = RecordReader::new(&area).unwrap();
        assert_eq!((r.n_fields(), r.utf8()), (2, false));
        // A header without flags (a host before 1.5) reads as before.
        let mut w = RecordWriter::new(&mut area, 2, 3).unwrap();
        w.push(1, 0, &[Some(b"a"), None]).unwrap();
        assert_eq!(u32::from_le_bytes(area[4..8].try_into().unwrap()), 2);
        assert!(!RecordReader::new(&area).unwrap().utf8());
    }

    #[test]
    fn full_and_truncated_areas() {
        let mut area = vec![0u8; HEADER_BYTES + 2 * record_bytes(1) + 4];
        let mut w = RecordWriter::new(&mut area, 1, 2).unwrap();
        assert_eq!(w.push(1, 0, &[Some(b"12345")]), Err(LayoutError::Full));
        w.push(1, 0, &[Some(b"1234")]).unwrap();
        assert_eq!(w.push(2, 0, &[Some(b"x")]), Err(LayoutError::Full));
        w.push(2, 0, &[None]).unwrap();
        assert_eq!(w.push(3, 0, &[None]), Err(LayoutError::Full), "max_events reached");
        assert!(RecordWriter::new(&mut [0u8; 8], 1, 1).is_err());
        let mut bad = area.clone();
        bad[0] = 200;
        assert_eq!(RecordReader::new(&bad).err(), Some(LayoutError::Truncated));
        // A slot pointing past the end reads as absent.
        let mut wild = area;
        let slot = HEADER_BYTES + 16;
        wild[slot..slot + 4].copy_from_slice(&10_000u32.to_le_bytes());
        assert_eq!(RecordReader::new(&wild).unwrap().record(0).unwrap().value(0), None);
    }

    #[test]
    fn field_encoding() {
        let ev = Value::parse(
            r#"{"ip":"1.2.3.4","geo":{"lat":40.7128,"lon":-74},"details":{"n":12,"ok":true,"z":null,"a":{"b":[1,"x"]}}}"#,
        )
        .unwrap();
        let f = |n| field_text(&ev, n).map(Cow::into_owned);
        assert_eq!(f("ip").as_deref(), Some("1.2.3.4"));
        assert_eq!(f("geo.lat").as_deref(), Some("40.7128"));
        assert_eq!(f("geo.lon").as_deref(), Some("-74"));
        assert_eq!(f("details.n").as_deref(), Some("12"));
        assert_eq!(f("details.ok").as_deref(), Some("true"));
        assert_eq!(f("details.z"), None);
        assert_eq!(f("details.a").as_deref(), Some(r#"{"b":[1,"x"]}"#));
        assert_eq!(f("details.a.b").as_deref(), Some(r#"[1,"x"]"#));
        assert_eq!(f("user_id"), None);
    }
}
