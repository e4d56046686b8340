//! Validation and normalization of incoming events (DESIGN.md section 2).
//!
//! Every problem of every event is collected (index, field, problem) so one 400 names them
//! all; a batch with any problem is refused whole. A problem names the field and what is
//! wrong, never the client's value (an unknown field's name goes through the masker first).
//! Valid events come out normalized (lowercase category/action/severity/outcome, epoch-ms
//! timestamp, canonical IP text) and masked by the `Masker` (value detectors on every
//! top-level string and `geo.city`, the full policy on `details`), ready for the
//! `Sequencer`.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

use super::Masker;
use super::wire::{Scalar, Wire};
use crate::event::{EventFields, NewEvent, STRING_FIELDS};
use crate::event::{MAX_TIME_MS, now_ms, parse_time};

/// One thing wrong with one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Position of the event in the request (0-based; NDJSON: line among non-empty lines).
    pub index: usize,
    /// The offending field (`geo.lat`, `details`, or `body` for the request itself).
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

impl Problem {
    fn new(index: usize, field: &str, problem: impl Into<String>) -> Self {
        Self { index, field: field.to_owned(), problem: problem.into() }
    }
}

/// Optional plain string fields and their byte limits; each runs through the value
/// detectors of the masker (not the key denylist, so ids like `alice` stay as sent).
/// (`event::STRING_FIELDS` names them, in this order.)
const STRING_LIMITS: [usize; STRING_FIELDS.len()] = [512, 512, 512, 512, 512, 512, 512, 512, 512, 512, 1024];
/// Fields only the server writes (a client sending one gets a 400 saying so).
const SERVER_FIELDS: &[&str] = &["seq", "hash", "prev_hash", "received_at", "mask_policy", "ingest_key", "partition"];
const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];
const OUTCOMES: &[&str] = &["success", "failure", "unknown"];
/// Most events one request may ever carry (`[ingest] max_events_per_request` is at most
/// this; its default is [`DEFAULT_EVENTS_PER_REQUEST`]).
pub const MAX_EVENTS_PER_REQUEST: usize = 100_000;
/// Default most events per request: a parsed event holds about 4-6 KiB until its batch is
/// answered (the batch is atomic, so all of it at once), so this bounds one request near
/// 120 MB whatever the body's shape.
pub const DEFAULT_EVENTS_PER_REQUEST: usize = 20_000;
const MAX_DETAILS_BYTES: usize = 64 * 1024;
const MAX_DETAILS_DEPTH: usize = 16;

/// Largest accepted single event, as JSON text. `details` is capped at 64 KiB once
/// serialized and the other fields at a few KiB; escapes and whitespace leave room. Checked
/// on the text, before any of it is parsed, so no event builds a large tree.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// Splits a request body into the JSON texts of its events, without parsing them: NDJSON
/// when the content type says so (one event per non-empty line), else one JSON object or an
/// array of them. The body is scanned once for the array's top-level commas; each event is
/// then parsed on its own (`validate_body`), so memory follows the largest event (at most
/// [`MAX_EVENT_BYTES`]), never the body. An event over the cap or a body over `max_events`
/// events is a problem; malformed JSON is found when the piece is parsed.
pub fn split_body(body: &[u8], ndjson: bool, max_events: usize) -> Result<Vec<&str>, Vec<Problem>> {
    let text = std::str::from_utf8(body)
        .map_err(|e| vec![Problem::new(0, "body", format!("body is not valid UTF-8 (byte {})", e.valid_up_to()))])?;
    let pieces = if ndjson {
        text.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
    } else {
        let trimmed = text.trim();
        match trimmed.as_bytes().first() {
            Some(b'{') => vec![trimmed],
            Some(b'[') => split_array(trimmed, max_events)
                .map_err(|m| vec![Problem::new(0, "body", format!("malformed JSON: {m}"))])?,
            None => return Err(vec![Problem::new(0, "body", "no events in the request")]),
            Some(_) => return Err(vec![Problem::new(0, "body", "expected a JSON object or an array of objects")]),
        }
    };
    let pieces: Vec<&str> = pieces;
    if pieces.is_empty() {
        return Err(vec![Problem::new(0, "body", "no events in the request")]);
    }
    if pieces.len() > max_events {
        return Err(vec![Problem::new(
            0,
            "body",
            format!("more than {max_events} events in one request (ingest.max_events_per_request); split the batch"),
        )]);
    }
    let big: Vec<Problem> = pieces
        .iter()
        .enumerate()
        .filter(|(_, p)| p.len() > MAX_EVENT_BYTES)
        .map(|(i, p)| {
            Problem::new(
                i,
                "body",
                format!("the event is {} bytes of JSON; at most {MAX_EVENT_BYTES} are accepted", p.len()),
            )
        })
        .collect();
    if big.is_empty() { Ok(pieces) } else { Err(big) }
}

/// Bytes that matter outside strings while splitting an array: quotes, brackets, commas.
const STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut k = 0;
    let bytes = b"\"[]{},";
    while k < bytes.len() {
        t[bytes[k] as usize] = true;
        k += 1;
    }
    t
};

