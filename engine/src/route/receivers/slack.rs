//! `slack` receivers (incoming webhooks): Block Kit with a `text` fallback, the severity
//! as the attachment colour, the alert's fields as section fields and an "Open in Vigil"
//! link (an incoming webhook cannot take a click, so there is no acknowledge button).
//! Acknowledge and resolve follow-ups are new messages naming who and their comment (an
//! incoming webhook can neither edit nor thread). Sent with the shared HTTP `send` of
//! `receivers`; summaries and digests become one list of alerts.
//!
//! Every text that can hold attacker data (titles, rule names, fields, comments, event
//! values) is escaped per Slack's rules (`&`, `<`, `>` as entities: no `<!channel>`, no
//! `<https://evil|reset>` masked link), made one line where it is one line, and marked
//! `verbatim` (no automatic mention or link parsing). Each field value is shown as inline
//! code whose backticks are replaced by `ˋ` (U+02CB MODIFIER LETTER GRAVE ACCENT), so text
//! inside can never close it nor format what follows: a look-alike, not a zero-width
//! trick, so what is shown is still what was sent.

use serde_json::{Value, json};
use vigil_sdk::Severity;

use super::{Context, Outcome, Receiver, alert_of, comment, headline, occurrences, one_line, send};
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

/// A `mrkdwn` text object that Slack shows as sent (no automatic mention or link parsing).
fn mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text, "verbatim": true})
}

/// A `plain_text` object (escaped too: Slack applies its escaping to all text).
fn plain(text: String) -> Value {
    json!({"type": "plain_text", "text": text, "emoji": false})
}

/// Most alert fields shown (Slack takes at most 10 `fields` in a section); more are counted
/// in the last one.
pub const MAX_FIELDS: usize = 10;
/// A field's label and value within these many characters (escaped), so ten fit in a
/// message however long the values are.
const LABEL_MAX: usize = 80;
const VALUE_MAX: usize = 300;

/// Inline code user text cannot close: backticks become `ˋ` (U+02CB), then Slack escaping,
/// within `max` characters including the two backticks; one line. Inside code, `*`, `_` and
/// `~` are shown as typed, never as formatting.
fn inline_code(raw: &str, max: usize) -> String {
    let inner = slack_text(&one_line(&raw.replace('`', "\u{02CB}")), max.saturating_sub(2));
    if inner.trim().is_empty() { "—".into() } else { format!("`{inner}`") }
}

/// The alert's fields as Slack section fields: `*label*` over the value in inline code, each
/// escaped and cut, at most [`MAX_FIELDS`] (the last one counts what is left out). A label
/// cannot turn bold off early: its `*` become `∗` (U+2217), its backticks `ˋ`.
fn alert_fields(fields: &Value) -> Vec<Value> {
    let pairs: Vec<(String, String)> = match fields {
        Value::Null => Vec::new(),
        Value::Object(m) if m.is_empty() => Vec::new(),
        Value::Object(m) => {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
        }
        other => vec![("fields".into(), other.to_string())],
    };
    let label = |k: &str| slack_text(&one_line(&k.replace('*', "\u{2217}").replace('`', "\u{02CB}")), LABEL_MAX);
    let shown = if pairs.len() > MAX_FIELDS { MAX_FIELDS - 1 } else { pairs.len() };
    let mut out: Vec<Value> = pairs
        .iter()
        .take(shown)
        .map(|(k, v)| mrkdwn(format!("*{}*\n{}", label(k), inline_code(v, VALUE_MAX))))
        .collect();
    if pairs.len() > shown {
        out.push(mrkdwn(format!("*…*\n{} more fields in Vigil", pairs.len() - shown)));
    }
    out
}

