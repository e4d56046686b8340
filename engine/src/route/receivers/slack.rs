//! `slack` receivers (incoming webhooks): Block Kit with a `text` fallback, the severity
//! as the attachment colour and an acknowledge link back to Vigil. Sent with the shared
//! HTTP `send` of `receivers`; summaries and digests become one list of alerts.

use serde_json::{Value, json};
use vigil_sdk::Severity;

use super::{Context, Outcome, Receiver, alert_of, headline, occurrences, send, truncate};
use crate::finding::parse_severity;
use crate::store::NotificationRow;

/// Posts one notification to the incoming webhook.
pub(super) async fn deliver(
    r: &Receiver,
    http: &reqwest::Client,
    n: &NotificationRow,
    payload: &Value,
    ctx: &Context,
) -> Outcome {
    let body = slack_body(n, payload, ctx).to_string();
    send(http.post(r.url.as_deref().unwrap_or_default()).header("content-type", "application/json").body(body)).await
}

/// The attachment colour of a severity (none: text that names no severity, as a P4).
fn severity_colour(sev: Option<Severity>) -> &'static str {
    match sev {
        Some(Severity::P1) => "#d0021b",
        Some(Severity::P2) => "#f5a623",
        Some(Severity::P3) => "#f8e71c",
        Some(Severity::P4) | None => "#4a90e2",
    }
}

/// Slack Block Kit with a `text` fallback.
pub fn slack_body(n: &NotificationRow, payload: &Value, ctx: &Context) -> Value {
    let text = headline(n, payload);
    if let Some(items) = payload.get("items").and_then(Value::as_array) {
        let lines: Vec<String> = items
            .iter()
            .take(20)
            .map(|i| {
                format!(
                    "• [{}] {}",
                    i["alert"]["severity"].as_str().unwrap_or(""),
                    i["alert"]["title"].as_str().unwrap_or("")
                )
            })
            .collect();
        return json!({"text": text, "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&text, 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&lines.join("\n"), 3000)}}]});
    }
    let a = alert_of(payload);
    let sev = a["severity"].as_str().unwrap_or(Severity::P4.as_str());
    let link = ctx.alert_link(&a["id"]);
    let fields: Vec<Value> = [
        ("Severity", sev.to_owned()),
        ("Rule", a["rule"].as_str().unwrap_or("").to_owned()),
        ("Occurrences", occurrences(payload).to_string()),
        ("Status", a["status"].as_str().unwrap_or("").to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{v}")}))
    .collect();
    json!({
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&text, 150)}},
        ],
        "attachments": [{
            "color": severity_colour(parse_severity(sev)),
            "blocks": [
                {"type": "section", "fields": fields},
                {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("```{}```", a["fields"]), 2900)}},
                {"type": "actions", "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"}, "url": format!("{link}/ack"), "style": "primary", "action_id": "vigil_ack"},
                    {"type": "button", "text": {"type": "plain_text", "text": "Open in Vigil"}, "url": link, "action_id": "vigil_open"}
                ]}
            ]
        }]
    })
}
