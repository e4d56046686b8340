//! What a forwarder sends for one stored event (its JSON as `GET /v1/events` returns it):
//! a syslog RFC 5424 line with the event's JSON as the message, a CEF record in an RFC 5424
//! line, or a Splunk HEC event. Event text is attacker-controlled: JSON is escaped by
//! `serde_json`, CEF header and extension values by CEF's own escapes, and no field can
//! break a line (newlines are escaped in every format).

use serde_json::{Value, json};

/// Syslog facility of every line: 13, log audit.
const FACILITY: u8 = 13;

fn syslog_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 2,
        "high" => 3,
        "medium" => 4,
        _ => 6,
    }
}

fn cef_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 10,
        "high" => 8,
        "medium" => 5,
        _ => 3,
    }
}

fn str_of<'a>(ev: &'a Value, key: &str) -> &'a str {
    ev.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An RFC 5424 header field: printable ASCII without spaces, at most `max`, `-` when empty.
fn header_field(text: &str, max: usize) -> String {
    let clean: String = text.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if clean.is_empty() { "-".into() } else { clean }
}

fn header(ev: &Value) -> String {
    let pri = FACILITY * 8 + syslog_severity(str_of(ev, "severity"));
    let ts = str_of(ev, "timestamp");
    format!(
        "<{pri}>1 {} vigil vigil - {} -",
        if ts.is_empty() { "-" } else { ts },
        header_field(str_of(ev, "action"), 32)
    )
}

/// `<PRI>1 TIMESTAMP vigil vigil - ACTION - {event JSON}` (one line).
pub fn rfc5424_line(ev: &Value) -> String {
    format!("{} {}\n", header(ev), ev)
}

fn cef_header(text: &str) -> String {
    text.replace('\\', "\\\\").replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn cef_value(text: &str) -> String {
    text.replace('\\', "\\\\").replace('=', "\\=").replace('\n', "\\n").replace('\r', "\\r")
}

/// A CEF:0 record in an RFC 5424 line. Extension: `rt` (event time, ms), `externalId`
/// (seq), `cat`, `act`, `outcome`, `suser`, `src`, `request`, `requestClientApplication`,
/// `reason`, and custom strings for the event id, organization, source and `details`.
pub fn cef_line(ev: &Value) -> String {
    let category = str_of(ev, "category");
    let action = str_of(ev, "action");
    let mut ext = Vec::new();
    let ms = crate::event::parse_time(str_of(ev, "timestamp"));
    if let Some(ms) = ms {
        ext.push(format!("rt={ms}"));
    }
    if let Some(seq) = ev.get("seq").and_then(Value::as_i64) {
        ext.push(format!("externalId={seq}"));
    }
    for (key, field) in [
        ("cat", "category"),
        ("act", "action"),
        ("outcome", "outcome"),
        ("suser", "user_id"),
        ("src", "ip"),
        ("request", "resource"),
        ("requestClientApplication", "user_agent"),
        ("reason", "reason"),
    ] {
        let v = str_of(ev, field);
        if !v.is_empty() {
            ext.push(format!("{key}={}", cef_value(v)));
        }
    }
    for (n, (label, v)) in [
        ("event_id", str_of(ev, "event_id").to_owned()),
        ("organization_id", str_of(ev, "organization_id").to_owned()),
        ("source", str_of(ev, "source").to_owned()),
        ("details", ev.get("details").map(Value::to_string).unwrap_or_default()),
    ]
    .into_iter()
    .enumerate()
    {
        if !v.is_empty() {
            ext.push(format!("cs{i}Label={label} cs{i}={}", cef_value(&v), i = n + 1));
        }
    }
    format!(
        "{} CEF:0|Vigil|Vigil|{}|{}|{}|{}|{}\n",
        header(ev),
        env!("CARGO_PKG_VERSION"),
        cef_header(&format!("{category}:{action}")),
        cef_header(&format!("{category} {action}")),
        cef_severity(str_of(ev, "severity")),
        ext.join(" ")
    )
}

/// One Splunk HEC event (`time` in seconds with milliseconds).
pub fn hec_event(ev: &Value, index: Option<&str>) -> Value {
    let ms = crate::event::parse_time(str_of(ev, "timestamp")).unwrap_or(0);
    let mut out = json!({
        "time": ms as f64 / 1000.0,
        "host": "vigil",
        "source": "vigil",
        "sourcetype": "vigil:event",
        "event": ev,
    });
    if let Some(index) = index {
        out["index"] = json!(index);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lines_escape_what_could_break_them() {
        let ev = json!({"seq": 7, "timestamp": "2026-01-05T08:00:00.123Z", "category": "authentication",
            "action": "login_failed", "severity": "high", "user_id": "a=b\\c\nx", "reason": "p|q",
            "details": {"k": "v\nw"}});
        let line = rfc5424_line(&ev);
        assert!(line.starts_with("<107>1 2026-01-05T08:00:00.123Z vigil vigil - login_failed - {"), "{line}");
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let cef = cef_line(&ev);
        assert!(cef.contains("CEF:0|Vigil|Vigil|"), "{cef}");
        assert!(cef.contains("|authentication:login_failed|authentication login_failed|8|"), "{cef}");
        assert!(cef.contains("suser=a\\=b\\\\c\\nx"), "{cef}");
        assert!(cef.contains("rt=1767600000123 externalId=7"), "{cef}");
        assert_eq!(cef.matches('\n').count(), 1, "{cef}");
        let hec = hec_event(&ev, Some("security"));
        assert_eq!(hec["time"], 1_767_600_000.123);
        assert_eq!(hec["index"], "security");
        assert_eq!(hec["event"]["seq"], 7);
    }
}
