//! [`TestEvent`]: builds the events (and, for routing rules, alert records) a test feeds to
//! [`super::Harness`], as the JSON object the host would have parsed.

use std::borrow::Cow;

use crate::json::Value;
use crate::record::field_text;
use crate::severity::Severity;
use crate::time::parse_rfc3339_ms;

/// One event for the harness: a JSON object plus its seq and time (the virtual clock).
#[derive(Debug, Clone, PartialEq)]
pub struct TestEvent {
    pub(crate) seq: Option<i64>,
    pub(crate) time_ms: Option<i64>,
    pub(crate) body: Value,
}

impl TestEvent {
    /// An event with a category and an action.
    pub fn new(category: &str, action: &str) -> TestEvent {
        TestEvent::empty().field("category", category).field("action", action)
    }

    /// An event with no fields at all.
    pub fn empty() -> TestEvent {
        TestEvent { seq: None, time_ms: None, body: Value::object() }
    }

    /// An alert record for a routing rule (`rule`, `severity`, `title`, `dedup_key`,
    /// `status` = `open`, `count` = 1).
    pub fn alert(rule: &str, severity: Severity) -> TestEvent {
        TestEvent::empty()
            .field("rule", rule)
            .field("severity", severity.as_str())
            .field("title", format!("{rule} alert"))
            .field("dedup_key", rule)
            .field("status", "open")
            .field("count", 1)
    }

    /// An event from its JSON object; `timestamp` (RFC 3339 text or epoch ms) sets the time.
    pub fn from_json(text: &str) -> Result<TestEvent, String> {
        let body = Value::parse(text).map_err(|e| e.to_string())?;
        if body.as_object().is_none() {
            return Err("a test event must be a JSON object".to_owned());
        }
        let time_ms = match body.get("timestamp") {
            None => None,
            Some(Value::String(s)) => Some(parse_rfc3339_ms(s).ok_or("`timestamp` is not RFC 3339")?),
            Some(v) => Some(v.as_i64().ok_or("`timestamp` must be RFC 3339 text or epoch ms")?),
        };
        Ok(TestEvent { seq: None, time_ms, body })
    }

    /// Sets a field; dotted names (`geo.lat`, `details.a.b`) create the parent objects.
    pub fn field(mut self, name: &str, value: impl Into<Value>) -> TestEvent {
        self.body.insert_path(name, value.into());
        self
    }

    /// Sets `outcome`.
    pub fn outcome(self, outcome: &str) -> TestEvent {
        self.field("outcome", outcome)
    }

    /// Sets `ip`.
    pub fn ip(self, ip: &str) -> TestEvent {
        self.field("ip", ip)
    }

    /// Sets `user_id`.
    pub fn user(self, user_id: &str) -> TestEvent {
        self.field("user_id", user_id)
    }

    /// Sets `api_key_id`.
    pub fn api_key(self, api_key_id: &str) -> TestEvent {
        self.field("api_key_id", api_key_id)
    }

    /// Sets `resource`.
    pub fn resource(self, resource: &str) -> TestEvent {
        self.field("resource", resource)
    }

    /// Sets `organization_id`.
    pub fn org(self, organization_id: &str) -> TestEvent {
        self.field("organization_id", organization_id)
    }

    /// Sets `details.<name>` (dotted names nest further).
    pub fn detail(self, name: &str, value: impl Into<Value>) -> TestEvent {
        self.field(&format!("details.{name}"), value)
    }

    /// Sets `details.<name>` to a JSON value given as text. Panics on invalid JSON.
    pub fn detail_json(self, name: &str, json: &str) -> TestEvent {
        let value = Value::parse(json).unwrap_or_else(|e| panic!("detail_json({name:?}): {e}"));
        self.detail(name, value)
    }

    /// Sets `geo.lat` and `geo.lon`.
    pub fn geo(self, lat: f64, lon: f64) -> TestEvent {
        self.field("geo.lat", lat).field("geo.lon", lon)
    }

    /// Sets `geo.country`.
    pub fn country(self, country: &str) -> TestEvent {
        self.field("geo.country", country)
    }

    /// Sets the event time (epoch ms). Without one, an event takes the previous event's time.
    pub fn at_ms(mut self, time_ms: i64) -> TestEvent {
        self.time_ms = Some(time_ms);
        self
    }

    /// Sets the event time from RFC 3339 text (`2024-03-04T09:15:00Z`). Panics if invalid.
    pub fn at(self, rfc3339: &str) -> TestEvent {
        let t = parse_rfc3339_ms(rfc3339).unwrap_or_else(|| panic!("not RFC 3339: {rfc3339:?}"));
        self.at_ms(t)
    }

    /// Sets the seq. Without one, the harness numbers events 1, 2, 3...
    pub fn seq(mut self, seq: i64) -> TestEvent {
        self.seq = Some(seq);
        self
    }

    /// The event time, if set.
    pub fn time_ms(&self) -> Option<i64> {
        self.time_ms
    }

    /// The JSON object.
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// Field `name` as the host would write it into a record.
    pub fn text(&self, name: &str) -> Option<Cow<'_, str>> {
        field_text(&self.body, name)
    }
}

impl From<Value> for TestEvent {
    fn from(body: Value) -> TestEvent {
        TestEvent { seq: None, time_ms: None, body }
    }
}
