//! Ingest: parse request bodies (one object, an array, or NDJSON), validate and normalize
//! every event against the wire format of DESIGN.md section 2, and mask secrets and PII
//! before anything is stored or logged. `api` calls in; the result goes to the `Sequencer`
//! in `store`.

pub mod mask;
pub mod validate;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use mask::{MASK_POLICY_VERSION, Masker};
pub use validate::{Problem, parse_body, validate_batch};

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
pub fn system_event(
    category: &str,
    action: &str,
    actor: &str,
    details: serde_json::Value,
) -> crate::store::sequencer::NewEvent {
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
    crate::store::sequencer::NewEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        client_id: false,
        received_at: now,
        fields,
    }
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
