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
        Value::String(s) => write_str(s, out),
        scalar => {
            // Writing a scalar into a Vec cannot fail.
            serde_json::to_writer(&mut *out, scalar).expect("scalar serialization is infallible");
        }
    }
}

/// Which bytes a JSON string escapes, as serde_json writes them: `0` none, `u` as
/// `\u00XX` (lowercase hex), any other byte `b` as a backslash and `b`.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = b'u';
        c += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `s` as a JSON string, byte for byte as `serde_json::to_writer` writes it (the
/// canonical form's strings), without going through a serializer.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut from = 0;
    for (i, &c) in b.iter().enumerate() {
        let escape = ESCAPE[usize::from(c)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&b[from..i]);
        from = i + 1;
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
    }
    out.extend_from_slice(&b[from..]);
    out.push(b'"');
}

/// Appends the canonical encoding of an object (keys sorted) to `out`.
pub fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    // serde_json's map is a `BTreeMap` (sorted by bytes, as the canonical form is) unless
    // some crate turns on its `preserve_order` feature: then the members are sorted here.
    let mut last: Option<&String> = None;
    if map.keys().all(|k| last.replace(k).is_none_or(|prev| prev < k)) {
        out.push(b'{');
        for (i, (key, value)) in map.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(key, out);
            out.push(b':');
            write_value(value, out);
        }
        out.push(b'}');
        return;
    }
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable();
    out.push(b'{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(key, out);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct string writer is serde_json's, byte for byte: every ASCII byte and some
    /// multi-byte characters alone, and generated mixes of them.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut singles: Vec<String> = (0u8..0x80).map(|c| char::from(c).to_string()).collect();
        singles.extend(
            ["\u{7f}", "\u{80}", "\u{e9}", "\u{2028}", "\u{2029}", "\u{fffd}", "\u{1F600}", ""].map(String::from),
        );
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut mixes = Vec::new();
        for _ in 0..2000 {
            let n = (state % 12) as usize;
            let mut s = String::new();
            for _ in 0..n {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push_str(&singles[(state % singles.len() as u64) as usize]);
            }
            mixes.push(s);
        }
        for s in singles.iter().chain(&mixes) {
            let mut ours = Vec::new();
            write_str(s, &mut ours);
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    /// Objects are written in key byte order with or without nesting, as the sorted writer
    /// wrote them (keys that sort differently as text and as UTF-16 included).
    #[test]
    fn objects_are_written_in_key_byte_order() {
        let v = serde_json::json!({"b": 1, "a": {"z": [1, {"y": "\u{e9}", "x": null}], "\u{ff61}": 1, "\u{1F600}": 2}, "": "\n"});
        let mut out = Vec::new();
        write_value(&v, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"\":\"\\n\",\"a\":{\"z\":[1,{\"x\":null,\"y\":\"\u{e9}\"}],\"\u{ff61}\":1,\"\u{1F600}\":2},\"b\":1}"
        );
    }
}
