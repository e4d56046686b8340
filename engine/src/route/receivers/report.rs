//! A scheduled security report (`report::schedule`, notification kind `report`) in each
//! receiver's format: a `webhook` gets the whole report JSON (`type: report.security`,
//! whatever its `format`: the config check refuses Alertmanager and OCSF receivers for
//! reports), `slack` and `pagerduty` a short summary with the link to the printable page,
//! `email` the printable HTML page as its HTML body, the summary as its text body, and the
//! JSON as an attachment (built in `email::send`).
//!
//! The report holds attacker text (top IPs and users, actions, rule names): the webhook
//! body is JSON (escaped by serialisation), Slack text goes through `slack`'s escaping,
//! the email's HTML is `report::html` (every value HTML-escaped) and its text lines are
//! made one line each.

use serde_json::{Value, json};

use super::{Context, headline, one_line, truncate};
use crate::event::format_rfc3339_ms;
use crate::report::html;
use crate::report::schedule::summary;
use crate::store::NotificationRow;

/// `webhook`: the Standard Webhooks shape with the whole report.
pub fn report_webhook_body(n: &NotificationRow, payload: &Value, now_ms: i64) -> Value {
    json!({
        "type": "report.security",
        "timestamp": format_rfc3339_ms(now_ms),
        "data": {
            "notification_id": n.idempotency_key,
            "kind": n.kind,
            "summary": headline(n, payload),
            "period": payload["period"],
            "date": payload["date"],
            "link": payload["link"],
            "report": payload["report"],
        }
    })
}

/// `slack`: a header, the summary as section fields, and a button to the printable page.
/// `escape` is Slack's escaping with a length cap (from `slack`).
pub fn report_slack_body(n: &NotificationRow, payload: &Value, escape: impl Fn(&str, usize) -> String) -> Value {
    let title = headline(n, payload);
    // The period is in the header; the rest as fields, ten per section (Slack's limit).
    let fields: Vec<Value> = summary(&payload["report"])
        .into_iter()
        .filter(|(label, _)| *label != "Period")
        .map(|(label, value)| {
            json!({"type": "mrkdwn", "verbatim": true,
                "text": format!("*{label}*\n{}", escape(&one_line(&value).replace('`', "\u{02CB}"), 300))})
        })
        .collect();
    let mut blocks =
        vec![json!({"type": "header", "text": {"type": "plain_text", "text": escape(&title, 150), "emoji": false}})];
    for chunk in fields.chunks(10) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    let link = payload["link"].as_str().unwrap_or_default();
    let dashboard = payload["dashboard"].as_str().unwrap_or_default();
    json!({
        "text": escape(&title, 3000),
        "parse": "none", "unfurl_links": false, "unfurl_media": false,
        "blocks": blocks.into_iter().chain([json!(
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Printable report", "emoji": false},
                    "url": link, "action_id": "vigil_report"},
                {"type": "button", "text": {"type": "plain_text", "text": "Open in Vigil", "emoji": false},
                    "url": dashboard, "action_id": "vigil_reports_page"}
            ]})]).collect::<Vec<_>>(),
    })
}

/// `pagerduty`: an `info` event per report (its own `dedup_key`), the summary in
/// `custom_details`, the printable page as `client_url`.
pub fn report_pagerduty_body(n: &NotificationRow, payload: &Value, routing_key: &str) -> Value {
    let details: serde_json::Map<String, Value> = summary(&payload["report"])
        .into_iter()
        .map(|(label, value)| (label.to_owned(), json!(truncate(&one_line(&value), 512))))
        .collect();
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": format!("vigil-{}", n.idempotency_key),
        "payload": {
            "summary": truncate(&headline(n, payload), 1024),
            "source": "vigil",
            "severity": "info",
            "timestamp": payload["to"],
            "component": "reports",
            "class": "security_report",
            "custom_details": details,
        },
        "client": "Vigil",
        "client_url": payload["link"],
    })
}

