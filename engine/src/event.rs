//! The event model at the bottom of the data path, shared by every stage: the validated
//! event `ingest` hands the sequencer ([`NewEvent`]), the committed event the sequencer
//! hands detection ([`CommittedEvent`]), the events the server writes itself
//! ([`system_event`]), the masking policy version stamped on stored events, and the time
//! helpers (epoch ms, RFC 3339). It depends on no other module of the crate, so `store`,
//! `rules`, `detect` and `alerts` never import `ingest`.

use std::sync::OnceLock;

use serde_json::{Map, Value};

pub mod canonical;
pub use canonical::canonical_object;
mod typed;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
pub use typed::{
    EventFields, ORGANIZATION_ID, REQUEST_ID, SOURCE, STRING_FIELDS, ServerFields, USER_ID, members, unquote,
    write_json_str,
};

/// Version of the masking policy applied at ingest, stored on every event (`mask_policy`).
pub const MASK_POLICY_VERSION: u32 = 2;

/// A validated, masked event ready to be sequenced.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event id (client's, or a server-made UUIDv7).
    pub event_id: String,
    /// Whether the client supplied `event_id` (only those can be duplicates).
    pub client_id: bool,
    /// The id of the API key that sent it (None: the server's own event). Stored inside the
    /// hashed canonical form; idempotency is per `(ingest_key, event_id)`.
    pub ingest_key: Option<String>,
    /// Receipt time, epoch ms.
    pub received_at: i64,
    /// Normalized, masked fields of section 2, without server fields.
    pub fields: EventFields,
}

/// An event just committed, as offered to detection: its canonical bytes, read by
/// detection without decoding them into a tree (the flat form is built from them on first
/// use, on the detection thread). A routing rule's alert record is offered the same way,
/// built from its fields.
#[derive(Debug)]
pub struct CommittedEvent {
    pub seq: i64,
    /// The canonical bytes (empty for an alert record).
    canon: Box<[u8]>,
    /// The stored object decoded, for the rare reads of dotted `details` paths and alert
    /// fields (decoded on first use; set at once for an alert record).
    event: OnceLock<Map<String, Value>>,
    /// Every field a rule can declare, flat: built once, by the detection thread on first
    /// use (not on the ingest path), and shared by every rule.
    flat: OnceLock<FlatEvent>,
    /// Bytes of its canonical form (what the detection hand-off is bounded by).
    pub size: usize,
}

impl Clone for CommittedEvent {
    fn clone(&self) -> Self {
        Self {
            seq: self.seq,
            canon: self.canon.clone(),
            event: self.event.clone(),
            flat: self.flat.clone(),
            size: self.size,
        }
    }
}

impl CommittedEvent {
    /// A committed event from its canonical bytes.
    pub fn from_canon(seq: i64, canon: impl Into<Box<[u8]>>) -> Self {
        let canon = canon.into();
        Self { seq, size: canon.len(), canon, event: OnceLock::new(), flat: OnceLock::new() }
    }

    /// A record given as an object (a routing rule's alert, tests).
    pub fn from_map(seq: i64, event: Map<String, Value>, size: usize) -> Self {
        Self { seq, canon: Box::default(), event: OnceLock::from(event), flat: OnceLock::new(), size }
    }

    /// The canonical bytes (empty for a record given as an object).
    pub fn canon(&self) -> &[u8] {
        &self.canon
    }

    /// The stored object (decoded from the canonical bytes on first use; a damaged row
    /// decodes to an empty object).
    pub fn event(&self) -> &Map<String, Value> {
        self.event.get_or_init(|| match serde_json::from_slice::<Value>(&self.canon) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        })
    }

    /// The flat form (built on first use).
    #[inline]
    pub fn flat(&self) -> &FlatEvent {
        self.flat.get_or_init(|| match self.event.get() {
            Some(map) if self.canon.is_empty() => FlatEvent::new(map, None),
            _ => FlatEvent::from_canon(&self.canon),
        })
    }

    /// The event's `event_id` (empty when absent).
    pub fn event_id(&self) -> &str {
        self.flat().str(SLOT_EVENT_ID)
    }
}

// The flat event's slots, in order: the top-level event fields of the SDK's `EVENT_FIELDS`
// (the one list rule authors and the host share), then its `GEO_FIELDS`, then `details`
// (the whole object as compact JSON). Dotted `details` paths have no slot.
use vigil_sdk::manifest::{EVENT_FIELDS, GEO_FIELDS};