/// Slack Block Kit with a `text` fallback; attacker text escaped (see the module doc).
/// Acknowledge and resolve follow-ups are a new message (an incoming webhook can neither
/// edit nor thread) that says who did it, with their comment.
pub fn slack_body(n: &NotificationRow, payload: &Value, ctx: &Context) -> Value {
    if n.kind == "report" {
        return super::report_slack_body(n, payload, slack_text);
    }
    let text = headline(n, payload);
    let follow_up = matches!(n.kind.as_str(), "acknowledge" | "resolve");
    let note = if follow_up { comment(payload) } else { None };
    let fallback = match &note {
        Some(c) => format!("{text} — {c}"),
        None => text.clone(),
    };
    // Message-level switches: no link parsing, no previews of URLs an attacker wrote.
    let message = |blocks: Value, attachments: Option<Value>| {
        let mut m = json!({"text": slack_text(&fallback, 3000), "blocks": blocks, "parse": "none",
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
    let mut summary = vec![
        ("Severity", sev.to_owned()),
        ("Rule", a["rule"].as_str().unwrap_or("").to_owned()),
        ("Occurrences", occurrences(payload).to_string()),
        ("Status", a["status"].as_str().unwrap_or("").to_owned()),
    ];
    if n.kind == "resolve"
        && let Some(d) = payload["extra"]["disposition"].as_str()
    {
        summary.push(("Disposition", d.to_owned()));
    }
    let summary: Vec<Value> =
        summary.into_iter().map(|(k, v)| mrkdwn(format!("*{k}*\n{}", slack_text(&one_line(&v), 1900)))).collect();
    let mut blocks = vec![json!({"type": "section", "fields": summary})];
    if let Some(c) = &note {
        // One line, escaped, backticks as look-alikes: a comment cannot format the rest.
        let c = slack_text(&c.replace('`', "\u{02CB}"), 2900);
        blocks.push(json!({"type": "section", "text": mrkdwn(format!("*Comment*\n{c}"))}));
    }
    // The alert's fields on the first message; a follow-up says what changed.
    let fields = if follow_up { Vec::new() } else { alert_fields(&a["fields"]) };
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    // An incoming webhook cannot receive a click: the one button opens the alert in Vigil,
    // where it is acknowledged.
    blocks.push(json!({"type": "actions", "elements": [
        {"type": "button", "text": plain("Open in Vigil".into()), "url": link, "action_id": "vigil_open"}
    ]}));
    let colour = if n.kind == "resolve" { RESOLVED_COLOUR } else { severity_colour(parse_severity(sev)) };
    let attachments = json!([{"color": colour, "blocks": blocks}]);
    message(json!([header]), Some(attachments))
}

/// The attachment colour of a resolve follow-up.
const RESOLVED_COLOUR: &str = "#2eb67d";

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{MAX_FIELDS, alert_fields, inline_code, slack_text};

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
    fn inline_code_cannot_be_closed_from_inside() {
        let v = inline_code("x```\n<!here> *bold*```y`", 100);
        assert!(v.starts_with('`') && v.ends_with('`'), "{v}");
        assert_eq!(v.matches('`').count(), 2, "only the server's two: {v}");
        assert!(!v.contains('<') && !v.contains('\n'), "{v}");
        let long = inline_code(&"`".repeat(5000), 300);
        assert!(long.chars().count() <= 300 && long.ends_with('`'), "the closing backtick survives a cut");
        assert_eq!(inline_code("  ", 300), "—");
    }

    #[test]
    fn alert_fields_are_label_value_pairs_at_most_ten() {
        let mut m = serde_json::Map::new();
        for i in 0..25 {
            m.insert(format!("k{i:02}"), json!(i));
        }
        m.insert("*bold`".into(), json!({"nested": "<!channel>"}));
        let f = alert_fields(&Value::Object(m));
        assert_eq!(f.len(), MAX_FIELDS);
        assert_eq!(f[0]["text"], "*\u{2217}bold\u{02CB}*\n`{\"nested\":\"&lt;!channel&gt;\"}`");
        assert_eq!(f[1]["text"], "*k00*\n`0`");
        assert_eq!(f[9]["text"], "*…*\n17 more fields in Vigil");
        assert!(f.iter().all(|x| x["verbatim"] == true));
        assert!(alert_fields(&Value::Null).is_empty() && alert_fields(&json!({})).is_empty());
        assert_eq!(alert_fields(&json!([1, 2]))[0]["text"], "*fields*\n`[1,2]`");
    }
}
