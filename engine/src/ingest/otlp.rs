//! OTLP logs (OpenTelemetry protocol, logs signal) read into Vigil events: the messages of
//! `opentelemetry/proto/collector/logs/v1` declared by hand for `prost` (only the fields
//! Vigil reads; unknown fields are skipped as protobuf requires), the OTLP/JSON encoding
//! read into the same messages, and the mapping of one log record to an event in Vigil's
//! wire format (docs/integrations.md has the table). The mapped events then go through the
//! same validation and masking as `POST /v1/events` (`validate_each`).

use std::net::IpAddr;

use serde_json::{Map, Value};

/// The protobuf messages of OTLP logs (field numbers as in opentelemetry-proto v1.x).
pub mod proto {
    /// `ExportLogsServiceRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceRequest {
        /// One entry per resource (service instance).
        #[prost(message, repeated, tag = "1")]
        pub resource_logs: Vec<ResourceLogs>,
    }

    /// `ResourceLogs`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceLogs {
        /// The resource that emitted the logs.
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        /// Logs grouped by instrumentation scope.
        #[prost(message, repeated, tag = "2")]
        pub scope_logs: Vec<ScopeLogs>,
    }

    /// `Resource`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        /// Resource attributes (`service.name`, ...).
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    /// `ScopeLogs`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeLogs {
        /// The instrumentation scope (logger name).
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        /// The records.
        #[prost(message, repeated, tag = "2")]
        pub log_records: Vec<LogRecord>,
    }

    /// `InstrumentationScope`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        /// Scope name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Scope version.
        #[prost(string, tag = "2")]
        pub version: String,
    }

    /// `LogRecord`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogRecord {
        /// When the event happened (ns since the epoch; 0 = unknown).
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        /// When the collector saw it.
        #[prost(fixed64, tag = "11")]
        pub observed_time_unix_nano: u64,
        /// `SeverityNumber` (1..=24).
        #[prost(int32, tag = "2")]
        pub severity_number: i32,
        /// Severity as the source wrote it.
        #[prost(string, tag = "3")]
        pub severity_text: String,
        /// The body.
        #[prost(message, optional, tag = "5")]
        pub body: Option<AnyValue>,
        /// Attributes.
        #[prost(message, repeated, tag = "6")]
        pub attributes: Vec<KeyValue>,
        /// Trace id (16 bytes or empty).
        #[prost(bytes = "vec", tag = "9")]
        pub trace_id: Vec<u8>,
        /// Span id (8 bytes or empty).
        #[prost(bytes = "vec", tag = "10")]
        pub span_id: Vec<u8>,
        /// The event name (OTLP 1.5+).
        #[prost(string, tag = "12")]
        pub event_name: String,
    }

    /// `KeyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        /// The key.
        #[prost(string, tag = "1")]
        pub key: String,
        /// The value.
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    /// `AnyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        /// One of the kinds (absent = empty value).
        #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<Value>,
    }

    /// The kinds of an `AnyValue`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// `string_value`.
        #[prost(string, tag = "1")]
        StringValue(String),
        /// `bool_value`.
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        /// `int_value`.
        #[prost(int64, tag = "3")]
        IntValue(i64),
        /// `double_value`.
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        /// `array_value`.
        #[prost(message, tag = "5")]
        ArrayValue(ArrayValue),
        /// `kvlist_value`.
        #[prost(message, tag = "6")]
        KvlistValue(KeyValueList),
        /// `bytes_value`.
        #[prost(bytes = "vec", tag = "7")]
        BytesValue(Vec<u8>),
    }

    /// `ArrayValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        /// Elements.
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }

    /// `KeyValueList`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        /// Members.
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }

    /// `ExportLogsServiceResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceResponse {
        /// Set when some records were refused.
        #[prost(message, optional, tag = "1")]
        pub partial_success: Option<ExportLogsPartialSuccess>,
    }

    /// `ExportLogsPartialSuccess`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsPartialSuccess {
        /// How many records were refused.
        #[prost(int64, tag = "1")]
        pub rejected_log_records: i64,
        /// Why (one reason per refused record).
        #[prost(string, tag = "2")]
        pub error_message: String,
    }

    /// `google.rpc.Status`, the body of an OTLP/HTTP error for a protobuf request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        /// gRPC code (3 = INVALID_ARGUMENT, ...).
        #[prost(int32, tag = "1")]
        pub code: i32,
        /// What is wrong.
        #[prost(string, tag = "2")]
        pub message: String,
    }
}

