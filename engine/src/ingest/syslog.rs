//! Syslog messages read into Vigil events: TCP framing (RFC 6587: octet counting, or one
//! message per line, told apart by the frame's first byte), the RFC 5424 and RFC 3164
//! headers, and the message body as a JSON object, as `key=value` pairs, or as text
//! (`details.message`). docs/integrations.md has the mapping. The listener
//! (`inputs::syslog`) validates and masks the result like any other event.

use serde_json::{Map, Value};

/// Why a connection's byte stream cannot be framed any further (the connection is closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// An octet count over the listener's `max_message_bytes`.
    TooLong(usize),
    /// A line over `max_message_bytes` without its newline.
    LineTooLong(usize),
    /// An octet count that is not a number followed by a space.
    BadCount,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLong(max) => write!(f, "a message longer than max_message_bytes ({max})"),
            FrameError::LineTooLong(max) => write!(f, "a line longer than max_message_bytes ({max}) without newline"),
            FrameError::BadCount => write!(f, "an octet count that is not digits and a space"),
        }
    }
}

/// Splits a TCP byte stream into syslog frames.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
}

impl Framer {
    /// A framer refusing messages over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { buf: Vec::new(), max }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, if one is buffered. A frame starting with a digit is octet
    /// counted (`<len> <message>`); anything else runs to the next LF (a CR before it is
    /// dropped). Empty lines are skipped.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            let skip = self.buf.iter().take_while(|b| matches!(b, b'\n' | b'\r' | b'\0')).count();
            self.buf.drain(..skip);
            let Some(first) = self.buf.first() else { return Ok(None) };
            if first.is_ascii_digit() {
                let Some(space) = self.buf.iter().take(8).position(|b| *b == b' ') else {
                    if self.buf.len() >= 8 || self.buf.iter().any(|b| !b.is_ascii_digit()) {
                        return Err(FrameError::BadCount);
                    }
                    return Ok(None);
                };
                let digits = &self.buf[..space];
                if !digits.iter().all(u8::is_ascii_digit) {
                    return Err(FrameError::BadCount);
                }
                let len: usize =
                    std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or(FrameError::BadCount)?;
                if len > self.max {
                    return Err(FrameError::TooLong(self.max));
                }
                if self.buf.len() < space + 1 + len {
                    return Ok(None);
                }
                let frame = self.buf[space + 1..space + 1 + len].to_vec();
                self.buf.drain(..space + 1 + len);
                if frame.is_empty() {
                    continue;
                }
                return Ok(Some(frame));
            }
            return match self.buf.iter().position(|b| *b == b'\n' || *b == b'\0') {
                Some(end) if end > self.max => Err(FrameError::LineTooLong(self.max)),
                Some(end) => {
                    let mut frame: Vec<u8> = self.buf.drain(..=end).collect();
                    frame.pop();
                    if frame.last() == Some(&b'\r') {
                        frame.pop();
                    }
                    Ok(Some(frame))
                }
                None if self.buf.len() > self.max => Err(FrameError::LineTooLong(self.max)),
                None => Ok(None),
            };
        }
    }
}

/// What a listener fills in when a message does not say.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Default `category`.
    pub category: String,
    /// Default `action`.
    pub action: String,
}

/// Whether `name` is a top-level field of Vigil's wire format a message body may set (the
/// optional string fields are the typed event's list).
fn is_event_field(name: &str) -> bool {
    matches!(name, "event_id" | "timestamp" | "category" | "action" | "severity" | "outcome" | "ip" | "geo")
        || crate::event::STRING_FIELDS.contains(&name)
}

