//! Fuzz checks of Vigil's ingest path, shared by the libFuzzer targets in `fuzz_targets/` and
//! by the `replay` example (which runs them over saved inputs without libFuzzer).
//!
//! [`ingest`] feeds arbitrary bytes to `vigil::ingest::parse_body` (JSON and NDJSON), then
//! `validate_batch` with a `Masker`, and to `Masker::mask_str` / `Masker::mask_value`
//! directly, and asserts what must hold for any input: no panic; masking is idempotent
//! (masking masked output changes nothing); output is valid JSON that parses back.

use serde_json::Value;
use vigil::ingest::{Masker, parse_body, validate_batch, validate_body};

/// The masker every check uses (the key only has to be fixed).
fn masker() -> Masker {
    Masker::new(b"fuzz-key")
}

/// Runs every ingest check on `data`; panics (so the fuzzer reports) if one fails.
pub fn ingest(data: &[u8]) {
    let m = masker();
    for ndjson in [false, true] {
        if let Ok(values) = parse_body(data, ndjson) {
            check_batch(&m, values);
        }
        // The server's path (each event read straight into its typed fields) accepts
        // exactly what the tree path accepts.
        let typed = validate_body(data, ndjson, &m);
        let tree = parse_body(data, ndjson).and_then(|v| validate_batch(v, &m));
        assert_eq!(typed.is_ok(), tree.is_ok(), "typed and tree paths disagree on {:?}", String::from_utf8_lossy(data));
        if let (Ok(a), Ok(b)) = (typed, tree) {
            for (a, b) in a.iter().zip(&b) {
                assert_eq!(a.fields, b.fields);
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    check_text(&m, &text);
    if let Ok(mut v) = serde_json::from_str::<Value>(&text) {
        check_value(&m, &mut v);
    }
}

/// Validated events come out masked: masking any stored string or `details` again finds
/// nothing, and the stored fields serialize to JSON that parses back to the same value.
fn check_batch(m: &Masker, values: Vec<Value>) {
    match validate_batch(values, m) {
        Ok(events) => {
            for ev in events {
                check_canonical(&ev);
                let fields = Value::Object(ev.fields.to_map());
                let text = serde_json::to_string(&fields).expect("stored fields serialize");
                let back: Value = serde_json::from_str(&text).expect("stored fields parse back");
                assert!(same_json(&back, &fields), "stored fields round-trip: {fields} -> {back}");
                for (k, v) in fields.as_object().into_iter().flatten() {
                    match (k.as_str(), v) {
                        ("details", d) => {
                            let mut again = d.clone();
                            assert_eq!(m.mask_value(&mut again), 0, "details masked twice: {d}");
                            assert_eq!(&again, d);
                        }
                        ("geo", g) => {
                            if let Some(city) = g.get("city").and_then(Value::as_str) {
                                assert_eq!(m.mask_str(city), None, "geo.city masked twice: {city:?}");
                            }
                        }
                        ("category" | "action" | "severity" | "outcome" | "ip", _) => {}
                        (_, Value::String(s)) => assert_eq!(m.mask_str(s), None, "{k} masked twice: {s:?}"),
                        _ => {}
                    }
                }
            }
        }
        Err(problems) => {
            serde_json::to_string(&problems).expect("problems serialize");
        }
    }
}

/// The canonical bytes written from the typed fields are those of the generic writer over
/// the same event as a tree, and the flat form read from them is the tree's.
fn check_canonical(ev: &vigil::event::NewEvent) {
    let server = vigil::event::ServerFields {
        event_id: &ev.event_id,
        seq: 7,
        received_at: ev.received_at,
        mask_policy: vigil::event::MASK_POLICY_VERSION,
        ingest_key: Some("k_fuzz"),
    };
    let mut typed = Vec::new();
    ev.fields.write_canonical(&server, &mut typed);
    let mut map = ev.fields.to_map();
    map.insert("event_id".into(), Value::String(ev.event_id.clone()));
    map.insert("seq".into(), 7.into());
    map.insert("received_at".into(), ev.received_at.into());
    map.insert("mask_policy".into(), vigil::event::MASK_POLICY_VERSION.into());
    map.insert("ingest_key".into(), "k_fuzz".into());
    assert_eq!(typed, vigil::ledger::canon::to_canonical(&map), "typed canonical form differs");
    let (a, b) = (vigil::event::FlatEvent::from_canon(&typed), vigil::event::FlatEvent::new(&map, None));
    for slot in 0..vigil::event::FLAT_SLOTS {
        assert_eq!(a.get(slot), b.get(slot), "flat slot {slot}");
    }
    assert_eq!(a.time_ms, b.time_ms);
}

/// `mask_str` is idempotent.
fn check_text(m: &Masker, text: &str) {
    if let Some(out) = m.mask_str(text) {
        assert_eq!(m.mask_str(&out), None, "mask_str not idempotent: {text:?} -> {out:?}");
    }
}

/// `mask_value` is idempotent and its output round-trips through JSON text.
fn check_value(m: &Masker, v: &mut Value) {
    m.mask_value(v);
    let once = v.clone();
    assert_eq!(m.mask_value(v), 0, "mask_value not idempotent: {once}");
    assert_eq!(*v, once);
    let text = serde_json::to_string(v).expect("masked value serializes");
    let back: Value = serde_json::from_str(&text).expect("masked value parses back");
    assert!(same_json(&back, v), "masked value round-trips: {v} -> {back}");
}

/// JSON equality with floats compared to a relative 1e-15: serde_json's default float
/// parser may land one ULP away from the value it printed (found by this target with
/// `111111110000000000000000110000`), which is serde_json's, not the masker's.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Runs the offline verifier (`vigil verify --file`) over `data` as an export file, and
/// every line through the line parser: no panic, and a consistent report (`ok` exactly when
/// nothing failed and nothing is unsigned; never more failures listed than counted).
pub fn verify_reader(data: &[u8]) {
    use vigil::ledger::export::{parse_line, verify_reader};
    let keys = vigil::ledger::keys::CheckpointKeys::from_seed([5; 32]);
    let report = verify_reader(data, keys.verifier().clone(), |_, _| {}).expect("reading memory cannot fail");
    assert_eq!(report.status == "ok", report.failure_count == 0 && report.unsigned.is_none(), "{report:?}");
    assert!(report.failures.len() as u64 <= report.failure_count, "{report:?}");
    for line in data.split(|b| *b == b'\n') {
        let _ = parse_line(line);
    }
}
