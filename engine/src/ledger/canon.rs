//! Canonical form of a stored event: the exact bytes that are hashed and kept in `canon`.
//!
//! The canonical form is compact JSON (no whitespace) of one object with:
//! - object keys sorted by their UTF-8 bytes, at every depth (we sort ourselves, so the
//!   result never depends on `serde_json`'s `preserve_order` feature);
//! - times as integer epoch milliseconds (`timestamp`, `received_at`);
//! - numbers printed by `serde_json` (integers as integers, floats in shortest round-trip
//!   form via `ryu`), strings escaped by `serde_json`;
//! - the server fields `seq`, `received_at`, `mask_policy`, `event_id` and, for an event a
//!   client sent, `ingest_key` (the id of the API key that sent it) inside the object;
//!   `hash` and `prev_hash` are not part of it (the chain is computed over it). Events
//!   stored before `ingest_key` was recorded, and the server's own, have no `ingest_key`.
//!
//! Read by `ledger::chain` (hashing, verify), written by the `Sequencer`, decoded by queries.

use serde_json::{Map, Value};

pub use crate::event::canonical::{write_object, write_value as write_canonical};

/// Canonical bytes of an object (the typed event writes its own: `event::EventFields`).
pub fn to_canonical(map: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(640);
    write_object(map, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_depth_and_output_is_compact() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": true, "x": null}], "c": "s"}, "A": 1.5});
        let mut out = Vec::new();
        write_canonical(&v, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"A":1.5,"a":{"c":"s","z":[3,{"x":null,"y":true}]},"b":1}"#);
    }

    #[test]
    fn canonical_form_is_stable_across_parse_and_reencode() {
        let v = json!({"k": "caf\u{e9} \"q\" \n", "n": 1e-7, "i": -12});
        let mut a = Vec::new();
        write_canonical(&v, &mut a);
        let back: Value = serde_json::from_slice(&a).unwrap();
        let mut b = Vec::new();
        write_canonical(&back, &mut b);
        assert_eq!(a, b);
    }
}
