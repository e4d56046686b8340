//! The event model at the bottom of the data path, shared by every stage: the validated
//! event `ingest` hands the sequencer ([`NewEvent`]), the committed event the sequencer
//! hands detection ([`CommittedEvent`]), the events the server writes itself
//! ([`system_event`]), the masking policy version stamped on stored events, and the time
//! helpers (epoch ms, RFC 3339). It depends on no other module of the crate, so `store`,
//! `rules`, `detect` and `alerts` never import `ingest`.

use std::sync::Arc;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Version of the masking policy applied at ingest, stored on every event (`mask_policy`).
pub const MASK_POLICY_VERSION: u32 = 1;

/// A validated, masked event ready to be sequenced.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event id (client's, or a server-made UUIDv7).
    pub event_id: String,
    /// Whether the client supplied `event_id` (only those can be duplicates).
    pub client_id: bool,
    /// Receipt time, epoch ms.
    pub received_at: i64,
    /// Normalized fields of section 2 (timestamp as epoch ms), without server fields.
    pub fields: Map<String, Value>,
}

/// An event just committed, as offered to detection.
#[derive(Debug, Clone)]
pub struct CommittedEvent {
    /// Its seq.
    pub seq: i64,
    /// The stored event object (canon, decoded).
    pub event: Arc<Map<String, Value>>,
    /// The canonical JSON of `details`, when known (cut from the canonical bytes, so rules
    /// that read the whole `details` need no serialization).
    pub details_json: Option<Arc<[u8]>>,
    /// Bytes of its canonical form (what the detection hand-off is bounded by).
    pub size: usize,
}

/// Wall-clock now, epoch ms (used for `received_at` and bookkeeping, never for ordering).
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Largest accepted time: 9999-12-31T23:59:59.999Z.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Formats epoch ms as RFC 3339 UTC with millisecond precision (`2026-11-23T10:00:00.000Z`).
pub fn format_rfc3339_ms(ms: i64) -> String {
    let clamped = ms.clamp(0, MAX_TIME_MS);
    let t =
        OffsetDateTime::from_unix_timestamp_nanos(clamped as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses a time given as RFC 3339 text or as integer epoch ms (also as a decimal string,
/// for query parameters). Returns None when it is neither or out of range.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return (0..=MAX_TIME_MS).contains(&ms).then_some(ms);
    }
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
    (0..=MAX_TIME_MS).contains(&ms).then_some(ms)
}

/// An event the server itself writes into the chain (key created, rule deployed, ...).
/// It bypasses request validation but not the chain: it is sequenced like any other.
pub fn system_event(category: &str, action: &str, actor: &str, details: serde_json::Value) -> NewEvent {
    let now = now_ms();
    let mut fields = serde_json::Map::new();
    fields.insert("category".into(), category.into());
    fields.insert("action".into(), action.into());
    fields.insert("severity".into(), "medium".into());
    fields.insert("outcome".into(), "success".into());
    fields.insert("source".into(), "vigil".into());
    fields.insert("user_id".into(), actor.into());
    fields.insert("timestamp".into(), now.into());
    fields.insert("details".into(), details);
    NewEvent { event_id: uuid::Uuid::now_v7().to_string(), client_id: false, received_at: now, fields }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_with_milliseconds() {
        let ms = parse_time("2026-11-23T10:11:12.345+01:00").unwrap();
        assert_eq!(format_rfc3339_ms(ms), "2026-11-23T09:11:12.345Z");
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("-5"), None);
    }
}