/// Reads one frame into an event (unvalidated, unmasked). Refused: a frame that is not
/// UTF-8 or has no `<PRI>` header (the reason says which).
pub fn parse_frame(frame: &[u8], defaults: &Defaults, now_ms: i64) -> Result<Value, String> {
    let text = std::str::from_utf8(frame).map_err(|e| format!("not UTF-8 (byte {})", e.valid_up_to()))?;
    let (pri, rest) = priority(text).ok_or("no <PRI> header (0 to 191) at the start")?;
    let header = if let Some(rest) = rest.strip_prefix("1 ") { rfc5424(rest) } else { rfc3164(rest, now_ms) };
    let mut event = Map::new();
    let mut details = Map::new();
    match body_fields(header.msg) {
        Body::Fields(fields) => {
            for (k, v) in fields {
                if k == "details" {
                    if let Value::Object(d) = v {
                        for (dk, dv) in d {
                            details.entry(dk).or_insert(dv);
                        }
                        continue;
                    }
                    details.insert(k, v);
                } else if is_event_field(&k) {
                    event.insert(k, v);
                } else {
                    details.insert(k, v);
                }
            }
        }
        Body::Text(t) => {
            if !t.is_empty() {
                details.insert("message".into(), Value::String(t.to_owned()));
            }
        }
    }
    event.entry("category").or_insert_with(|| Value::String(defaults.category.clone()));
    event.entry("action").or_insert_with(|| Value::String(defaults.action.clone()));
    if !event.contains_key("severity") {
        let severity = match pri % 8 {
            0..=2 => "critical",
            3 => "high",
            4 => "medium",
            _ => "low",
        };
        event.insert("severity".into(), Value::String(severity.into()));
    }
    if !event.contains_key("timestamp")
        && let Some(ts) = header.time_ms
    {
        event.insert("timestamp".into(), Value::from(ts));
    }
    if !event.contains_key("source")
        && let Some(app) = header.app
    {
        event.insert("source".into(), Value::String(app.to_owned()));
    }
    let mut meta = Map::new();
    meta.insert("facility".into(), Value::from(pri / 8));
    meta.insert("severity".into(), Value::from(pri % 8));
    for (k, v) in
        [("hostname", header.host), ("app_name", header.app), ("procid", header.procid), ("msgid", header.msgid)]
    {
        if let Some(v) = v {
            meta.insert(k.into(), Value::String(v.to_owned()));
        }
    }
    if let Some(sd) = header.sd.filter(|sd| *sd != "-") {
        meta.insert("structured_data".into(), Value::String(sd.to_owned()));
    }
    details.entry("syslog").or_insert(Value::Object(meta));
    event.insert("details".into(), Value::Object(details));
    Ok(Value::Object(event))
}

fn priority(text: &str) -> Option<(u8, &str)> {
    let rest = text.strip_prefix('<')?;
    let end = rest.find('>').filter(|e| (1..=3).contains(e))?;
    let pri: u8 = rest[..end].parse().ok().filter(|p| *p <= 191)?;
    Some((pri, &rest[end + 1..]))
}

#[derive(Debug, Default)]
struct Header<'a> {
    time_ms: Option<i64>,
    host: Option<&'a str>,
    app: Option<&'a str>,
    procid: Option<&'a str>,
    msgid: Option<&'a str>,
    sd: Option<&'a str>,
    msg: &'a str,
}

fn nil(v: &str) -> Option<&str> {
    (v != "-" && !v.is_empty()).then_some(v)
}

/// `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]` (after `<PRI>1 `).
fn rfc5424(rest: &str) -> Header<'_> {
    let mut parts = rest.splitn(6, ' ');
    let (ts, host, app, procid, msgid) = (
        parts.next().unwrap_or("-"),
        parts.next().unwrap_or("-"),
        parts.next().unwrap_or("-"),
        parts.next().unwrap_or("-"),
        parts.next().unwrap_or("-"),
    );
    let tail = parts.next().unwrap_or("");
    let (sd, msg) = structured_data(tail);
    Header {
        time_ms: crate::event::parse_time(ts),
        host: nil(host),
        app: nil(app),
        procid: nil(procid),
        msgid: nil(msgid),
        sd: Some(sd),
        msg: msg.trim_start_matches('\u{feff}'),
    }
}