/// Number of slots of a flat event.
pub const FLAT_SLOTS: usize = EVENT_FIELDS.len() + GEO_FIELDS.len() + 1;
/// Slot of `event_id`.
pub const SLOT_EVENT_ID: usize = 0;
/// Slot of `category`.
pub const SLOT_CATEGORY: usize = 1;
/// Slot of `action`.
pub const SLOT_ACTION: usize = 2;
/// Slot of `outcome`.
pub const SLOT_OUTCOME: usize = 4;
const SLOT_GEO: usize = EVENT_FIELDS.len();
const SLOT_DETAILS: usize = SLOT_GEO + GEO_FIELDS.len();
const ABSENT: (u32, u32) = (0, u32::MAX);

/// What a top-level member is to the flat event, besides a slot number.
const TIMESTAMP: usize = usize::MAX;
const GEO: usize = usize::MAX - 1;
const DETAILS: usize = usize::MAX - 2;

/// The top-level members the flat event reads, with their slot (or kind), sorted by name.
fn sorted_event_fields() -> &'static [(&'static str, usize)] {
    static SORTED: OnceLock<Vec<(&'static str, usize)>> = OnceLock::new();
    SORTED.get_or_init(|| {
        let mut v: Vec<_> = EVENT_FIELDS.iter().copied().zip(0..).collect();
        v.extend([("timestamp", TIMESTAMP), ("geo", GEO), ("details", DETAILS)]);
        v.sort_unstable();
        v
    })
}

/// The slot of a field name, if it has one.
pub fn flat_slot(name: &str) -> Option<usize> {
    if name == "details" {
        return Some(SLOT_DETAILS);
    }
    EVENT_FIELDS
        .iter()
        .position(|f| *f == name)
        .or_else(|| GEO_FIELDS.iter().position(|f| *f == name).map(|i| SLOT_GEO + i))
}

/// `(start, len)` of a value in a flat event's bytes.
type Span = (u32, u32);

/// An event as rules read it: the value bytes of every slot in one buffer (a string is its
/// text, a number or boolean its JSON text, an object compact JSON; `null` is absent) and
/// a span per slot, plus the event time. Reading a field is an index, never a lookup.
#[derive(Debug, Clone)]
pub struct FlatEvent {
    bytes: Vec<u8>,
    spans: [(u32, u32); FLAT_SLOTS],
    /// The top-level members of `details`: (key span, value span) in `bytes`, so a
    /// `details.<key>` field is a short scan, never a map lookup.
    details: Vec<(Span, Span)>,
    /// Event time, epoch ms (0 when absent).
    pub time_ms: i64,
    /// Whether every value is valid UTF-8 (checked once here, so rules of ABI 1.5 need not
    /// check each value they read: `vigil_sdk::record::FLAG_UTF8`).
    utf8: bool,
}

impl FlatEvent {
    /// Flattens a stored event object (one pass over its members).
    pub fn new(event: &Map<String, Value>, details_json: Option<&[u8]>) -> Self {
        let mut bytes = Vec::with_capacity(512);
        let mut spans = [ABSENT; FLAT_SLOTS];
        let mut members = Vec::new();
        let mut time_ms = 0;
        let sorted = sorted_event_fields();
        let mut j: usize = 0;
        fn put(spans: &mut [(u32, u32)], slot: usize, v: &Value, bytes: &mut Vec<u8>) {
            let start = bytes.len();
            match v {
                Value::Null => return,
                Value::String(s) => bytes.extend_from_slice(s.as_bytes()),
                Value::Bool(b) => bytes.extend_from_slice(if *b { b"true" } else { b"false" }),
                other => serde_json::to_writer(&mut *bytes, other).expect("writing JSON to a Vec cannot fail"),
            }
            spans[slot] = (start as u32, (bytes.len() - start) as u32);
        }
        for (key, value) in event {
            // Members come in key order (serde_json's map is sorted), so the table of known
            // names is walked once, in order, beside them; out of order, it starts over.
            let k = key.as_str();
            if sorted.get(j.saturating_sub(1)).is_some_and(|(name, _)| *name > k) {
                j = 0;
            }
            while sorted.get(j).is_some_and(|(name, _)| *name < k) {
                j += 1;
            }
            let Some(&(name, what)) = sorted.get(j) else { continue };
            if name != k {
                continue;
            }
            match what {
                TIMESTAMP => time_ms = value.as_i64().unwrap_or(0),
                GEO => {
                    if let Value::Object(geo) = value {
                        for (k, v) in geo {
                            if let Some(i) = GEO_FIELDS.iter().position(|f| &f[4..] == k) {
                                put(&mut spans, SLOT_GEO + i, v, &mut bytes);
                            }
                        }
                    }
                }
                DETAILS => {
                    match details_json {
                        Some(json) => {
                            let start = bytes.len();
                            bytes.extend_from_slice(json);
                            spans[SLOT_DETAILS] = (start as u32, json.len() as u32);
                        }
                        None => put(&mut spans, SLOT_DETAILS, value, &mut bytes),
                    }
                    if let Value::Object(details) = value {
                        for (k, v) in details {
                            if v.is_null() {
                                continue;
                            }
                            let key = (bytes.len() as u32, k.len() as u32);
                            bytes.extend_from_slice(k.as_bytes());
                            let mut one = [ABSENT; 1];
                            put(&mut one, 0, v, &mut bytes);
                            members.push((key, one[0]));
                        }
                    }
                }
                slot => put(&mut spans, slot, value, &mut bytes),
            }
        }
        // Every piece is a Rust string or JSON written from values, so UTF-8, except the
        // given `details` JSON.
        let utf8 = details_json.is_none_or(|json| std::str::from_utf8(json).is_ok());
        Self { bytes, spans, details: members, time_ms, utf8 }
    }

    /// Flattens an event from its canonical bytes (one pass over its members, no tree).
    pub fn from_canon(canon: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(canon.len());
        let mut spans = [ABSENT; FLAT_SLOTS];
        let mut members = Vec::new();
        let mut time_ms = 0;
        let sorted = sorted_event_fields();
        // A member's value as the flat form holds it: a string's text, any other JSON as
        // is; `null` is absent.
        fn put(value: &[u8], bytes: &mut Vec<u8>) -> Option<(u32, u32)> {
            let start = bytes.len();
            match value.first() {
                Some(b'"') => bytes.extend_from_slice(&typed::unquote_bytes(value)?),
                _ if value == b"null" => return None,
                _ => bytes.extend_from_slice(value),
            }
            Some((start as u32, (bytes.len() - start) as u32))
        }
        // Members come in byte order (the canonical form sorts them), so the table of known
        // names is walked once beside them; out of order (a damaged row), it starts over.
        let mut j = 0usize;
        for (key, value) in typed::members(canon) {
            let k: &[u8] = &key;
            if sorted.get(j.saturating_sub(1)).is_some_and(|(name, _)| name.as_bytes() > k) {
                j = 0;
            }
            while sorted.get(j).is_some_and(|(name, _)| name.as_bytes() < k) {
                j += 1;
            }
            match sorted.get(j) {
                Some((name, _)) if name.as_bytes() == k => {}
                _ => continue,
            }
            match sorted[j].1 {
                TIMESTAMP => {
                    time_ms = std::str::from_utf8(value).ok().and_then(|t| t.parse().ok()).unwrap_or(0);
                }
                GEO => {
                    for (k, v) in typed::members(value) {
                        if let Some(g) = GEO_FIELDS.iter().position(|f| f.as_bytes()[4..] == *k)
                            && let Some(span) = put(v, &mut bytes)
                        {
                            spans[SLOT_GEO + g] = span;
                        }
                    }
                }
                DETAILS => {
                    if let Some(span) = put(value, &mut bytes) {
                        spans[SLOT_DETAILS] = span;
                    }
                    for (k, v) in typed::members(value) {
                        if v == b"null" {
                            continue;
                        }
                        let key = (bytes.len() as u32, k.len() as u32);
                        bytes.extend_from_slice(&k);
                        match put(v, &mut bytes) {
                            Some(span) => members.push((key, span)),
                            None => bytes.truncate(key.0 as usize),
                        }
                    }
                }
                slot => {
                    if let Some(span) = put(value, &mut bytes) {
                        spans[slot] = span;
                    }
                }
            }
        }
        // Every value is cut from `canon` at ASCII bytes (quotes, `:`, `,`, brackets), or
        // decoded from an escaped string into a `String`: valid UTF-8 when `canon` is (a
        // damaged row may not be; its values are then checked by each rule as they are read).
        let utf8 = std::str::from_utf8(canon).is_ok();
        Self { bytes, spans, details: members, time_ms, utf8 }
    }

    /// Whether every value is valid UTF-8 (checked once, when the event was flattened).
    #[inline]
    pub fn is_utf8(&self) -> bool {
        self.utf8
    }

    /// The bytes of the top-level `details` member `key`, `None` when absent or null.
    #[inline]
    pub fn detail(&self, key: &str) -> Option<&[u8]> {
        self.detail_span(key).map(|span| self.at(span))
    }

    /// The span in [`Self::bytes`] of slot `slot`, `None` when absent.
    #[inline]
    pub fn slot_span(&self, slot: usize) -> Option<(u32, u32)> {
        let span = self.spans[slot];
        (span.1 != u32::MAX).then_some(span)
    }

    /// The span in [`Self::bytes`] of the top-level `details` member `key`.
    #[inline]
    pub fn detail_span(&self, key: &str) -> Option<(u32, u32)> {
        self.details.iter().find(|(k, _)| k.1 as usize == key.len() && self.at(*k) == key.as_bytes()).map(|(_, v)| *v)
    }

    /// Every value (and `details` key) of the event, the buffer the spans point into.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes of a span of [`Self::bytes`].
    #[inline]
    pub fn at(&self, (start, len): (u32, u32)) -> &[u8] {
        &self.bytes[start as usize..start as usize + len as usize]
    }

    /// The bytes of slot `slot` (see [`flat_slot`]), `None` when absent.
    #[inline]
    pub fn get(&self, slot: usize) -> Option<&[u8]> {
        self.slot_span(slot).map(|span| self.at(span))
    }

    /// The text of slot `slot`, `""` when absent.
    #[inline]
    pub fn str(&self, slot: usize) -> &str {
        self.get(slot).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
    }
}

/// Wall-clock now, epoch ms (used for `received_at` and bookkeeping, never for ordering).
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Largest accepted time: 9999-12-31T23:59:59.999Z.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Formats epoch ms as RFC 3339 UTC with millisecond precision (`2026-11-23T10:00:00.000Z`).
pub fn format_rfc3339_ms(ms: i64) -> String {
    let clamped = ms.clamp(0, MAX_TIME_MS);
    let t =
        OffsetDateTime::from_unix_timestamp_nanos(clamped as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses a time given as RFC 3339 text or as integer epoch ms (also as a decimal string,
/// for query parameters). Returns None when it is neither or out of range.
pub fn parse_time(text: &str) -> Option<i64> {
    parse_time_unbounded(text).filter(|ms| (0..=MAX_TIME_MS).contains(ms))
}

/// Epoch ms of an RFC 3339 time or an integer epoch ms, any year (query bounds are clamped
/// into the range [`parse_time`] accepts).
pub fn parse_time_unbounded(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// An event the server itself writes into the chain (key created, rule deployed, ...).
/// It bypasses request validation but not the chain: it is sequenced like any other.
pub fn system_event(category: &str, action: &str, actor: &str, details: serde_json::Value) -> NewEvent {
    system_event_at(category, action, actor, details, now_ms())
}

/// Event ids starting with this are the server's own (refused from clients at ingest), so
/// an id the server derives from its own records can never be taken first by a client.
pub const RESERVED_ID_PREFIX: &str = "vigil:";

/// Event ids of the chain events of alert changes (`vigil:alert:<change id>`): never
/// offered to detection rules, so an alert's own history cannot raise more alerts.
pub const ALERT_CHANGE_ID_PREFIX: &str = "vigil:alert:";

/// A system event at time `now` (epoch ms) with a server-chosen id.
pub fn system_event_with_id(
    event_id: String,
    category: &str,
    action: &str,
    actor: &str,
    details: serde_json::Value,
    now: i64,
) -> NewEvent {
    let mut ev = system_event_at(category, action, actor, details, now);
    ev.event_id = event_id;
    ev.client_id = true;
    ev
}

fn system_event_at(category: &str, action: &str, actor: &str, details: serde_json::Value, now: i64) -> NewEvent {
    let mut fields = EventFields {
        timestamp: Some(now),
        category: category.into(),
        action: action.into(),
        severity: "medium".into(),
        outcome: "success".into(),
        ..EventFields::default()
    };
    fields.strings[SOURCE] = Some("vigil".into());
    fields.strings[USER_ID] = Some(actor.into());
    fields.set_details(&details);
    NewEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        client_id: false,
        ingest_key: None,
        received_at: now,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_sdk_field_lists() {
        assert_eq!(flat_slot("category"), Some(SLOT_CATEGORY));
        assert_eq!(flat_slot("action"), Some(SLOT_ACTION));
        assert_eq!(flat_slot("outcome"), Some(SLOT_OUTCOME));
        assert_eq!(flat_slot("geo.lon"), Some(SLOT_DETAILS - 1));
        assert_eq!(flat_slot("details"), Some(FLAT_SLOTS - 1));
        assert_eq!(flat_slot("details.x"), None);
        let serde_json::Value::Object(map) = serde_json::json!({"action": "a", "geo": {"lat": 1.5, "city": null},
            "details": {"k": "v", "n": 2, "z": null}, "timestamp": 7, "unknown": "x"})
        else {
            unreachable!()
        };
        let flat = FlatEvent::new(&map, None);
        assert_eq!((flat.get(SLOT_ACTION), flat.time_ms), (Some(b"a".as_slice()), 7));
        assert_eq!(flat.get(flat_slot("geo.lat").unwrap()), Some(b"1.5".as_slice()));
        assert_eq!(flat.get(flat_slot("geo.city").unwrap()), None, "null is absent");
        assert_eq!(
            (flat.detail("k"), flat.detail("n"), flat.detail("z")),
            (Some(b"v".as_slice()), Some(b"2".as_slice()), None)
        );
        assert_eq!(flat.get(SLOT_DETAILS), Some(br#"{"k":"v","n":2,"z":null}"#.as_slice()));
    }

    /// The flat form read from canonical bytes is the flat form of the decoded object.
    #[test]
    fn the_flat_form_from_canonical_bytes_is_the_flat_form_of_the_object() {
        let v = serde_json::json!({"action": "a", "event_id": "e\"1", "geo": {"lat": 1.5, "city": "Z\u{fc}rich", "country": "CH"},
            "details": {"k": "v\n", "n": 2, "z": null, "o": {"b": [1, "x"], "a": null}, "t": true},
            "timestamp": 7, "unknown": "x", "user_id": "caf\u{e9}", "ip": "10.0.0.1", "seq": 3});
        let mut canon = Vec::new();
        canonical::write_value(&v, &mut canon);
        let serde_json::Value::Object(map) = v else { unreachable!() };
        let (a, b) = (FlatEvent::new(&map, None), FlatEvent::from_canon(&canon));
        for slot in 0..FLAT_SLOTS {
            assert_eq!(a.get(slot), b.get(slot), "slot {slot}");
        }
        for k in ["k", "n", "z", "o", "t", "missing"] {
            assert_eq!(a.detail(k), b.detail(k), "details.{k}");
        }
        assert_eq!((a.time_ms, b.time_ms), (7, 7));
        assert!(a.is_utf8() && b.is_utf8(), "values from text are marked UTF-8 for the rules");
        // A damaged row (bytes that are not UTF-8 in a string) is not marked: each rule
        // checks what it reads, as before ABI 1.5.
        let mut damaged = canon.clone();
        let at = damaged.windows(4).position(|w| w == b"caf\xc3").expect("the user_id bytes") + 3;
        damaged[at] = 0xff;
        let c = FlatEvent::from_canon(&damaged);
        assert!(!c.is_utf8());
        assert_eq!(c.get(flat_slot("user_id").unwrap()), Some(b"caf\xff\xa9".as_slice()));
        let ev = CommittedEvent::from_canon(3, canon);
        assert_eq!((ev.event_id(), ev.event()["seq"].as_i64()), ("e\"1", Some(3)));
    }

    #[test]
    fn rfc3339_round_trip_with_milliseconds() {
        let ms = parse_time("2026-11-23T10:11:12.345+01:00").unwrap();
        assert_eq!(format_rfc3339_ms(ms), "2026-11-23T09:11:12.345Z");
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("-5"), None);
    }
}