use proto::{AnyValue, ExportLogsServiceRequest, KeyValue, LogRecord};

/// Decodes an OTLP/HTTP protobuf body.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    <ExportLogsServiceRequest as prost::Message>::decode(body).map_err(|e| format!("malformed OTLP protobuf: {e}"))
}

mod json;
pub use json::decode_json;

/// One log record of a request, mapped: where it was (`resourceLogs[i].scopeLogs[j]
/// .logRecords[k]`) and the event in Vigil's wire format, still to be validated.
#[derive(Debug, Clone)]
pub struct MappedRecord {
    /// The record's path in the request, for the partial-success message.
    pub path: String,
    /// The event (unvalidated, unmasked).
    pub event: Value,
}

/// Every record of a request, mapped (in request order).
pub fn map_request(request: &ExportLogsServiceRequest) -> Vec<MappedRecord> {
    let mut out = Vec::new();
    for (i, rl) in request.resource_logs.iter().enumerate() {
        let resource = rl.resource.as_ref().map(|r| attributes(&r.attributes)).unwrap_or_default();
        for (j, sl) in rl.scope_logs.iter().enumerate() {
            for (k, rec) in sl.log_records.iter().enumerate() {
                out.push(MappedRecord {
                    path: format!("resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]"),
                    event: map_record(&resource, sl.scope.as_ref(), rec),
                });
            }
        }
    }
    out
}

/// Number of log records in a request (checked against the per-request bound before any
/// is mapped).
pub fn record_count(request: &ExportLogsServiceRequest) -> usize {
    request.resource_logs.iter().flat_map(|rl| &rl.scope_logs).map(|sl| sl.log_records.len()).sum()
}

/// Attribute names read into each string field of the event, first present wins: Vigil's
/// own name, then OpenTelemetry semantic conventions, then OCSF-style names.
const STRING_ATTRS: &[(&str, &[&str])] = &[
    ("event_id", &["event_id", "event.id", "log.record.uid"]),
    ("category", &["category", "event.category", "vigil.category"]),
    ("action", &["action", "event.action", "vigil.action"]),
    ("outcome", &["outcome", "event.outcome"]),
    ("severity", &["severity", "event.severity"]),
    ("user_id", &["user_id", "user.id", "enduser.id", "user.uid", "actor.user.uid"]),
    ("organization_id", &["organization_id", "organization.id", "tenant.id", "user.org.uid"]),
    ("session_id", &["session_id", "session.id", "actor.session.uid"]),
    ("api_key_id", &["api_key_id", "api_key.id"]),
    ("request_id", &["request_id", "request.id", "http.request.id"]),
    ("source", &["source", "event.source"]),
    ("resource", &["resource", "resource.name", "url.path", "http.route"]),
    ("resource_type", &["resource_type", "resource.type"]),
    ("reason", &["reason", "event.reason", "status_detail"]),
    ("error_code", &["error_code", "error.type", "error.code"]),
    ("user_agent", &["user_agent", "user_agent.original", "http_request.user_agent"]),
];
/// Names whose value becomes `ip` when it is an IP address (`client.address` may also be a
/// host name, which stays in `details`). Vigil's own `ip` is taken as sent (and validated).
const IP_ATTRS: &[&str] = &["client.address", "client.ip", "source.address", "source.ip", "src_endpoint.ip"];
/// Semantic-convention names of the `geo` members.
const GEO_ATTRS: &[(&str, &[&str])] = &[
    ("country", &["geo.country.iso_code", "geo.country"]),
    ("city", &["geo.locality.name", "geo.city.name", "geo.city"]),
    ("lat", &["geo.location.lat", "geo.lat"]),
    ("lon", &["geo.location.lon", "geo.lon"]),
];

