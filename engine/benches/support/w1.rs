//! The W1-like event of the benchmarks and the profiling example (shared by
//! `benches/pipeline.rs` and `examples/profile_detection.rs` with `#[path]`).

use serde_json::{Map, Value, json};

/// A W1-like event (about 600 bytes), deterministic in `i`.
pub fn event(i: u64) -> Map<String, Value> {
    let t = 1_736_244_000_000 + i as i64; // a Tuesday, 10:00 UTC
    let user = format!("user-{:05}", i % 5000);
    let (category, action, outcome) = match i % 20 {
        0..=13 => ("authentication", "login_success", "success"),
        14 | 15 => ("authentication", "login_failed", "failure"),
        16 => ("authorization", "permission_denied", "failure"),
        17 | 18 => ("data_access", "record_read", "success"),
        _ => ("financial_operation", "payment_created", "success"),
    };
    let v = json!({
        "event_id": format!("bench-{i}"), "timestamp": t, "received_at": t, "seq": i + 1, "mask_policy": 1,
        "category": category, "action": action, "outcome": outcome, "severity": "low",
        "user_id": user, "organization_id": format!("org-{}", i % 50), "session_id": format!("sess-{:08x}", i * 7919),
        "request_id": format!("req-{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        "ip": format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        "source": "auth-service", "resource": format!("/api/v1/accounts/{}/profile", i % 5000), "resource_type": "account",
        "geo": {"country": "FR", "city": "Paris", "lat": 48.8566, "lon": 2.3522},
        "details": {"method": "password", "mfa": i.is_multiple_of(3), "record_count": 1 + i % 5, "sensitive": false,
                     "required_role": "editor", "client_version": "4.2.1"},
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}