/// Splits `STRUCTURED-DATA [SP MSG]`: `-`, or `[...]` elements (with `\]` escapes).
fn structured_data(tail: &str) -> (&str, &str) {
    if let Some(msg) = tail.strip_prefix('-') {
        return ("-", msg.strip_prefix(' ').unwrap_or(msg));
    }
    let bytes = tail.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] == b'[' {
        let mut escaped = false;
        let mut in_quotes = false;
        i += 1;
        while i < bytes.len() {
            match bytes[i] {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    let i = i.min(tail.len());
    let (sd, msg) = tail.split_at(i);
    (sd, msg.strip_prefix(' ').unwrap_or(msg))
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `TIMESTAMP HOSTNAME TAG[PID]: MSG` (BSD syslog). The timestamp is `Mmm dd hh:mm:ss`
/// (UTC, the year that puts it nearest to now) or RFC 3339 (as rsyslog forwards it);
/// without a recognisable timestamp the whole text is the message.
fn rfc3164(rest: &str, now_ms: i64) -> Header<'_> {
    let (time_ms, after) = if let Some(ts) = bsd_time(rest, now_ms) {
        (Some(ts), &rest[15.min(rest.len())..])
    } else {
        let first = rest.split(' ').next().unwrap_or("");
        match crate::event::parse_time(first) {
            Some(ts) if first.contains('T') => (Some(ts), &rest[first.len()..]),
            _ => return Header { msg: rest, ..Header::default() },
        }
    };
    let after = after.trim_start_matches(' ');
    let (host, after) = after.split_once(' ').unwrap_or((after, ""));
    // TAG: up to 32 alphanumerics (and a few punctuation marks), then `[pid]` and/or `:`.
    let tag_end = after.find([':', '[', ' ']).unwrap_or(after.len());
    let (tag, mut msg) = after.split_at(tag_end);
    let mut procid = None;
    if let Some(r) = msg.strip_prefix('[')
        && let Some(close) = r.find(']')
    {
        procid = Some(&r[..close]);
        msg = &r[close + 1..];
    }
    let msg = msg.strip_prefix(':').unwrap_or(msg).trim_start_matches(' ');
    Header { time_ms, host: nil(host), app: nil(tag).filter(|t| t.len() <= 48), procid, msg, ..Header::default() }
}

fn bsd_time(text: &str, now_ms: i64) -> Option<i64> {
    let t = text.get(..15)?;
    let month = MONTHS.iter().position(|m| t.starts_with(m))? as u8 + 1;
    let day: u8 = t.get(4..6)?.trim_start().parse().ok()?;
    let (h, m, s): (u8, u8, u8) =
        (t.get(7..9)?.parse().ok()?, t.get(10..12)?.parse().ok()?, t.get(13..15)?.parse().ok()?);
    if t.as_bytes()[9] != b':' || t.as_bytes()[12] != b':' {
        return None;
    }
    let now = time::OffsetDateTime::from_unix_timestamp(now_ms / 1000).ok()?;
    let at = |year: i32| -> Option<i64> {
        let date = time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
        let dt = date.with_hms(h, m, s).ok()?.assume_utc();
        Some(dt.unix_timestamp() * 1000)
    };
    // The year is not written: the candidate nearest to now (a December message read in
    // January belongs to the year before).
    [now.year() - 1, now.year(), now.year() + 1].into_iter().filter_map(at).min_by_key(|ts| (ts - now_ms).abs())
}

enum Body<'a> {
    Fields(Map<String, Value>),
    Text(&'a str),
}

/// A JSON object, or `key=value` pairs (values may be double-quoted with `\"` escapes)
/// when the whole text is pairs; otherwise text.
fn body_fields(msg: &str) -> Body<'_> {
    let trimmed = msg.trim();
    if trimmed.starts_with('{')
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(trimmed)
    {
        return Body::Fields(map);
    }
    match key_values(trimmed) {
        Some(map) if !map.is_empty() => Body::Fields(map),
        _ => Body::Text(trimmed),
    }
}

fn key_values(text: &str) -> Option<Map<String, Value>> {
    let mut map = Map::new();
    let mut rest = text;
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = &rest[..eq];
        if key.is_empty()
            || key.len() > 128
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return None;
        }
        rest = &rest[eq + 1..];
        let value = if let Some(r) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = r.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => out.push(c),
                }
            }
            rest = &r[end? + 1..];
            if !rest.is_empty() && !rest.starts_with(' ') {
                return None;
            }
            out
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            let v = rest[..end].to_owned();
            rest = &rest[end..];
            v
        };
        rest = rest.trim_start_matches(' ');
        map.insert(key.to_owned(), Value::String(value));
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn defaults() -> Defaults {
        Defaults { category: "system".into(), action: "syslog".into() }
    }

    #[test]
    fn framing_tells_octet_counting_from_lines() {
        let mut f = Framer::new(1024);
        f.push(b"11 <13>1 - - -\n<13>hello\r\n6 <13>x");
        assert_eq!(f.next_frame().unwrap().unwrap(), b"<13>1 - - -", "11 bytes; the LF after is skipped");
        assert_eq!(f.next_frame().unwrap().unwrap(), b"<13>hello");
        assert_eq!(f.next_frame().unwrap(), None, "an incomplete counted frame waits");
        f.push(b"y");
        assert_eq!(f.next_frame().unwrap().unwrap(), b"<13>xy");
        let mut f = Framer::new(16);
        f.push(b"99 <13>");
        assert_eq!(f.next_frame(), Err(FrameError::TooLong(16)));
        let mut f = Framer::new(16);
        f.push(b"<13>aaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(f.next_frame(), Err(FrameError::LineTooLong(16)));
        let mut f = Framer::new(16);
        f.push(b"12a <13>");
        assert_eq!(f.next_frame(), Err(FrameError::BadCount));
    }

    #[test]
    fn rfc5424_with_key_values_becomes_fields() {
        let frame = br#"<38>1 2026-01-05T08:00:00.123Z web1 checkout 77 LOGIN [meta x="a]b"] category=authentication action=login_failed user_id=alice ip=203.0.113.9 note="two words""#;
        let ev = parse_frame(frame, &defaults(), 0).unwrap();
        assert_eq!(ev["category"], "authentication");
        assert_eq!(ev["action"], "login_failed");
        assert_eq!(ev["user_id"], "alice");
        assert_eq!(ev["ip"], "203.0.113.9");
        assert_eq!(ev["timestamp"], 1_767_600_000_123i64);
        assert_eq!(ev["source"], "checkout");
        assert_eq!(ev["severity"], "low", "auth.info");
        assert_eq!(ev["details"]["note"], "two words");
        assert_eq!(
            ev["details"]["syslog"],
            json!({"facility": 4, "severity": 6, "hostname": "web1", "app_name": "checkout", "procid": "77",
                   "msgid": "LOGIN", "structured_data": "[meta x=\"a]b\"]"})
        );
    }

    #[test]
    fn rfc3164_with_json_and_with_text() {
        let now = 1_767_600_000_000; // 2026-01-05
        let ev = parse_frame(
            br#"<11>Jan  5 07:59:00 web1 app[12]: {"action": "x", "details": {"a": 1}, "k": 2}"#,
            &defaults(),
            now,
        )
        .unwrap();
        assert_eq!(ev["action"], "x");
        assert_eq!(ev["category"], "system", "the listener's default");
        assert_eq!(ev["severity"], "high", "user.err");
        assert_eq!(ev["timestamp"], now - 60_000);
        assert_eq!(ev["details"]["a"], 1);
        assert_eq!(ev["details"]["k"], 2);
        assert_eq!(ev["details"]["syslog"]["procid"], "12");
        let ev = parse_frame(b"<13>2026-01-05T08:00:00+00:00 host tag: disk 93% full", &defaults(), now).unwrap();
        assert_eq!(ev["details"]["message"], "disk 93% full");
        assert_eq!(ev["source"], "tag");
        let ev = parse_frame(b"<13>just text = not pairs", &defaults(), now).unwrap();
        assert_eq!(ev["details"]["message"], "just text = not pairs");
        assert!(parse_frame(b"no pri", &defaults(), now).is_err());
        assert!(parse_frame(b"<999>x", &defaults(), now).is_err());
        assert!(parse_frame(b"<13>\xff", &defaults(), now).is_err());
    }
}
