//! The typed event: the fixed fields of the wire format as typed values, `geo` and
//! `details` kept as their canonical JSON bytes. Ingest builds it (validate and mask work on
//! it), the sequencer writes the canonical form straight from it (no map, no sort: the
//! members of the canonical object are known and written in their byte order), and
//! detection reads committed events from their canonical bytes ([`members`]) without
//! decoding them into a tree.
//!
//! The canonical form is the one `ledger::canon` documents; [`EventFields::write_canonical`]
//! is proven byte-identical to it (tests here and in `ledger::canon`), so every log written
//! before the typed event still verifies.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::{Map, Value};

/// The optional plain string fields of the wire format, in the order of
/// [`EventFields::strings`].
pub const STRING_FIELDS: [&str; 11] = [
    "organization_id",
    "user_id",
    "session_id",
    "api_key_id",
    "request_id",
    "source",
    "resource",
    "resource_type",
    "reason",
    "error_code",
    "user_agent",
];

/// Index of `user_id` in [`EventFields::strings`].
pub const USER_ID: usize = 1;
/// Index of `organization_id` in [`EventFields::strings`].
pub const ORGANIZATION_ID: usize = 0;
/// Index of `request_id` in [`EventFields::strings`].
pub const REQUEST_ID: usize = 4;
/// Index of `source` in [`EventFields::strings`].
pub const SOURCE: usize = 5;

/// The validated, normalized and masked fields of an event (no server fields).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFields {
    /// Event time, epoch ms.
    pub timestamp: Option<i64>,
    pub category: String,
    pub action: String,
    pub severity: String,
    pub outcome: String,
    /// The fields of [`STRING_FIELDS`], in that order.
    pub strings: [Option<String>; STRING_FIELDS.len()],
    /// Canonical IP text.
    pub ip: Option<String>,
    /// Canonical JSON of the `geo` object.
    pub geo: Option<Box<[u8]>>,
    /// Canonical JSON of the `details` object.
    pub details: Option<Box<[u8]>>,
}

/// What the sequencer adds to an event's fields in its canonical form.
#[derive(Debug, Clone, Copy)]
pub struct ServerFields<'a> {
    pub event_id: &'a str,
    pub seq: i64,
    pub received_at: i64,
    pub mask_policy: u32,
    pub ingest_key: Option<&'a str>,
}

/// One member of the canonical object, in the byte order of the names.
#[derive(Clone, Copy)]
enum Member {
    Action,
    Category,
    Details,
    EventId,
    Geo,
    IngestKey,
    Ip,
    MaskPolicy,
    Outcome,
    ReceivedAt,
    Seq,
    Severity,
    String(usize),
    Timestamp,
}

