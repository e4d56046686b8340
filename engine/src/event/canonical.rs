//! The generic canonical JSON writer (`ledger::canon` documents the form): compact, object
//! keys sorted by their UTF-8 bytes at every depth, numbers and strings as `serde_json`
//! prints them. The typed event writes its top level itself and uses this for `geo` and
//! `details`.

use serde_json::{Map, Value};

/// Appends the canonical encoding of `value` to `out`.
pub fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_object(map, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        scalar => {
            // Writing a scalar into a Vec cannot fail.
            serde_json::to_writer(&mut *out, scalar).expect("scalar serialization is infallible");
        }
    }
}

/// Appends the canonical encoding of an object (keys sorted) to `out`.
pub fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable();
    out.push(b'{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).expect("string serialization is infallible");
        out.push(b':');
        write_value(&map[key], out);
    }
    out.push(b'}');
}

/// Canonical bytes of an object.
pub fn canonical_object(map: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(640);
    write_object(map, &mut out);
    out
}