/// The top-level elements of a JSON array text (which starts with `[`), as slices of it.
/// Only strings and nesting are tracked; each slice is parsed strictly later, and the text
/// between slices may only be commas and whitespace, so a body is accepted only when it is
/// a valid JSON array. Strings are crossed with `memchr2` (quote or backslash) and the text
/// between them with a table of the structural bytes, so most bytes cost a compare or two.
fn split_array(text: &str, max_events: usize) -> Result<Vec<&str>, String> {
    const EOF: &str = "the array is not closed (EOF while parsing)";
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut depth = 0usize;
    let mut start = 1;
    let mut i = 1;
    loop {
        while i < bytes.len() && !STRUCTURAL[usize::from(bytes[i])] {
            i += 1;
        }
        let Some(&b) = bytes.get(i) else { return Err(EOF.into()) };
        match b {
            b'"' => {
                i = string_end(bytes, i + 1).ok_or(EOF)?;
                continue;
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' if depth > 0 => depth -= 1,
            b',' if depth == 0 => {
                let piece = text[start..i].trim();
                if piece.is_empty() {
                    return Err(format!("an empty element before the comma at byte {i}"));
                }
                pieces.push(piece);
                start = i + 1;
                if pieces.len() > max_events {
                    return Ok(pieces);
                }
            }
            b']' => {
                let piece = text[start..i].trim();
                match (piece.is_empty(), pieces.is_empty()) {
                    (false, _) => pieces.push(piece),
                    (true, true) => {}
                    (true, false) => return Err(format!("a trailing comma before byte {i}")),
                }
                if !text[i + 1..].trim().is_empty() {
                    return Err(format!("unexpected text after the array at byte {}", i + 1));
                }
                return Ok(pieces);
            }
            b'}' => return Err(format!("an unmatched `}}` at byte {i}")),
            // A comma inside an element.
            _ => {}
        }
        i += 1;
    }
}

/// Where the JSON string whose text starts at `from` ends (just past its closing quote);
/// `None` if the text ends first. A backslash escapes the byte after it.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let k = from + memchr::memchr2(b'"', b'\\', bytes.get(from..)?)?;
        if bytes[k] == b'"' {
            return Some(k + 1);
        }
        from = k + 2;
    }
}

/// Reads one event's JSON text into its wire fields.
fn parse_event(index: usize, text: &str) -> Result<Wire, Problem> {
    match Wire::parse(text) {
        Ok(Some(wire)) => Ok(wire),
        Ok(None) => Err(Problem::new(index, "body", "each event must be a JSON object")),
        Err(e) => Err(Problem::new(index, "body", format!("malformed JSON: {e}"))),
    }
}

/// Splits and parses a request body into event values (see [`split_body`]); tests and
/// benchmarks use it, the server goes straight to [`validate_body`].
pub fn parse_body(body: &[u8], ndjson: bool) -> Result<Vec<Value>, Vec<Problem>> {
    let pieces = split_body(body, ndjson, MAX_EVENTS_PER_REQUEST)?;
    let mut problems = Vec::new();
    let mut values = Vec::with_capacity(pieces.len());
    for (index, piece) in pieces.iter().enumerate() {
        match serde_json::from_str::<Value>(piece) {
            Ok(v) => values.push(v),
            Err(e) => problems.push(Problem::new(index, "body", format!("malformed JSON: {e}"))),
        }
    }
    if problems.is_empty() { Ok(values) } else { Err(problems) }
}

/// Splits, parses, validates, normalizes and masks a request body, one event at a time:
/// each event is read straight into its typed fields (only `geo` and `details` become
/// trees, dropped once written in canonical form). Either every event is good or every
/// problem is returned.
pub fn validate_body(body: &[u8], ndjson: bool, masker: &Masker) -> Result<Vec<NewEvent>, Vec<Problem>> {
    validate_pieces(&split_body(body, ndjson, MAX_EVENTS_PER_REQUEST)?, masker)
}

/// Parses, validates, normalizes and masks the events of [`split_body`], one at a time.
pub fn validate_pieces(pieces: &[&str], masker: &Masker) -> Result<Vec<NewEvent>, Vec<Problem>> {
    let received_at = now_ms();
    let mut problems = Vec::new();
    let mut events = Vec::with_capacity(pieces.len());
    for (index, piece) in pieces.iter().enumerate() {
        match parse_event(index, piece) {
            Ok(wire) => {
                if let Some(ev) = validate_event(index, wire, received_at, masker, &mut problems) {
                    events.push(ev);
                }
            }
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() { Ok(events) } else { Err(problems) }
}

/// Validates, normalizes and masks each event on its own (one received time for all): the
/// inputs that refuse single records and store the rest (OTLP partial success, syslog
/// lines) use it. Each problem's `index` is the event's position.
pub fn validate_each(values: Vec<Value>, masker: &Masker) -> Vec<Result<NewEvent, Vec<Problem>>> {
    let received_at = now_ms();
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let Some(wire) = Wire::from_value(value) else {
                return Err(vec![Problem::new(index, "body", "each event must be a JSON object")]);
            };
            let mut problems = Vec::new();
            validate_event(index, wire, received_at, masker, &mut problems)
                .filter(|_| problems.is_empty())
                .ok_or(problems)
        })
        .collect()
}