/// Every member name with what it is, sorted by the names' bytes (built once).
fn sorted_members() -> &'static [(&'static str, Member)] {
    static SORTED: std::sync::OnceLock<Vec<(&'static str, Member)>> = std::sync::OnceLock::new();
    SORTED.get_or_init(|| {
        let mut v = vec![
            ("action", Member::Action),
            ("category", Member::Category),
            ("details", Member::Details),
            ("event_id", Member::EventId),
            ("geo", Member::Geo),
            ("ingest_key", Member::IngestKey),
            ("ip", Member::Ip),
            ("mask_policy", Member::MaskPolicy),
            ("outcome", Member::Outcome),
            ("received_at", Member::ReceivedAt),
            ("seq", Member::Seq),
            ("severity", Member::Severity),
            ("timestamp", Member::Timestamp),
        ];
        v.extend(STRING_FIELDS.iter().enumerate().map(|(i, f)| (*f, Member::String(i))));
        v.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        v
    })
}

/// Appends a JSON string (serde_json's escaping, as the canonical form has it).
#[inline]
pub fn write_json_str(s: &str, out: &mut Vec<u8>) {
    crate::event::canonical::write_str(s, out);
}

fn write_int(n: i64, out: &mut Vec<u8>) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

impl EventFields {
    /// The string field `name` of [`STRING_FIELDS`], if present.
    pub fn string(&self, name: &str) -> Option<&str> {
        STRING_FIELDS.iter().position(|f| *f == name).and_then(|i| self.strings[i].as_deref())
    }

    /// Sets the string field `name` of [`STRING_FIELDS`] (no effect for other names).
    pub fn set_string(&mut self, name: &str, value: impl Into<String>) {
        if let Some(i) = STRING_FIELDS.iter().position(|f| *f == name) {
            self.strings[i] = Some(value.into());
        }
    }

    /// Sets `details` from a value (written in canonical form).
    pub fn set_details(&mut self, details: &Value) {
        let mut out = Vec::with_capacity(128);
        crate::event::canonical::write_value(details, &mut out);
        self.details = Some(out.into_boxed_slice());
    }

    /// Appends the canonical form of the event (these fields and the server's) to `out`;
    /// returns the byte range of the value of `details` in `out`.
    pub fn write_canonical(&self, server: &ServerFields<'_>, out: &mut Vec<u8>) -> Option<Range<usize>> {
        let mut span = None;
        let mut first = true;
        out.push(b'{');
        for (name, member) in sorted_members() {
            // Whether the member is present, before anything is written.
            let present = match member {
                Member::Action | Member::Category | Member::EventId | Member::MaskPolicy => true,
                Member::Outcome | Member::Severity | Member::ReceivedAt | Member::Seq => true,
                Member::Details => self.details.is_some(),
                Member::Geo => self.geo.is_some(),
                Member::IngestKey => server.ingest_key.is_some(),
                Member::Ip => self.ip.is_some(),
                Member::String(i) => self.strings[*i].is_some(),
                Member::Timestamp => self.timestamp.is_some(),
            };
            if !present {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            match member {
                Member::Action => write_json_str(&self.action, out),
                Member::Category => write_json_str(&self.category, out),
                Member::Severity => write_json_str(&self.severity, out),
                Member::Outcome => write_json_str(&self.outcome, out),
                Member::EventId => write_json_str(server.event_id, out),
                Member::MaskPolicy => write_int(i64::from(server.mask_policy), out),
                Member::ReceivedAt => write_int(server.received_at, out),
                Member::Seq => write_int(server.seq, out),
                Member::Timestamp => write_int(self.timestamp.unwrap_or_default(), out),
                Member::IngestKey => write_json_str(server.ingest_key.unwrap_or_default(), out),
                Member::Ip => write_json_str(self.ip.as_deref().unwrap_or_default(), out),
                Member::String(i) => write_json_str(self.strings[*i].as_deref().unwrap_or_default(), out),
                Member::Geo => out.extend_from_slice(self.geo.as_deref().unwrap_or_default()),
                Member::Details => {
                    let start = out.len();
                    out.extend_from_slice(self.details.as_deref().unwrap_or_default());
                    span = Some(start..out.len());
                }
            }
        }
        out.push(b'}');
        span
    }

    /// The fields as a JSON object (tests, and callers that want the tree).
    pub fn to_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let s = |v: &str| Value::String(v.to_owned());
        if let Some(ts) = self.timestamp {
            m.insert("timestamp".into(), ts.into());
        }
        m.insert("category".into(), s(&self.category));
        m.insert("action".into(), s(&self.action));
        m.insert("severity".into(), s(&self.severity));
        m.insert("outcome".into(), s(&self.outcome));
        for (name, value) in STRING_FIELDS.iter().zip(&self.strings) {
            if let Some(v) = value {
                m.insert((*name).into(), s(v));
            }
        }
        if let Some(ip) = &self.ip {
            m.insert("ip".into(), s(ip));
        }
        for (name, bytes) in [("geo", &self.geo), ("details", &self.details)] {
            if let Some(b) = bytes {
                // Written by this module from a value: always valid JSON.
                m.insert(name.into(), serde_json::from_slice(b).unwrap_or(Value::Null));
            }
        }
        m
    }
}

/// The members of a compact JSON object (the canonical form: no whitespace, valid JSON),
/// as `(name, value bytes)`: strings keep their quotes, objects and arrays are their JSON
/// text. Stops at the first byte that does not fit (never panics on any input).
pub fn members(object: &[u8]) -> Members<'_> {
    Members { b: object, i: if object.first() == Some(&b'{') { 1 } else { object.len() } }
}

/// Iterator of [`members`].
pub struct Members<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (Cow<'a, [u8]>, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.b;
        if self.i >= b.len() || b[self.i] != b'"' {
            self.i = b.len();
            return None;
        }
        let key_end = string_end(b, self.i)?;
        let key = unquote_bytes(&b[self.i..key_end])?;
        if b.get(key_end) != Some(&b':') {
            self.i = b.len();
            return None;
        }
        let start = key_end + 1;
        let end = value_end(b, start).filter(|&e| e > start)?;
        self.i = match b.get(end) {
            Some(b',') => end + 1,
            _ => b.len(),
        };
        Some((key, &b[start..end]))
    }
}

/// The end (one past the closing quote) of the JSON string starting at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        j += memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[j] == b'"' {
            return Some(j + 1);
        }
        j += 2;
    }
}

/// The end of the JSON value starting at `i` (compact JSON). An object's end only needs its
/// braces balanced and strings skipped (brackets balance on their own), an array's its
/// brackets: three bytes to look for, found with `memchr3`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    let (open, close) = match b.get(i)? {
        b'"' => return string_end(b, i),
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        _ => return Some(memchr::memchr3(b',', b'}', b']', &b[i..]).map_or(b.len(), |p| i + p)),
    };
    let mut depth = 0usize;
    let mut j = i;
    loop {
        j += memchr::memchr3(b'"', open, close, b.get(j..)?)?;
        match b[j] {
            b'"' => j = string_end(b, j)?,
            c if c == open => {
                depth += 1;
                j += 1;
            }
            _ => {
                depth -= 1;
                j += 1;
                if depth == 0 {
                    return Some(j);
                }
            }
        }
    }
}

