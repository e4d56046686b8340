//! `webhook` receivers: Standard Webhooks signing (`webhook-id` = the notification's
//! idempotency key, stable across retries and restarts; `webhook-timestamp`;
//! `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` with a `whsec_`
//! secret, or `v1a,<base64 Ed25519 signature of id.timestamp.body>` with a `whsk_` key), body in `format = "vigil"` (`{"type", "timestamp", "data"}`),
//! `"alertmanager"` (webhook v4) or `"ocsf"` (Detection Finding 2004, `receivers::ocsf`). Sent with the shared HTTP `send` of `receivers`.
//!
//! Bodies are built as `serde_json` values, so attacker text is JSON-escaped wherever it
//! sits; the headers carry only server-made values (the idempotency key, the time, the
//! signature). Whoever renders the JSON escapes it for their own format.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Context, Outcome, Receiver, alert_of, headline, occurrences, send};
use crate::event::format_rfc3339_ms;
use crate::store::NotificationRow;

/// Signs and posts one notification.
pub(super) async fn deliver(
    r: &Receiver,
    http: &reqwest::Client,
    n: &NotificationRow,
    payload: &Value,
    ctx: &Context,
    now_ms: i64,
) -> Outcome {
    // A scheduled report has one shape (the config check keeps reports away from
    // Alertmanager and OCSF receivers).
    let body = if n.kind == "report" {
        super::report_webhook_body(n, payload, now_ms)
    } else if r.alertmanager {
        alertmanager_body(n, payload, &r.name, ctx)
    } else if r.ocsf {
        super::ocsf_body(n, payload, ctx, now_ms)
    } else {
        vigil_body(n, payload, now_ms)
    };
    let body = body.to_string();
    let ts = (now_ms / 1000).to_string();
    let mut req = http
        .post(r.url.as_deref().unwrap_or_default())
        .header("content-type", "application/json")
        .header("webhook-id", &n.idempotency_key)
        .header("webhook-timestamp", &ts);
    if let Some(secret) = &r.secret {
        req = req.header("webhook-signature", sign(secret, &n.idempotency_key, &ts, body.as_bytes()));
    } else if let Some(key) = &r.ed25519 {
        req = req.header("webhook-signature", sign_v1a(key, &n.idempotency_key, &ts, body.as_bytes()));
    }
    send(req.body(body)).await
}

/// Standard Webhooks signature header value.
pub fn sign(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Standard Webhooks `v1a` signature header value: Ed25519 over `id.timestamp.body`.
pub fn sign_v1a(key: &ed25519_dalek::SigningKey, id: &str, timestamp: &str, body: &[u8]) -> String {
    use ed25519_dalek::Signer as _;
    let mut msg = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    msg.extend_from_slice(id.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(timestamp.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    format!("v1a,{}", base64::engine::general_purpose::STANDARD.encode(key.sign(&msg).to_bytes()))
}

fn event_type(kind: &str) -> &'static str {
    match kind {
        "trigger" => "alert.triggered",
        "repeat" => "alert.repeated",
        "acknowledge" => "alert.acknowledged",
        "resolve" => "alert.resolved",
        "escalation" => "alert.escalated",
        "summary" => "alerts.summary",
        "digest" => "digest.daily",
        _ => "alert.notification",
    }
}

/// `format = "vigil"`: the Standard Webhooks payload shape.
pub fn vigil_body(n: &NotificationRow, payload: &Value, now_ms: i64) -> Value {
    json!({
        "type": event_type(&n.kind),
        "timestamp": format_rfc3339_ms(now_ms),
        "data": {
            "notification_id": n.idempotency_key,
            "kind": n.kind,
            "summary": headline(n, payload),
            "alert": payload.get("alert"),
            "occurrences": payload.get("alert").map(|_| occurrences(payload)),
            "extra": payload.get("extra"),
            "items": payload.get("items"),
            "report": payload.get("report"),
        }
    })
}

fn am_alert(a: &Value, resolved: bool, ctx: &Context) -> Value {
    json!({
        "status": if resolved { "resolved" } else { "firing" },
        "labels": {"alertname": a["rule"], "rule": a["rule"], "severity": a["severity"], "dedup_key": a["dedup_key"],
            "vigil_alert_id": a["id"].to_string()},
        "annotations": {"summary": a["title"], "description": a["fields"].to_string(),
            "count": a["count"].to_string(), "actions": a["actions"].to_string()},
        "startsAt": a["first_seen"],
        "endsAt": if resolved { a["resolved_at"].clone() } else { json!("0001-01-01T00:00:00Z") },
        "generatorURL": ctx.alert_link(&a["id"]),
        "fingerprint": a["fingerprint"],
    })
}

/// `format = "alertmanager"`: Alertmanager webhook v4.
pub fn alertmanager_body(n: &NotificationRow, payload: &Value, receiver: &str, ctx: &Context) -> Value {
    let resolved = n.kind == "resolve";
    let alerts: Vec<Value> = match payload.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().map(|i| am_alert(&i["alert"], false, ctx)).collect(),
        None if payload.get("alert").is_some() => vec![am_alert(alert_of(payload), resolved, ctx)],
        None => Vec::new(),
    };
    let common = alerts.first().map(|a| a["labels"].clone()).filter(|_| alerts.len() == 1).unwrap_or_else(|| json!({}));
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{receiver=\"{receiver}\"}}"),
        "truncatedAlerts": 0,
        "status": if resolved { "resolved" } else { "firing" },
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": ctx.external_url,
        "alerts": alerts,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::sign;

    #[test]
    fn standard_webhooks_signature_matches_the_spec_example() {
        // The example of the Standard Webhooks specification.
        let secret = base64::engine::general_purpose::STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
