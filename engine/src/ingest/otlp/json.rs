//! OTLP/JSON read into the same protobuf messages as OTLP/HTTP protobuf bodies.

use serde_json::{Map, Value};

use super::proto::{self, AnyValue, ExportLogsServiceRequest, KeyValue, LogRecord};

/// Decodes an OTLP/HTTP JSON body (lowerCamelCase member names, 64-bit integers as numbers
/// or decimal strings, trace and span ids as hex, as the OTLP specification writes them).
/// Unknown members are ignored; a member of the wrong type is an error naming its path.
pub fn decode_json(body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(root) = value else { return Err("the body must be a JSON object".into()) };
    let mut out = ExportLogsServiceRequest::default();
    for (i, rl) in array(&root, "resourceLogs", "")?.iter().enumerate() {
        let path = format!("resourceLogs[{i}]");
        let rl = object(rl, &path)?;
        let mut resource_logs = proto::ResourceLogs::default();
        if let Some(resource) = rl.get("resource").filter(|v| !v.is_null()) {
            let p = format!("{path}.resource");
            let resource = object(resource, &p)?;
            resource_logs.resource = Some(proto::Resource { attributes: key_values(resource, "attributes", &p)? });
        }
        for (j, sl) in array(rl, "scopeLogs", &path)?.iter().enumerate() {
            let path = format!("{path}.scopeLogs[{j}]");
            let sl = object(sl, &path)?;
            let mut scope_logs = proto::ScopeLogs::default();
            if let Some(scope) = sl.get("scope").filter(|v| !v.is_null()) {
                let p = format!("{path}.scope");
                let scope = object(scope, &p)?;
                scope_logs.scope = Some(proto::InstrumentationScope {
                    name: string(scope, "name", &p)?,
                    version: string(scope, "version", &p)?,
                });
            }
            for (k, rec) in array(sl, "logRecords", &path)?.iter().enumerate() {
                let path = format!("{path}.logRecords[{k}]");
                scope_logs.log_records.push(record_from_json(object(rec, &path)?, &path)?);
            }
            resource_logs.scope_logs.push(scope_logs);
        }
        out.resource_logs.push(resource_logs);
    }
    Ok(out)
}

fn record_from_json(rec: &Map<String, Value>, path: &str) -> Result<LogRecord, String> {
    Ok(LogRecord {
        time_unix_nano: nanos(rec, "timeUnixNano", path)?,
        observed_time_unix_nano: nanos(rec, "observedTimeUnixNano", path)?,
        severity_number: severity_number(rec, path)?,
        severity_text: string(rec, "severityText", path)?,
        body: rec
            .get("body")
            .filter(|v| !v.is_null())
            .map(|b| any_from_json(b, &format!("{path}.body"), 0))
            .transpose()?,
        attributes: key_values(rec, "attributes", path)?,
        trace_id: hex_id(rec, "traceId", path)?,
        span_id: hex_id(rec, "spanId", path)?,
        event_name: string(rec, "eventName", path)?,
    })
}

/// Deepest `AnyValue` nesting read from JSON (protobuf decoding has prost's own limit).
const MAX_JSON_DEPTH: usize = 32;

fn any_from_json(v: &Value, path: &str, depth: usize) -> Result<AnyValue, String> {
    use proto::Value as V;
    if depth > MAX_JSON_DEPTH {
        return Err(format!("{path} is nested more than {MAX_JSON_DEPTH} deep"));
    }
    if v.is_null() {
        return Ok(AnyValue { value: None });
    }
    let obj = object(v, path)?;
    // Protobuf's JSON mapping: null is the default (unset), unknown members are ignored.
    // Every kind present is checked; the first one is the value.
    let mut value = None;
    for (kind, inner) in obj.iter().filter(|(_, v)| !v.is_null()) {
        let bad = || format!("{path}.{kind} has the wrong type");
        let parsed = match kind.as_str() {
            "stringValue" => V::StringValue(inner.as_str().ok_or_else(bad)?.to_owned()),
            "boolValue" => V::BoolValue(inner.as_bool().ok_or_else(bad)?),
            "intValue" => V::IntValue(int_of(inner).ok_or_else(bad)?),
            "doubleValue" => V::DoubleValue(inner.as_f64().ok_or_else(bad)?),
            "bytesValue" => V::BytesValue(inner.as_str().and_then(base64_of).ok_or_else(bad)?),
            "arrayValue" => {
                let p = format!("{path}.arrayValue");
                let values = array(object(inner, &p)?, "values", &p)?
                    .iter()
                    .enumerate()
                    .map(|(i, v)| any_from_json(v, &format!("{p}.values[{i}]"), depth + 1))
                    .collect::<Result<_, _>>()?;
                V::ArrayValue(proto::ArrayValue { values })
            }
            "kvlistValue" => {
                let p = format!("{path}.kvlistValue");
                V::KvlistValue(proto::KeyValueList {
                    values: key_values_at(object(inner, &p)?, "values", &p, depth + 1)?,
                })
            }
            _ => continue,
        };
        value.get_or_insert(parsed);
    }
    Ok(AnyValue { value })
}