/// The bytes of the text of a quoted JSON string: borrowed (and not checked for UTF-8: the
/// flat form holds bytes) when it has no escapes, decoded when it has.
#[inline]
pub fn unquote_bytes(quoted: &[u8]) -> Option<Cow<'_, [u8]>> {
    let inner = quoted.get(1..quoted.len().checked_sub(1)?)?;
    if memchr::memchr(b'\\', inner).is_some() {
        serde_json::from_slice::<String>(quoted).ok().map(|s| Cow::Owned(s.into_bytes()))
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// The text of a quoted JSON string (borrowed when it has no escapes).
pub fn unquote(quoted: &[u8]) -> Option<Cow<'_, str>> {
    let inner = quoted.get(1..quoted.len().checked_sub(1)?)?;
    if inner.contains(&b'\\') {
        serde_json::from_slice::<String>(quoted).ok().map(Cow::Owned)
    } else {
        std::str::from_utf8(inner).ok().map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server() -> ServerFields<'static> {
        ServerFields {
            event_id: "e-1",
            seq: 42,
            received_at: 1_700_000_000_123,
            mask_policy: 2,
            ingest_key: Some("k_1"),
        }
    }

    fn full() -> EventFields {
        let mut f = EventFields {
            timestamp: Some(1_700_000_000_000),
            category: "authentication".into(),
            action: "login_failed".into(),
            severity: "high".into(),
            outcome: "failure".into(),
            ip: Some("2001:db8::1".into()),
            ..EventFields::default()
        };
        let mut geo = Vec::new();
        crate::event::canonical::write_value(
            &json!({"lon": 8.54, "city": "Z\u{fc}rich \"x\"", "country": "CH", "lat": 47.37}),
            &mut geo,
        );
        f.geo = Some(geo.into());
        for (i, name) in STRING_FIELDS.iter().enumerate() {
            f.strings[i] = Some(format!("{name} \"q\" \u{7} caf\u{e9} \u{2028}"));
        }
        f.set_details(&json!({"z": [1, {"b": null, "a": 1e-7}], "a": "x\ny", "m": {"k": true}}));
        f
    }

    /// The canonical form written from the typed fields is the bytes of the generic
    /// canonical writer over the same event as a map, with or without optional members.
    #[test]
    fn canonical_bytes_match_the_generic_writer() {
        let mut minimal = EventFields {
            category: "c".into(),
            action: "a".into(),
            severity: "low".into(),
            outcome: "unknown".into(),
            ..EventFields::default()
        };
        minimal.timestamp = Some(5);
        for (fields, key) in [(full(), Some("k_1")), (minimal, None)] {
            let server = ServerFields { ingest_key: key, ..server() };
            let mut typed = Vec::new();
            let span = fields.write_canonical(&server, &mut typed);
            let mut map = fields.to_map();
            map.insert("event_id".into(), json!(server.event_id));
            map.insert("seq".into(), json!(server.seq));
            map.insert("received_at".into(), json!(server.received_at));
            map.insert("mask_policy".into(), json!(server.mask_policy));
            if let Some(k) = key {
                map.insert("ingest_key".into(), json!(k));
            }
            let mut generic = Vec::new();
            crate::event::canonical::write_value(&Value::Object(map.clone()), &mut generic);
            assert_eq!(String::from_utf8_lossy(&typed), String::from_utf8_lossy(&generic));
            if let Some(d) = &fields.details {
                assert_eq!(&typed[span.unwrap()], &d[..]);
            }
        }
    }

    #[test]
    fn members_walk_a_compact_object_and_unquote_names() {
        let text = br#"{"a\"b":"v\n","d":{"x":[1,"]}"]},"n":-1.5e3,"t":true,"z":null}"#;
        let got: Vec<(String, String)> = members(text)
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        assert_eq!(
            got,
            [
                ("a\"b".into(), r#""v\n""#.into()),
                ("d".into(), r#"{"x":[1,"]}"]}"#.into()),
                ("n".into(), "-1.5e3".into()),
                ("t".into(), "true".into()),
                ("z".into(), "null".into())
            ]
        );
        assert_eq!(unquote(br#""a\u00e9""#).as_deref(), Some("a\u{e9}"));
        // Damaged input ends the walk; it never panics.
        for bad in [&b"{\"a\":"[..], b"{\"a", b"[1]", b"", b"{\"a\":1,", b"{\"a\":{\"b\":1"] {
            let _ = members(bad).count();
        }
    }
}