/// Maps one record (see docs/integrations.md, "OTLP logs").
fn map_record(resource: &Map<String, Value>, scope: Option<&proto::InstrumentationScope>, rec: &LogRecord) -> Value {
    let mut attrs = attributes(&rec.attributes);
    let mut event = Map::new();
    for (field, names) in STRING_ATTRS {
        if let Some(v) = take_first(&mut attrs, names) {
            event.insert((*field).into(), scalar_text(v));
        }
    }
    if !event.contains_key("action") {
        let name = take_first(&mut attrs, &["event.name"]).and_then(|v| v.as_str().map(str::to_owned));
        if let Some(name) = name.or_else(|| (!rec.event_name.is_empty()).then(|| rec.event_name.clone())) {
            event.insert("action".into(), Value::String(name));
        }
    }
    if !event.contains_key("source")
        && let Some(service) = resource.get("service.name")
    {
        event.insert("source".into(), scalar_text(service.clone()));
    }
    if let Some(ip) = attrs.remove("ip") {
        event.insert("ip".into(), ip);
    } else if let Some(name) = IP_ATTRS.iter().find(|n| attrs.get(**n).and_then(Value::as_str).is_some_and(is_ip)) {
        event.insert("ip".into(), attrs.remove(*name).unwrap_or(Value::Null));
    }
    if let Some(geo) = attrs.remove("geo") {
        event.insert("geo".into(), geo);
    } else {
        let mut geo = Map::new();
        for (member, names) in GEO_ATTRS {
            if let Some(v) = take_first(&mut attrs, names) {
                geo.insert((*member).into(), v);
            }
        }
        if !geo.is_empty() {
            event.insert("geo".into(), Value::Object(geo));
        }
    }
    if !event.contains_key("severity")
        && let Some(severity) = severity_of(rec.severity_number)
    {
        event.insert("severity".into(), Value::String(severity.into()));
    }
    let nanos = if rec.time_unix_nano != 0 { rec.time_unix_nano } else { rec.observed_time_unix_nano };
    if nanos != 0 {
        event.insert("timestamp".into(), Value::from(nanos / 1_000_000));
    }

    // details: the body (a map's members, anything else as `message`), the remaining
    // attributes, and the OTel context under `otel`.
    let mut details = match rec.body.as_ref().map(any_to_json) {
        Some(Value::Object(map)) => map,
        Some(Value::Null) | None => Map::new(),
        Some(other) => Map::from_iter([("message".to_owned(), other)]),
    };
    if let Some(Value::Object(map)) = attrs.remove("details") {
        for (k, v) in map {
            details.entry(k).or_insert(v);
        }
    }
    let mut otel = Map::new();
    let mut clashing = Map::new();
    for (k, v) in attrs {
        if details.contains_key(&k) || k == "otel" {
            clashing.insert(k, v);
        } else {
            details.insert(k, v);
        }
    }
    if !clashing.is_empty() {
        otel.insert("attributes".into(), Value::Object(clashing));
    }
    if !rec.severity_text.is_empty() {
        otel.insert("severity_text".into(), Value::String(rec.severity_text.clone()));
    }
    if rec.severity_number != 0 {
        otel.insert("severity_number".into(), Value::from(rec.severity_number));
    }
    if !rec.trace_id.is_empty() {
        otel.insert("trace_id".into(), Value::String(hex::encode(&rec.trace_id)));
    }
    if !rec.span_id.is_empty() {
        otel.insert("span_id".into(), Value::String(hex::encode(&rec.span_id)));
    }
    if let Some(scope) = scope.filter(|s| !s.name.is_empty()) {
        otel.insert("scope".into(), Value::String(scope.name.clone()));
    }
    let rest: Map<String, Value> =
        resource.iter().filter(|(k, _)| *k != "service.name").map(|(k, v)| (k.clone(), v.clone())).collect();
    if !rest.is_empty() {
        otel.insert("resource".into(), Value::Object(rest));
    }
    if !otel.is_empty() {
        details.insert("otel".into(), Value::Object(otel));
    }
    if !details.is_empty() {
        event.insert("details".into(), Value::Object(details));
    }
    Value::Object(event)
}

/// Vigil severity of an OTLP `SeverityNumber`: TRACE..INFO (1-12) low, WARN (13-16)
/// medium, ERROR (17-20) high, FATAL (21-24) critical; unspecified leaves the default.
pub fn severity_of(number: i32) -> Option<&'static str> {
    match number {
        1..=12 => Some("low"),
        13..=16 => Some("medium"),
        17..=20 => Some("high"),
        21..=24 => Some("critical"),
        _ => None,
    }
}

fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

