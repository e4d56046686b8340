//! What travels between nodes over NATS: a group of validated, masked events of one
//! partition (exactly the fields the receiving node's ingest produced, so the partition's
//! writer hashes what the client's node checked), and the writer's answer. Every payload is
//! authenticated with an HMAC-SHA256 under a key derived from the cluster's shared masking
//! secret, so a NATS client that is not a Vigil node cannot inject events or forge answers.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::event::{EventFields, NewEvent, STRING_FIELDS};
use crate::ledger::sequencer::Ack;

/// Header carrying the payload's HMAC (lowercase hex).
pub const MAC_HEADER: &str = "Vigil-Mac";
/// Header naming the core NATS subject the writer answers on.
pub const REPLY_HEADER: &str = "Vigil-Reply";

/// One event on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireEvent {
    event_id: String,
    client_id: bool,
    ingest_key: Option<String>,
    received_at: i64,
    timestamp: Option<i64>,
    category: String,
    action: String,
    severity: String,
    outcome: String,
    strings: Vec<Option<String>>,
    ip: Option<String>,
    geo: Option<String>,
    details: Option<String>,
}

fn text(bytes: &Option<Box<[u8]>>) -> Option<String> {
    bytes.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

impl From<&NewEvent> for WireEvent {
    fn from(e: &NewEvent) -> Self {
        let f = &e.fields;
        Self {
            event_id: e.event_id.clone(),
            client_id: e.client_id,
            ingest_key: e.ingest_key.clone(),
            received_at: e.received_at,
            timestamp: f.timestamp,
            category: f.category.clone(),
            action: f.action.clone(),
            severity: f.severity.clone(),
            outcome: f.outcome.clone(),
            strings: f.strings.to_vec(),
            ip: f.ip.clone(),
            geo: text(&f.geo),
            details: text(&f.details),
        }
    }
}

impl WireEvent {
    /// The event again (None: a payload of another version).
    pub fn into_event(self) -> Option<NewEvent> {
        let strings: [Option<String>; STRING_FIELDS.len()] = self.strings.try_into().ok()?;
        Some(NewEvent {
            event_id: self.event_id,
            client_id: self.client_id,
            ingest_key: self.ingest_key,
            received_at: self.received_at,
            fields: EventFields {
                timestamp: self.timestamp,
                category: self.category,
                action: self.action,
                severity: self.severity,
                outcome: self.outcome,
                strings,
                ip: self.ip,
                geo: self.geo.map(|g| g.into_bytes().into_boxed_slice()),
                details: self.details.map(|d| d.into_bytes().into_boxed_slice()),
            },
        })
    }
}

/// A group of events for one partition's writer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub partition: u32,
    /// From a client (refused while the partition's log is on hold) or the server itself.
    pub client: bool,
    pub events: Vec<WireEvent>,
}

/// The writer's answer to a group.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The acks in the group's order, once committed.
    pub acks: Option<Vec<Ack>>,
    /// Why nothing was stored (`on_hold`, `unavailable`, `full`, `moved`).
    pub error: Option<String>,
}

/// Signs and checks payloads with the cluster's key.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// The key is derived from the cluster's shared masking secret (every node holds the
    /// same secrets: docs/cluster.md).
    pub fn new(shared_secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(shared_secret).expect("any key length");
        mac.update(b"vigil-cluster-wire-v1");
        Self { key: mac.finalize().into_bytes().to_vec() }
    }

    /// The MAC of `payload` sent on `subject` (lowercase hex).
    pub fn sign(&self, subject: &str, payload: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(subject.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        hex::encode(mac.finalize().into_bytes())
    }

    /// True when `mac` is the MAC of `payload` on `subject` (constant time).
    pub fn check(&self, subject: &str, payload: &[u8], mac: &str) -> bool {
        let Ok(given) = hex::decode(mac) else { return false };
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        m.update(subject.as_bytes());
        m.update(&[0]);
        m.update(payload);
        m.verify_slice(&given).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_crosses_the_wire_unchanged_and_a_forged_payload_is_refused() {
        let masker = crate::ingest::Masker::new(b"k");
        let body = br#"{"event_id":"e1","category":"authentication","action":"login","ip":"192.0.2.1",
            "details":{"password":"hunter2","n":1},"geo":{"country":"FR"}}"#;
        let ev = crate::ingest::validate::validate_body(body, false, &masker).unwrap().remove(0);
        let wire = serde_json::to_vec(&WireEvent::from(&ev)).unwrap();
        let back = serde_json::from_slice::<WireEvent>(&wire).unwrap().into_event().unwrap();
        assert_eq!(back.fields, ev.fields);
        assert_eq!((back.event_id, back.client_id, back.received_at), (ev.event_id, ev.client_id, ev.received_at));
        let signer = Signer::new(b"secret");
        let mac = signer.sign("vigil.events.1", &wire);
        assert!(signer.check("vigil.events.1", &wire, &mac));
        assert!(!signer.check("vigil.events.2", &wire, &mac), "bound to the subject");
        assert!(!Signer::new(b"other").check("vigil.events.1", &wire, &mac));
        assert!(!signer.check("vigil.events.1", b"{}", &mac));
    }
}