/// Validates, normalizes and masks a batch. Either every event is good, or every problem
/// found is returned and nothing may be stored.
pub fn validate_batch(values: Vec<Value>, masker: &Masker) -> Result<Vec<NewEvent>, Vec<Problem>> {
    let received_at = now_ms();
    let mut problems = Vec::new();
    let mut events = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        match Wire::from_value(value) {
            Some(wire) => {
                if let Some(ev) = validate_event(index, wire, received_at, masker, &mut problems) {
                    events.push(ev);
                }
            }
            None => problems.push(Problem::new(index, "body", "each event must be a JSON object")),
        }
    }
    if problems.is_empty() { Ok(events) } else { Err(problems) }
}

/// A member sent as `null` is absent.
fn present(v: Option<Scalar>) -> Option<Scalar> {
    v.filter(|s| *s != Scalar::Null)
}

// Long by design: one check per wire field in DESIGN order, each naming its problem;
// split, the order of checks (and of the problems reported) would be scattered.
fn validate_event(
    index: usize,
    mut wire: Wire,
    received_at: i64,
    masker: &Masker,
    problems: &mut Vec<Problem>,
) -> Option<NewEvent> {
    let before = problems.len();
    wire.unknown.sort();
    for key in &wire.unknown {
        let problem = if SERVER_FIELDS.contains(&key.as_str()) {
            "is set by the server and cannot be sent (`ingest_key` is the id of the key that sent the event)"
        } else {
            "unknown field (put extensions in `details`)"
        };
        problems.push(Problem::new(index, &shown_key(key, masker), problem));
    }

    let mut out = EventFields::default();
    let mut client_id = false;
    let event_id = match present(wire.event_id) {
        None => uuid::Uuid::now_v7().to_string(),
        Some(Scalar::Str(s)) if s.starts_with(crate::event::RESERVED_ID_PREFIX) => {
            problems.push(Problem::new(
                index,
                "event_id",
                "must not start with `vigil:` (reserved for the server's own events)",
            ));
            String::new()
        }
        Some(Scalar::Str(s)) if (1..=128).contains(&s.chars().count()) && !s.chars().any(char::is_control) => {
            client_id = true;
            s
        }
        Some(Scalar::Str(_)) => {
            problems.push(Problem::new(index, "event_id", "must be 1 to 128 characters, without control characters"));
            String::new()
        }
        Some(_) => {
            problems.push(Problem::new(index, "event_id", "must be a string"));
            String::new()
        }
    };
    out.timestamp = match present(wire.timestamp) {
        None => Some(received_at),
        Some(Scalar::Str(s)) => parse_time(&s).filter(|_| s.parse::<i64>().is_err()).or_else(|| {
            problems.push(Problem::new(index, "timestamp", "must be an RFC 3339 time or integer epoch milliseconds"));
            None
        }),
        // An integral float (`1689.0`) is an integer, as JSON Schema counts it.
        Some(Scalar::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e16).map(|f| f as i64))
            .filter(|ms| (0..=MAX_TIME_MS).contains(ms))
            .or_else(|| {
                problems.push(Problem::new(
                    index,
                    "timestamp",
                    "epoch milliseconds must be an integer from 0 to year 9999",
                ));
                None
            }),
        Some(_) => {
            problems.push(Problem::new(index, "timestamp", "must be an RFC 3339 string or integer epoch milliseconds"));
            None
        }
    };
    match take_str(wire.category, "category", index, problems) {
        None => problems.push(Problem::new(index, "category", "is required")),
        Some(mut s) => {
            s.make_ascii_lowercase();
            if (1..=64).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                out.category = s;
            } else {
                problems.push(Problem::new(index, "category", "must match [a-z0-9_]{1,64}"));
            }
        }
    }
    match take_str(wire.action, "action", index, problems) {
        None => problems.push(Problem::new(index, "action", "is required")),
        Some(mut s) => {
            let ok = (1..=128).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
            if ok {
                s.make_ascii_lowercase();
                out.action = s;
            } else {
                problems.push(Problem::new(index, "action", "must match [A-Za-z0-9_.:-]{1,128}"));
            }
        }
    }
    for (field, allowed, default, value, slot) in [
        ("severity", SEVERITIES, "low", wire.severity, &mut out.severity),
        ("outcome", OUTCOMES, "unknown", wire.outcome, &mut out.outcome),
    ] {
        match take_str(value, field, index, problems).map(|mut s| {
            s.make_ascii_lowercase();
            s
        }) {
            None => *slot = default.into(),
            Some(v) if allowed.contains(&v.as_str()) => *slot = v,
            Some(_) => problems.push(Problem::new(index, field, format!("must be one of {}", allowed.join(", ")))),
        }
    }
    for (i, value) in wire.strings.into_iter().enumerate() {
        let (field, limit) = (STRING_FIELDS[i], STRING_LIMITS[i]);
        if let Some(s) = take_str(value, field, index, problems) {
            if s.len() > limit {
                problems.push(Problem::new(index, field, format!("longer than {limit} bytes")));
            } else if s.contains('\0') {
                // PostgreSQL text cannot hold NUL; refused on both backends alike.
                problems.push(Problem::new(index, field, "must not contain NUL (U+0000)"));
            } else {
                out.strings[i] = Some(masker.mask_str(&s).unwrap_or(s));
            }
        }
    }
    if let Some(s) = take_str(wire.ip, "ip", index, problems) {
        match s.parse::<IpAddr>() {
            Ok(ip) => out.ip = Some(ip_text(ip)),
            Err(_) => problems.push(Problem::new(index, "ip", "is not a valid IPv4 or IPv6 address")),
        }
    }
    if let Some(geo) = wire.geo.filter(|g| !g.is_null()).and_then(|geo| validate_geo(index, geo, masker, problems)) {
        out.geo = Some(geo.into_boxed_slice());
    }
    match wire.details {
        None | Some(Value::Null) => {}
        Some(mut details @ Value::Object(_)) => {
            let depth = depth(&details);
            if depth > MAX_DETAILS_DEPTH {
                problems.push(Problem::new(
                    index,
                    "details",
                    format!("nested {depth} deep (at most {MAX_DETAILS_DEPTH})"),
                ));
            } else {
                // The canonical form is the compact form with sorted keys: its length is
                // the serialized size the limit is on.
                let mut bytes = Vec::with_capacity(256);
                crate::event::canonical::write_value(&details, &mut bytes);
                if bytes.len() > MAX_DETAILS_BYTES {
                    problems.push(Problem::new(
                        index,
                        "details",
                        format!("{} bytes serialized (at most {MAX_DETAILS_BYTES})", bytes.len()),
                    ));
                } else {
                    if masker.mask_value(&mut details) > 0 {
                        bytes.clear();
                        crate::event::canonical::write_value(&details, &mut bytes);
                    }
                    out.details = Some(bytes.into_boxed_slice());
                }
            }
        }
        Some(_) => problems.push(Problem::new(index, "details", "must be a JSON object")),
    }
    (problems.len() == before).then_some(NewEvent { event_id, client_id, ingest_key: None, received_at, fields: out })
}