fn take_first(attrs: &mut Map<String, Value>, names: &[&str]) -> Option<Value> {
    let name = names.iter().find(|n| attrs.get(**n).is_some_and(|v| !v.is_null()))?;
    attrs.remove(*name)
}

/// Numbers and booleans given for a string field become their text (an id sent as an
/// integer attribute); anything else is left for validation to name.
fn scalar_text(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        other => other,
    }
}

/// Attributes as a JSON object (a repeated key keeps its last value).
pub fn attributes(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map(any_to_json).unwrap_or(Value::Null))).collect()
}

/// An `AnyValue` as JSON: maps become objects, bytes base64 text, a non-finite double null.
pub fn any_to_json(v: &AnyValue) -> Value {
    use proto::Value as V;
    match &v.value {
        None => Value::Null,
        Some(V::StringValue(s)) => Value::String(s.clone()),
        Some(V::BoolValue(b)) => Value::Bool(*b),
        Some(V::IntValue(i)) => Value::from(*i),
        Some(V::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
        Some(V::BytesValue(b)) => {
            use base64::Engine as _;
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(V::ArrayValue(a)) => Value::Array(a.values.iter().map(any_to_json).collect()),
        Some(V::KvlistValue(kv)) => Value::Object(attributes(&kv.values)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kv(key: &str, s: &str) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(proto::Value::StringValue(s.into())) }) }
    }

    #[test]
    fn a_record_maps_semantic_and_ocsf_names_and_keeps_the_rest_in_details() {
        let rec = LogRecord {
            time_unix_nano: 1_700_000_000_123_456_789,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(AnyValue { value: Some(proto::Value::StringValue("bad password".into())) }),
            attributes: vec![
                kv("event.category", "authentication"),
                kv("event.action", "login_failed"),
                kv("event.outcome", "failure"),
                kv("actor.user.uid", "alice"),
                kv("client.address", "203.0.113.9"),
                kv("http.method", "POST"),
            ],
            ..Default::default()
        };
        let resource = attributes(&[kv("service.name", "checkout")]);
        let event = map_record(&resource, None, &rec);
        assert_eq!(
            event,
            json!({"category": "authentication", "action": "login_failed", "outcome": "failure",
                   "user_id": "alice", "ip": "203.0.113.9", "source": "checkout", "severity": "high",
                   "timestamp": 1_700_000_000_123i64,
                   "details": {"message": "bad password", "http.method": "POST",
                               "otel": {"severity_text": "ERROR", "severity_number": 17}}})
        );
    }

    #[test]
    fn a_host_name_in_client_address_stays_in_details() {
        let rec = LogRecord { attributes: vec![kv("client.address", "gw.example")], ..Default::default() };
        let event = map_record(&Map::new(), None, &rec);
        assert!(event.get("ip").is_none());
        assert_eq!(event["details"]["client.address"], "gw.example");
    }

    #[test]
    fn json_and_protobuf_decode_to_the_same_request() {
        let body = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
            "scopeLogs": [{"scope": {"name": "app"}, "logRecords": [{"timeUnixNano": "1700000000000000000",
              "severityNumber": "SEVERITY_NUMBER_WARN2", "traceId": "0102", "body": {"kvlistValue": {"values": [
                {"key": "n", "value": {"intValue": "7"}}]}},
              "attributes": [{"key": "event.category", "value": {"stringValue": "system"}}]}]}]}]});
        let from_json = decode_json(body.to_string().as_bytes()).unwrap();
        let bytes = prost::Message::encode_to_vec(&from_json);
        assert_eq!(decode_protobuf(&bytes).unwrap(), from_json);
        let rec = &from_json.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.severity_number, 14);
        assert_eq!(rec.trace_id, vec![1, 2]);
        let mapped = map_request(&from_json);
        assert_eq!(mapped[0].path, "resourceLogs[0].scopeLogs[0].logRecords[0]");
        assert_eq!(mapped[0].event["details"]["n"], 7);
        assert_eq!(mapped[0].event["severity"], "medium");
    }

    #[test]
    fn malformed_bodies_name_the_path() {
        let err = decode_json(br#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": true}]}]}]}"#)
            .unwrap_err();
        assert!(err.contains("resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano"), "{err}");
        assert!(decode_protobuf(&[0xff, 0xff, 0xff]).is_err());
    }
}