/// Base64 (standard alphabet, padding optional, as protobuf's JSON mapping allows).
fn base64_of(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(text).ok()
}

fn key_values(obj: &Map<String, Value>, name: &str, path: &str) -> Result<Vec<KeyValue>, String> {
    key_values_at(obj, name, path, 0)
}

fn key_values_at(obj: &Map<String, Value>, name: &str, path: &str, depth: usize) -> Result<Vec<KeyValue>, String> {
    let prefix = if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
    array(obj, name, path)?
        .iter()
        .enumerate()
        .map(|(i, kv)| {
            let p = format!("{prefix}[{i}]");
            let kv = object(kv, &p)?;
            Ok(KeyValue {
                key: string(kv, "key", &p)?,
                value: kv
                    .get("value")
                    .filter(|v| !v.is_null())
                    .map(|v| any_from_json(v, &format!("{p}.value"), depth))
                    .transpose()?,
            })
        })
        .collect()
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| format!("{} must be a JSON object", if path.is_empty() { "the body" } else { path }))
}

fn array<'a>(obj: &'a Map<String, Value>, name: &str, path: &str) -> Result<&'a [Value], String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("{} must be an array", join(path, name))),
    }
}

fn string(obj: &Map<String, Value>, name: &str, path: &str) -> Result<String, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{} must be a string", join(path, name))),
    }
}

/// Largest time accepted, ns (19 digits; year 2286).
const MAX_NANOS: u64 = 9_999_999_999_999_999_999;

/// A `fixed64` time: a number from 0 to [`MAX_NANOS`], or a string of 1 to 19 digits.
fn nanos(obj: &Map<String, Value>, name: &str, path: &str) -> Result<u64, String> {
    let bad =
        || format!("{} must be an integer from 0 to {MAX_NANOS} (a number or a string of digits)", join(path, name));
    match obj.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) if (1..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| bad())
        }
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_NANOS as f64).map(|f| f as u64)
            })
            .filter(|v| *v <= MAX_NANOS)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// `severityNumber`: an int32 (number, or a string of at most 9 digits) or an enum name.
fn severity_number(obj: &Map<String, Value>, path: &str) -> Result<i32, String> {
    let bad = || format!("{path}.severityNumber must be an int32 or a SEVERITY_NUMBER_ name");
    match obj.get("severityNumber") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if (1..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().map_err(|_| bad())
            } else {
                severity_name(s).ok_or_else(bad)
            }
        }
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 3e9).map(|f| f as i64))
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// `SEVERITY_NUMBER_WARN` and the like, as protobuf's JSON mapping may write an enum.
fn severity_name(s: &str) -> Option<i32> {
    const NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let rest = s.strip_prefix("SEVERITY_NUMBER_")?;
    if rest == "UNSPECIFIED" {
        return Some(0);
    }
    let (name, step) = match rest.find(|c: char| c.is_ascii_digit()) {
        Some(i) if matches!(&rest[i..], "2" | "3" | "4") => (&rest[..i], rest[i..].parse::<i32>().ok()? - 1),
        Some(_) => return None,
        None => (rest, 0),
    };
    let base = NAMES.iter().position(|n| *n == name)? as i32;
    Some(base * 4 + 1 + step)
}

/// An `int64` value: a number in range, or a string of at most 18 digits (with a sign).
fn int_of(v: &Value) -> Option<i64> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f > -TWO_63 && *f < TWO_63).map(|f| f as i64)),
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            ((1..=18).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        }
        _ => None,
    }
}

fn hex_id(obj: &Map<String, Value>, name: &str, path: &str) -> Result<Vec<u8>, String> {
    let text = string(obj, name, path)?;
    hex::decode(&text).map_err(|_| format!("{} must be hex", join(path, name)))
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}