/// A client-chosen member name as shown in a problem: masked (a secret used as a key must
/// not come back in the 400), then cut to 64 characters.
fn shown_key(key: &str, masker: &Masker) -> String {
    let masked = masker.mask_str(key);
    masked.as_deref().unwrap_or(key).chars().take(64).collect()
}

/// The text of a string member; records a problem when it is present but not a string.
fn take_str(value: Option<Scalar>, field: &str, index: usize, problems: &mut Vec<Problem>) -> Option<String> {
    match present(value)? {
        Scalar::Str(s) => Some(s),
        _ => {
            problems.push(Problem::new(index, field, "must be a string"));
            None
        }
    }
}

/// The canonical bytes of a valid `geo` (its members written in key order, as
/// `canonical::write_object` writes the same members as a map), or its problems.
fn validate_geo(index: usize, geo: Value, masker: &Masker, problems: &mut Vec<Problem>) -> Option<Vec<u8>> {
    let Value::Object(mut geo) = geo else {
        problems.push(Problem::new(index, "geo", "must be an object {country, city, lat, lon}"));
        return None;
    };
    geo.retain(|_, v| !v.is_null());
    let before = problems.len();
    for key in geo.keys().filter(|k| !matches!(k.as_str(), "country" | "city" | "lat" | "lon")) {
        problems.push(Problem::new(index, &format!("geo.{}", shown_key(key, masker)), "unknown field"));
    }
    // In canonical (byte) order: city, country, lat, lon.
    let mut members: [Option<Value>; 4] = [None, None, None, None];
    match geo.remove("country") {
        None => {}
        Some(Value::String(c)) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            members[1] = Some(Value::String(c.to_ascii_uppercase()));
        }
        Some(_) => problems.push(Problem::new(index, "geo.country", "must be an ISO 3166 alpha-2 code")),
    }
    match geo.remove("city") {
        None => {}
        Some(Value::String(c)) if c.len() <= 512 && !c.contains('\0') => {
            members[0] = Some(Value::String(masker.mask_str(&c).unwrap_or(c)));
        }
        Some(_) => problems.push(Problem::new(index, "geo.city", "must be a string of at most 512 bytes, without NUL")),
    }
    for (slot, key, bound) in [(2, "lat", 90.0), (3, "lon", 180.0)] {
        match geo.remove(key) {
            None => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|x| (-bound..=bound).contains(&x)) => {
                members[slot] = Some(Value::Number(n));
            }
            Some(_) => problems.push(Problem::new(
                index,
                &format!("geo.{key}"),
                format!("must be a number from -{bound} to {bound}"),
            )),
        }
    }
    if problems.len() != before {
        return None;
    }
    let mut bytes = Vec::with_capacity(64);
    bytes.push(b'{');
    for (key, value) in ["city", "country", "lat", "lon"].into_iter().zip(&members) {
        if let Some(value) = value {
            if bytes.len() > 1 {
                bytes.push(b',');
            }
            bytes.push(b'"');
            bytes.extend_from_slice(key.as_bytes());
            bytes.extend_from_slice(b"\":");
            crate::event::canonical::write_value(value, &mut bytes);
        }
    }
    bytes.push(b'}');
    Some(bytes)
}

