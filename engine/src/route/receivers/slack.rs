//! `slack` receivers (incoming webhooks): Block Kit with a `text` fallback, the severity
//! as the attachment colour and an acknowledge link back to Vigil. Sent with the shared
//! HTTP `send` of `receivers`; summaries and digests become one list of alerts.
//!
//! Every text that can hold attacker data (titles, rule names, fields, event values) is
//! escaped per Slack's rules (`&`, `<`, `>` as entities: no `<!channel>`, no
//! `<https://evil|reset>` masked link), made one line where it is one line, and marked
//! `verbatim` (no automatic mention or link parsing). The alert's fields are shown in a
//! code block whose backticks are replaced by `ˋ` (U+02CB MODIFIER LETTER GRAVE ACCENT),
//! so text inside can never close the block: a look-alike, not a zero-width trick, so what
//! is shown is still what was sent.

use serde_json::{Value, json};
use vigil_sdk::Severity;

use super::{Context, Outcome, Receiver, alert_of, headline, occurrences, one_line, send};
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

/// Slack's escaping: `&`, `<` and `>` as entities (and only those three), so attacker text
/// is shown, never parsed as a mention, a channel link or a masked link; within `max`
/// characters (Slack's limits count the escaped text), cut between characters, never inside
/// an entity, with `…` when cut.
fn slack_text(s: &str, max: usize) -> String {
    let width = |c: char| match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    };
    let total: usize = s.chars().map(width).sum();
    // When it does not fit, one character is kept for the ellipsis.
    let budget = if total <= max { max } else { max.saturating_sub(1) };
    let mut out = String::with_capacity(s.len().min(budget.saturating_mul(4)) + 3);
    let mut used = 0usize;
    for c in s.chars() {
        used += width(c);
        if used > budget {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A code block user text cannot close: backticks become `ˋ` (U+02CB), then Slack escaping,
/// within `max` characters fences included.
fn code_block(raw: &str, max: usize) -> String {
    let inner = slack_text(&raw.replace('`', "\u{02CB}"), max.saturating_sub(6));
    format!("```{inner}```")
}

/// A `mrkdwn` text object that Slack shows as sent (no automatic mention or link parsing).
fn mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text, "verbatim": true})
}

/// A `plain_text` object (escaped too: Slack applies its escaping to all text).
fn plain(text: String) -> Value {
    json!({"type": "plain_text", "text": text, "emoji": false})
}

/// Slack Block Kit with a `text` fallback; attacker text escaped (see the module doc).
pub fn slack_body(n: &NotificationRow, payload: &Value, ctx: &Context) -> Value {
    let text = headline(n, payload);
    // Message-level switches: no link parsing, no previews of URLs an attacker wrote.
    let message = |blocks: Value, attachments: Option<Value>| {
        let mut m = json!({"text": slack_text(&text, 3000), "blocks": blocks, "parse": "none",
            "unfurl_links": false, "unfurl_media": false});
        if let Some(a) = attachments {
            m["attachments"] = a;
        }
        m
    };
    let header = json!({"type": "header", "text": plain(slack_text(&text, 150))});
    if let Some(items) = payload.get("items").and_then(Value::as_array) {
        let lines: Vec<String> = items
            .iter()
            .take(20)
            .map(|i| {
                format!(
                    "• [{}] {}",
                    one_line(i["alert"]["severity"].as_str().unwrap_or("")),
                    one_line(i["alert"]["title"].as_str().unwrap_or(""))
                )
            })
            .collect();
        let more = items.len().saturating_sub(20);
        let mut list = lines.join("\n");
        if more > 0 {
            list.push_str(&format!("\n… and {more} more"));
        }
        return message(json!([header, {"type": "section", "text": mrkdwn(slack_text(&list, 3000))}]), None);
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
    .map(|(k, v)| mrkdwn(format!("*{k}*\n{}", slack_text(&one_line(&v), 1900))))
    .collect();
    let attachments = json!([{
        "color": severity_colour(parse_severity(sev)),
        "blocks": [
            {"type": "section", "fields": fields},
            {"type": "section", "text": mrkdwn(code_block(&a["fields"].to_string(), 2900))},
            {"type": "actions", "elements": [
                {"type": "button", "text": plain("Acknowledge".into()), "url": format!("{link}/ack"), "style": "primary", "action_id": "vigil_ack"},
                {"type": "button", "text": plain("Open in Vigil".into()), "url": link, "action_id": "vigil_open"}
            ]}
        ]
    }]);
    message(json!([header]), Some(attachments))
}

#[cfg(test)]
mod tests {
    use super::{code_block, slack_text};

    #[test]
    fn slack_text_escapes_the_three_control_characters_and_cuts_between_entities() {
        assert_eq!(
            slack_text("<!channel> <https://evil|reset> & co", usize::MAX),
            "&lt;!channel&gt; &lt;https://evil|reset&gt; &amp; co"
        );
        assert_eq!(slack_text("abc", 3), "abc");
        assert_eq!(slack_text("abcd", 3), "ab…");
        // `<` is 4 characters escaped: never cut in the middle of `&lt;`.
        assert_eq!(slack_text("a<b", 4), "a…");
        assert_eq!(slack_text("a<", 5), "a&lt;");
        for max in 0..12 {
            let t = slack_text("<<&>>", max);
            assert!(t.chars().count() <= max.max(1), "{max}: {t}");
            assert!(!t.contains('<') && !t.contains('>'), "{t}");
        }
    }

    #[test]
    fn a_code_block_cannot_be_closed_from_inside() {
        let b = code_block("x```\n<!here> *bold*```y`", 100);
        assert!(b.starts_with("```") && b.ends_with("```"), "{b}");
        assert_eq!(b.matches('`').count(), 6, "only the fences: {b}");
        assert!(!b.contains('<'), "{b}");
        let long = code_block(&"`".repeat(5000), 2900);
        assert!(long.chars().count() <= 2900 && long.ends_with("```"), "the fence survives a cut");
    }
}