/// `email`: (subject, text body, HTML body): the summary in text, the printable page in HTML.
pub fn report_email_bodies(n: &NotificationRow, payload: &Value, _ctx: &Context) -> (String, String, String) {
    let subject = truncate(&headline(n, payload), 250);
    let mut text = format!("{subject}\n\n");
    for (label, value) in summary(&payload["report"]) {
        text.push_str(&format!("{label}: {}\n", one_line(&value)));
    }
    text.push_str(&format!(
        "\nThe whole report is the HTML part of this message and the attached JSON.\nPrintable page (needs a read key): {}\n",
        one_line(payload["link"].as_str().unwrap_or_default())
    ));
    (subject, text, html::render(&payload["report"]))
}

/// The name of the JSON attachment of a report email.
pub(super) fn attachment_name(payload: &Value) -> String {
    let safe = |v: &Value| -> String {
        v.as_str().unwrap_or_default().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect()
    };
    format!("vigil-security-report-{}-{}.json", safe(&payload["period"]), safe(&payload["date"]))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    const HOSTILE: &str = "<img src=x onerror=alert(1)>\r\nBcc: victim@evil.example <!channel>";

    fn payload() -> Value {
        json!({"period": "day", "date": "2026-01-04", "to": "2026-01-05T00:00:00.000Z",
            "link": "https://vigil.example/v1/reports/security?period=day&date=2026-01-04&format=html",
            "dashboard": "https://vigil.example/#/reports?period=day&date=2026-01-04",
            "report": {"period": "day", "date": "2026-01-04", "events": {"total": 12,
                "top_users": [{"value": HOSTILE, "count": 5}], "by_category": [{"value": HOSTILE, "count": 12}]},
                "alerts": {"total": 1, "by_severity": {"P1": 1}, "by_rule": [{"rule": HOSTILE, "alerts": 1}]},
                "integrity": {"status": "ok"}}})
    }

    fn row() -> NotificationRow {
        NotificationRow {
            kind: "report".into(),
            idempotency_key: "report-security-day-2026-01-04-x".into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_format_carries_the_report_with_attacker_text_escaped() {
        let (n, p) = (row(), payload());
        let hook = report_webhook_body(&n, &p, 0);
        assert_eq!(hook["type"], "report.security");
        assert_eq!(hook["data"]["report"]["events"]["total"], 12);
        assert_eq!(hook["data"]["summary"], "Vigil security report: day of 2026-01-04");

        let slack = report_slack_body(&n, &p, |s, _| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"));
        let text = slack.to_string();
        assert!(!text.contains("<img") && !text.contains("<!channel>"), "{text}");
        assert!(text.contains("&lt;img src=x onerror=alert(1)&gt;"), "{text}");
        assert!(!text.contains("\\r\\nBcc"), "one line: {text}");

        let pd = report_pagerduty_body(&n, &p, "KEY");
        assert_eq!(pd["payload"]["severity"], "info");
        assert_eq!(pd["dedup_key"], "vigil-report-security-day-2026-01-04-x");
        assert_eq!(pd["payload"]["custom_details"]["Events"], "12");
        assert!(pd.to_string().len() < 8192, "a short summary, not the report");

        let ctx =
            Context { external_url: "https://vigil.example".into(), timeout: Duration::from_secs(1), rules: None };
        let (subject, text, html) = report_email_bodies(&n, &p, &ctx);
        assert_eq!(subject, "Vigil security report: day of 2026-01-04");
        assert!(!text.lines().any(|l| l.starts_with("Bcc:")), "{text}");
        assert!(text.contains("Events: 12"), "{text}");
        assert!(!html.contains("<img") && html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
        assert!(html.contains("<svg"), "the charts");
        assert_eq!(attachment_name(&json!({"period": "day", "date": "../x"})), "vigil-security-report-day-x.json");
    }
}