/// The canonical text of an address, as `Display` writes it: IPv4 (the common case) digit
/// by digit, without `core::fmt`; IPv6 (RFC 5952 compression, mapped IPv4) by `Display`.
fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut s = String::with_capacity(15);
            for (k, o) in v4.octets().into_iter().enumerate() {
                if k > 0 {
                    s.push('.');
                }
                if o >= 100 {
                    s.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    s.push(char::from(b'0' + o / 10 % 10));
                }
                s.push(char::from(b'0' + o % 10));
            }
            s
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

/// Nesting depth of a JSON value (a scalar is 0, `{}` is 1).
fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn masker() -> Masker {
        Masker::new(b"test-key")
    }

    fn one(v: Value) -> Result<NewEvent, Vec<Problem>> {
        validate_batch(vec![v], &masker()).map(|mut e| e.remove(0))
    }

    /// The server's path (each event read straight into its typed fields) and the tree path
    /// (parsed values) accept the same bodies with the same problems and the same fields;
    /// the canonical bytes written from the typed fields are the generic writer's over the
    /// same event as a tree, and the flat form read from them is the tree's. Over tricky
    /// bodies and the fuzz seeds and regressions (`fuzz/`, where the fuzzer checks the same).
    #[test]
    fn typed_and_tree_paths_agree_and_write_the_same_canonical_bytes() {
        let m = masker();
        let mut bodies: Vec<Vec<u8>> = [
            r#"{"category":"a","category":"B","action":"x","user_id":null,"zz":1,"zz":2,"details":{"password":"p","b":[1,2.5e300,{"k":"v"}]}}"#,
            r#"[{"category":"auth","action":"login","timestamp":"2026-01-02T03:04:05.678+01:00","ip":"::FFFF:10.0.0.1","geo":{"city":"Z\u00fcrich","country":"ch","lat":47.0,"lon":-8}}, {"category":"c","action":"a","timestamp":1.7e12,"session_id":"4111 1111 1111 1111","details":{"n":12345678901234567890,"f":0.1,"s":"\ud83d\ude00"}}]"#,
            r#"[1, "x", {"action": 5}, {"category": [], "details": []}, {"seq": 1, "ingest_key": "k"}]"#,
            r#"{"category":"c","action":"a","event_id":"vigil:x","timestamp":-1,"severity":"HIGH","outcome":"Failure"}"#,
            r#"{"category":"c","action":"a","details":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":{"l":{"m":{"n":{"o":{"p":{"q":1}}}}}}}}}}}}}}}}}}"#,
            "[]",
            "{\"a\":",
        ]
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .collect();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        for dir in ["seeds/ingest", "regressions/ingest"] {
            for entry in std::fs::read_dir(root.join(dir)).into_iter().flatten().flatten() {
                bodies.push(std::fs::read(entry.path()).unwrap());
            }
        }
        assert!(bodies.len() > 9, "the fuzz seeds were read");
        for body in &bodies {
            for ndjson in [false, true] {
                let typed = validate_body(body, ndjson, &m);
                let tree = parse_body(body, ndjson).and_then(|v| validate_batch(v, &m));
                let shown = String::from_utf8_lossy(body);
                match (&typed, &tree) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a.len(), b.len());
                        for (a, b) in a.iter().zip(b) {
                            // An event without a time gets its receipt time (one call each).
                            let sent = |e: &NewEvent| {
                                let mut f = e.fields.clone();
                                f.timestamp = f.timestamp.filter(|t| *t != e.received_at);
                                f
                            };
                            assert_eq!(sent(a), sent(b), "{shown}");
                            let server = crate::event::ServerFields {
                                event_id: &a.event_id,
                                seq: 9,
                                received_at: a.received_at,
                                mask_policy: crate::event::MASK_POLICY_VERSION,
                                ingest_key: Some("k_1"),
                            };
                            let mut canon = Vec::new();
                            a.fields.write_canonical(&server, &mut canon);
                            let mut map = a.fields.to_map();
                            map.insert("event_id".into(), json!(a.event_id));
                            map.insert("seq".into(), json!(9));
                            map.insert("received_at".into(), json!(a.received_at));
                            map.insert("mask_policy".into(), json!(crate::event::MASK_POLICY_VERSION));
                            map.insert("ingest_key".into(), json!("k_1"));
                            assert_eq!(canon, crate::event::canonical_object(&map), "{shown}");
                            let (x, y) =
                                (crate::event::FlatEvent::from_canon(&canon), crate::event::FlatEvent::new(&map, None));
                            for slot in 0..crate::event::FLAT_SLOTS {
                                assert_eq!(x.get(slot), y.get(slot), "slot {slot} of {shown}");
                            }
                            assert_eq!(x.time_ms, y.time_ms);
                        }
                    }
                    (Err(a), Err(b)) => {
                        // Malformed JSON may be worded differently by the two parsers'
                        // positions; every other problem is the same.
                        let strip = |p: &[Problem]| -> Vec<(usize, String)> {
                            p.iter()
                                .filter(|p| !p.problem.starts_with("malformed JSON"))
                                .map(|p| (p.index, p.field.clone()))
                                .collect()
                        };
                        assert_eq!(strip(a), strip(b), "{shown}");
                    }
                    _ => panic!("the paths disagree on {shown}: {typed:?} / {tree:?}"),
                }
            }
        }
    }

    fn fields_of(problems: &[Problem]) -> Vec<(usize, &str)> {
        problems.iter().map(|p| (p.index, p.field.as_str())).collect()
    }

    #[test]
    fn minimal_event_gets_defaults_and_is_normalized() {
        let ev = one(json!({"category": "Authentication", "action": "Login_Failed", "ip": "2001:DB8::1"})).unwrap();
        assert_eq!(ev.fields.to_map()["category"], "authentication");
        assert_eq!(ev.fields.to_map()["action"], "login_failed");
        assert_eq!(ev.fields.to_map()["severity"], "low");
        assert_eq!(ev.fields.to_map()["outcome"], "unknown");
        assert_eq!(ev.fields.to_map()["ip"], "2001:db8::1");
        assert!(ev.fields.to_map()["timestamp"].is_i64());
        assert!(!ev.client_id);
        assert_eq!(uuid::Uuid::parse_str(&ev.event_id).unwrap().get_version_num(), 7);
    }

    #[test]
    fn every_problem_of_every_event_is_named() {
        let batch = vec![
            json!({"category": "auth", "action": "ok"}),
            json!({"category": "BAD CAT", "action": "x", "ip": "999.1.1.1", "severity": "urgent", "colour": "red"}),
            json!({"action": "x", "timestamp": 1.5, "geo": {"lat": 91, "country": "USA", "alt": 3}}),
            json!("not an object"),
        ];
        let problems = validate_batch(batch, &masker()).unwrap_err();
        let fields = fields_of(&problems);
        for expected in [
            (1, "colour"),
            (1, "category"),
            (1, "severity"),
            (1, "ip"),
            (2, "category"),
            (2, "timestamp"),
            (2, "geo.alt"),
            (2, "geo.country"),
            (2, "geo.lat"),
            (3, "body"),
        ] {
            assert!(fields.contains(&expected), "missing {expected:?} in {fields:?}");
        }
        assert!(!fields.iter().any(|(i, _)| *i == 0), "event 0 is valid: {fields:?}");
    }

    #[test]
    fn wrong_types_and_oversized_strings_are_refused() {
        let long = "x".repeat(513);
        let problems =
            one(json!({"category": "a", "action": 5, "user_id": long, "details": [1], "event_id": ""})).unwrap_err();
        let fields = fields_of(&problems);
        for f in ["action", "user_id", "details", "event_id"] {
            assert!(fields.contains(&(0, f)), "{f} not reported: {fields:?}");
        }
    }

    #[test]
    fn details_depth_and_size_are_bounded() {
        let mut deep = json!(1);
        for _ in 0..17 {
            deep = json!({ "a": deep });
        }
        let problems = one(json!({"category": "a", "action": "b", "details": deep})).unwrap_err();
        assert_eq!(fields_of(&problems), vec![(0, "details")]);
        let big = json!({"category": "a", "action": "b", "details": {"blob": "y".repeat(70_000)}});
        assert_eq!(fields_of(&one(big).unwrap_err()), vec![(0, "details")]);
    }

    #[test]
    fn timestamps_accept_rfc3339_and_epoch_ms_only() {
        let ok = one(json!({"category": "a", "action": "b", "timestamp": "2026-01-02T03:04:05Z"})).unwrap();
        assert_eq!(ok.fields.to_map()["timestamp"], 1_767_323_045_000_i64);
        let ok = one(json!({"category": "a", "action": "b", "timestamp": 1_700_000_000_000_i64})).unwrap();
        assert_eq!(ok.fields.to_map()["timestamp"], 1_700_000_000_000_i64);
        for bad in [json!("2026-13-01T00:00:00Z"), json!("1700000000000"), json!(-1), json!(true)] {
            let problems = one(json!({"category": "a", "action": "b", "timestamp": bad})).unwrap_err();
            assert_eq!(fields_of(&problems), vec![(0, "timestamp")], "{bad}");
        }
    }

    #[test]
    fn secrets_in_details_are_masked_before_storage() {
        let ev =
            one(json!({"category": "a", "action": "b", "details": {"password": "hunter2", "note": "ok"}})).unwrap();
        let stored = ev.fields.to_map()["details"].to_string();
        assert!(!stored.contains("hunter2"), "{stored}");
        assert!(stored.contains("\"note\":\"ok\""), "{stored}");
    }

    /// A W1-like event as a client sends it (the generator of `benches/support/w1.rs`,
    /// without the server fields).
    fn w1_event(i: u64) -> Value {
        let t = 1_736_244_000_000 + i as i64;
        json!({
            "event_id": format!("bench-{i}"), "timestamp": t, "category": "authentication",
            "action": "login_success", "outcome": "success", "severity": "low",
            "user_id": format!("user-{:05}", i % 5000), "organization_id": format!("org-{}", i % 50),
            "session_id": format!("sess-{:08x}", i * 7919),
            "request_id": format!("req-{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            "ip": format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
            "source": "auth-service", "resource": format!("/api/v1/accounts/{}/profile", i % 5000),
            "resource_type": "account", "geo": {"country": "FR", "city": "Paris", "lat": 48.8566, "lon": 2.3522},
            "details": {"method": "password", "mfa": i.is_multiple_of(3), "record_count": 1 + i % 5, "sensitive": false,
                        "required_role": "editor", "client_version": "4.2.1"},
        })
    }

    /// Median time to parse, validate and mask a 500-event W1 body, next to parsing alone:
    /// the criterion `ingest/*` pair without the bench's wasm-rule set-up. Run with
    /// `cargo test --release -p vigil-engine --lib parse_validate_mask_timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing; run in release"]
    #[allow(clippy::print_stderr)] // a benchmark's result, shown with --nocapture
    fn parse_validate_mask_timing() {
        let body = serde_json::to_vec(&(0..500).map(w1_event).collect::<Vec<_>>()).unwrap();
        let m = masker();
        let median = |f: &dyn Fn()| {
            let mut runs: Vec<std::time::Duration> = (0..300)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed()
                })
                .collect();
            runs.sort();
            runs[runs.len() / 2]
        };
        let parse = median(&|| assert_eq!(parse_body(&body, false).unwrap().len(), 500));
        let all = median(&|| assert_eq!(validate_body(&body, false, &m).unwrap().len(), 500));
        eprintln!("parse_500 median {parse:?}; parse_validate_mask_500 median {all:?} ({:?} per event)", all / 500);
    }

    #[test]
    fn server_fields_are_refused_by_name() {
        let problems = one(json!({"category": "auth", "action": "x", "ingest_key": "k_other"})).unwrap_err();
        assert_eq!(fields_of(&problems), vec![(0, "ingest_key")]);
        assert!(problems[0].problem.contains("set by the server"), "{problems:?}");
        assert!(one(json!({"category": "auth", "action": "x", "seq": 1})).is_err());
    }

    #[test]
    fn arrays_are_split_without_parsing_and_parse_the_same() {
        let body = br#" [ {"a":"x,]}[{"}, {"b":[1,{"c":"\"]"}]} ,{}] "#;
        let pieces = split_body(body, false, 10).unwrap();
        assert_eq!(pieces, vec![r#"{"a":"x,]}[{"}"#, r#"{"b":[1,{"c":"\"]"}]}"#, "{}"]);
        let whole: Vec<Value> = serde_json::from_slice(body).unwrap();
        assert_eq!(parse_body(body, false).unwrap(), whole);
        for bad in [&b"[{},]"[..], b"[,{}]", b"[{} {}]", b"[{}", b"[{}]x", b"[{]}", b"[{}}]", b"[{},,{}]"] {
            let r = parse_body(bad, false);
            assert!(r.is_err(), "{} was accepted", String::from_utf8_lossy(bad));
            assert!(serde_json::from_slice::<Value>(bad).is_err(), "{} is valid JSON", String::from_utf8_lossy(bad));
        }
    }

    /// The jumping split (strings crossed with `memchr2`) over the edge cases it skips:
    /// escaped quotes and backslashes, brackets and commas inside strings, multi-byte text,
    /// garbage between elements and every truncation of a body. Wherever serde_json reads
    /// the whole body as an array, the pieces parse to its elements; wherever it refuses
    /// it, so does the split or the parse of a piece.
    #[test]
    fn the_array_split_jumps_strings_and_agrees_with_serde_json() {
        let good: &[&[u8]] = &[
            br#"[{"a":"\\"},{"b":"\\\"]"}]"#,
            br#"[{"a":"x\"},{\"y"}]"#,
            "[{\"k\":\"\u{e9}\u{4e2d},]}\",\"l\":[\"[\",\"{\"]},\n\t{\"z\":\"\u{1F600}\"}]".as_bytes(),
            br#"[{"a":[[[{"b":"}}}]]]"}]]]},{"c":{"d":{"e":"\\\\"}}}]"#,
            br#"[ {} , {"":""} ,{"\"":"\""} ]"#,
            br#"[{"s":"a\u0022b"},{"t":"\/"}]"#,
        ];
        for body in good {
            let shown = String::from_utf8_lossy(body);
            let whole: Vec<Value> = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{shown}: {e}"));
            let pieces = split_body(body, false, 100).unwrap();
            assert_eq!(pieces.len(), whole.len(), "{shown}");
            assert_eq!(parse_body(body, false).unwrap(), whole, "{shown}");
            // Every proper prefix is refused, by the split or by a piece's parse.
            for cut in 1..body.len() {
                let Ok(prefix) = std::str::from_utf8(&body[..cut]) else { continue };
                if prefix.trim_end() == shown.trim_end() {
                    continue;
                }
                assert!(parse_body(prefix.as_bytes(), false).is_err(), "prefix {prefix:?} of {shown} was accepted");
            }
        }
        let bad: &[&[u8]] = &[
            br#"[{"a":"x"} x {"b":1}]"#,
            br#"[{"a":"x"}; {"b":1}]"#,
            br#"[{"a":"unterminated}]"#,
            br#"[{"a":"ends in a backslash\"#,
            br#"[{"a":"x"}]]"#,
            br#"[{"a":"x"}],"#,
            br#"[{"a":"x"}}"#,
            br#"[{"a":"]"},,]"#,
            br#"[{"a":1} "s"]"#,
            br#"["#,
        ];
        for body in bad {
            let shown = String::from_utf8_lossy(body);
            assert!(parse_body(body, false).is_err(), "{shown} was accepted");
            assert!(serde_json::from_slice::<Value>(body).is_err(), "{shown} is valid JSON");
        }
        // Where the split itself refuses, it names the body and the problem's place.
        let e = split_body(br#"[{"a":"x"}] tail"#, false, 10).unwrap_err();
        assert_eq!(fields_of(&e), vec![(0, "body")]);
        assert!(e[0].problem.contains("after the array at byte 11"), "{e:?}");
        let e = split_body(br#"[{"a":"x\"}]"#, false, 10).unwrap_err();
        assert!(e[0].problem.contains("not closed"), "{e:?}");
        let e = split_body(br#"[{"a":1},]"#, false, 10).unwrap_err();
        assert!(e[0].problem.contains("trailing comma before byte 9"), "{e:?}");
        // A malformed element is named by its index after the split.
        let e = validate_body(br#"[{"category":"a","action":"b"}, {"category":"a" "action":"b"}]"#, false, &masker())
            .unwrap_err();
        assert_eq!(fields_of(&e), vec![(1, "body")]);
        assert!(e[0].problem.starts_with("malformed JSON"), "{e:?}");
        // NDJSON lines are not split on commas or brackets inside them.
        let nd = b"{\"a\":\"x],[{\"}\n\n {\"b\":\"\\\"\\n\"}\r\n";
        assert_eq!(split_body(nd, true, 10).unwrap(), vec![r#"{"a":"x],[{"}"#, r#"{"b":"\"\n"}"#]);
        // The event cap counts elements however they nest.
        let many = format!("[{}]", [r#"{"a":"[,]"}"#; 4].join(","));
        assert!(split_body(many.as_bytes(), false, 3).unwrap_err()[0].problem.contains("more than 3 events"));
        assert_eq!(split_body(many.as_bytes(), false, 4).unwrap().len(), 4);
    }

    /// The direct IPv4 writer gives `Display`'s text for every octet value in every place.
    #[test]
    fn ipv4_text_is_display_s() {
        for o in 0..=255u8 {
            for ip in [[o, 0, 0, 0], [1, o, 10, 100], [255, 99, o, 9], [10, 200, 3, o], [o, o, o, o]] {
                let ip = IpAddr::from(ip);
                assert_eq!(ip_text(ip), ip.to_string());
            }
        }
        for v6 in ["::ffff:10.0.0.1", "2001:db8::1", "::", "::1", "fe80::1:2:3:4"] {
            let ip: IpAddr = v6.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn an_oversized_event_is_refused_before_it_is_parsed() {
        let huge =
            format!(r#"[{{"category":"a","action":"b"}},{{"details":{{"x":"{}"}}}}]"#, "y".repeat(MAX_EVENT_BYTES));
        let problems = validate_body(huge.as_bytes(), false, &masker()).unwrap_err();
        assert_eq!(fields_of(&problems), vec![(1, "body")]);
        assert!(problems[0].problem.contains("bytes of JSON"), "{problems:?}");
        let line = format!("{{\"details\":\"{}\"}}\n", "z".repeat(MAX_EVENT_BYTES));
        assert!(split_body(line.as_bytes(), true, 10).is_err());
    }

    #[test]
    fn bodies_parse_as_object_array_or_ndjson() {
        assert_eq!(parse_body(br#"{"a":1}"#, false).unwrap().len(), 1);
        assert_eq!(parse_body(br#"[{"a":1},{"a":2}]"#, false).unwrap().len(), 2);
        assert_eq!(parse_body(b"{\"a\":1}\n\n{\"a\":2}\n", true).unwrap().len(), 2);
        let bad = parse_body(b"{\"a\":1}\n{oops\n", true).unwrap_err();
        assert_eq!(fields_of(&bad), vec![(1, "body")]);
        assert!(parse_body(b"[]", false).is_err());
        assert!(parse_body(b"{\"a\":", false).is_err());
        assert!(parse_body(b"42", false).is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse_body(deep.as_bytes(), false).is_err(), "serde_json's recursion limit refuses it");
    }
}
