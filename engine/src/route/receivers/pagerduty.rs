//! `pagerduty` receivers (Events API v2): `trigger`, then `acknowledge` / `resolve` as the
//! alert changes, with `dedup_key` = the alert's fingerprint (summaries and digests get
//! their own). Sent with the shared HTTP `send` of `receivers`.
//!
//! PagerDuty shows the payload as text (JSON stays JSON), so attacker text needs no
//! escaping, only bounds: the summary is one line within PagerDuty's 1024, and a summary's
//! items are cut to [`MAX_ITEMS`] short entries so an event stays far below PagerDuty's
//! 512 KB (a bigger one is refused with a 400, which is not retried: a lost page).

use serde_json::{Value, json};
use vigil_sdk::Severity;

use super::{Context, Outcome, Receiver, alert_of, headline, send, truncate};
use crate::finding::parse_severity;
use crate::store::NotificationRow;

/// Posts one event, with the receiver's routing key.
pub(super) async fn deliver(
    r: &Receiver,
    http: &reqwest::Client,
    n: &NotificationRow,
    payload: &Value,
    ctx: &Context,
) -> Outcome {
    let body = pagerduty_body(n, payload, r.routing_key.as_deref().unwrap_or_default(), ctx).to_string();
    send(http.post(r.url.as_deref().unwrap_or_default()).header("content-type", "application/json").body(body)).await
}

/// Most items of a storm summary listed in `custom_details` (the count says how many).
pub const MAX_ITEMS: usize = 20;

/// The items of a summary as short entries (id, severity, title), at most [`MAX_ITEMS`].
fn short_items(payload: &Value) -> Value {
    match payload.get("items").and_then(Value::as_array) {
        Some(items) => Value::Array(
            items
                .iter()
                .take(MAX_ITEMS)
                .map(|i| {
                    let a = &i["alert"];
                    json!({"alert_id": a["id"], "severity": a["severity"],
                        "title": truncate(a["title"].as_str().unwrap_or_default(), 512)})
                })
                .collect(),
        ),
        None => Value::Null,
    }
}

/// PagerDuty severity of a Vigil severity.
pub fn pagerduty_severity(sev: Severity) -> &'static str {
    match sev {
        Severity::P1 => "critical",
        Severity::P2 => "error",
        Severity::P3 => "warning",
        Severity::P4 => "info",
    }
}

/// PagerDuty Events API v2.
pub fn pagerduty_body(n: &NotificationRow, payload: &Value, routing_key: &str, ctx: &Context) -> Value {
    if n.kind == "report" {
        return super::report_pagerduty_body(n, payload, routing_key);
    }
    let a = alert_of(payload);
    let (action, dedup) = match n.kind.as_str() {
        "acknowledge" => ("acknowledge", a["fingerprint"].clone()),
        "resolve" => ("resolve", a["fingerprint"].clone()),
        "summary" | "digest" => ("trigger", json!(format!("vigil-{}", n.idempotency_key))),
        _ => ("trigger", a["fingerprint"].clone()),
    };
    if action != "trigger" {
        return json!({"routing_key": routing_key, "event_action": action, "dedup_key": dedup});
    }
    // An alert without a severity we know (none: a summary or digest) is `info`, as P4.
    let severity = if a.is_null() {
        "warning"
    } else {
        a["severity"].as_str().and_then(parse_severity).map_or("info", pagerduty_severity)
    };
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup,
        "payload": {
            "summary": truncate(&headline(n, payload), 1024),
            "source": "vigil",
            "severity": severity,
            "timestamp": a.get("first_seen").cloned().unwrap_or(Value::Null),
            "component": a.get("rule").cloned().unwrap_or(json!("vigil")),
            "class": a.get("rule").cloned().unwrap_or(json!("summary")),
            "custom_details": {"alert_id": a.get("id"), "count": a.get("count"), "fields": a.get("fields"),
                "event_seqs": a.get("event_seqs"), "items": short_items(payload),
                "items_total": payload.get("items").and_then(Value::as_array).map(Vec::len), "kind": n.kind},
        },
        "client": "Vigil",
        "client_url": if a.is_null() { ctx.external_url.clone() } else { ctx.alert_link(&a["id"]) },
    })
}

#[cfg(test)]
mod tests {
    use vigil_sdk::Severity;

    use super::pagerduty_severity;

    #[test]
    fn pagerduty_severity_mapping() {
        let m: Vec<_> = Severity::ALL.into_iter().map(pagerduty_severity).collect();
        assert_eq!(m, ["critical", "error", "warning", "info"]);
    }
}
