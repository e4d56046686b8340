//! Receivers: each notification rendered in its ecosystem's own format and sent.
//!
//! - `webhook`: Standard Webhooks signing (`webhook-id` = the notification's idempotency
//!   key, stable across retries and restarts; `webhook-timestamp`; `webhook-signature:
//!   v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the `whsec_` secret), body in
//!   `format = "vigil"` (`{"type", "timestamp", "data"}`) or `"alertmanager"` (webhook v4).
//! - `slack`: Block Kit with a `text` fallback, severity colour and an ack link.
//! - `pagerduty`: Events API v2: `trigger`, then `acknowledge` / `resolve` as the alert
//!   changes, `dedup_key` = the alert's fingerprint.
//! - `email`: SMTP (lettre): STARTTLS when the server offers it (`smtps://` for implicit
//!   TLS), credentials from the environment, plain text and HTML, `Message-ID` from the
//!   idempotency key.
//!
//! Secrets (URLs, signing secrets, routing keys, SMTP credentials) are resolved once at
//! start and never formatted into logs or errors: errors name the receiver and the status.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::config::ReceiverConfig;
use crate::event::format_rfc3339_ms;
use crate::store::NotificationRow;

/// Receiver kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Generic signed webhook.
    Webhook,
    /// Slack incoming webhook.
    Slack,
    /// PagerDuty Events API v2.
    PagerDuty,
    /// SMTP.
    Email,
    /// Daily batch through another receiver.
    Digest,
}

impl Kind {
    /// Config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Slack => "slack",
            Kind::PagerDuty => "pagerduty",
            Kind::Email => "email",
            Kind::Digest => "digest",
        }
    }
}

/// SMTP target.
#[derive(Clone)]
struct Smtp {
    host: String,
    port: u16,
    implicit_tls: bool,
    accept_invalid_certs: bool,
    /// Extra CA certificates (PEM).
    ca_pem: Option<Vec<u8>>,
    credentials: Option<(String, String)>,
    from: String,
    to: Vec<String>,
}

/// A receiver with its secrets resolved.
#[derive(Clone)]
pub struct Receiver {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    url: Option<String>,
    /// Its own HTTP client when it trusts extra CAs (`ca_file`).
    http: Option<reqwest::Client>,
    secret: Option<Vec<u8>>,
    alertmanager: bool,
    routing_key: Option<String>,
    smtp: Option<Smtp>,
    /// Digest: the receiver it goes through.
    pub via: Option<String>,
    /// Digest: ms after midnight UTC.
    pub at_ms: i64,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 2xx (or SMTP accepted).
    Delivered,
    /// 429, 5xx, network: try again (after the server's `Retry-After` when it gave one).
    Retry {
        /// `Retry-After`.
        after: Option<Duration>,
        /// What happened (no secrets).
        error: String,
    },
    /// 4xx other than 429, or a permanent SMTP error: not retried.
    Failed {
        /// What happened (no secrets).
        error: String,
    },
}

fn env_or(value: &Option<String>, env: &Option<String>, what: &str, name: &str) -> anyhow::Result<Option<String>> {
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => anyhow::bail!("receiver `{name}`: environment variable {var} ({what}) is not set"),
        };
    }
    Ok(value.clone())
}

impl Receiver {
    /// Resolves a configured receiver (secrets from the environment).
    pub fn from_config(c: &ReceiverConfig, timeout: Duration) -> anyhow::Result<Self> {
        let kind = match c.kind.as_str() {
            "webhook" => Kind::Webhook,
            "slack" => Kind::Slack,
            "pagerduty" => Kind::PagerDuty,
            "email" => Kind::Email,
            "digest" => Kind::Digest,
            other => anyhow::bail!("receiver `{}`: unknown kind `{other}`", c.name),
        };
        let url = env_or(&c.url, &c.url_env, "url", &c.name)?;
        if let Some(u) = &url {
            let parsed =
                reqwest::Url::parse(u).map_err(|_| anyhow::anyhow!("receiver `{}`: `url` is not a URL", c.name))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                anyhow::bail!("receiver `{}`: `url` must be http or https", c.name);
            }
        }
        let secret = match env_or(&c.secret, &c.secret_env, "signing secret", &c.name)? {
            Some(s) => {
                let b64 = s.strip_prefix("whsec_").unwrap_or(&s);
                Some(base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| {
                    anyhow::anyhow!("receiver `{}`: the signing secret must be whsec_ followed by base64", c.name)
                })?)
            }
            None => None,
        };
        let routing_key = env_or(&c.routing_key, &c.routing_key_env, "routing key", &c.name)?;
        let ca_pem =
            match &c.ca_file {
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("receiver `{}`: cannot read ca_file {}: {e}", c.name, path.display())
                })?),
                None => None,
            };
        let http = match (&ca_pem, kind) {
            (Some(pem), Kind::Webhook | Kind::Slack | Kind::PagerDuty) => {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|_| anyhow::anyhow!("receiver `{}`: ca_file holds no PEM certificate", c.name))?;
                Some(crate::net::http_client(timeout).tls_certs_merge(certs).build()?)
            }
            _ => None,
        };
        let smtp = match (&c.smtp_url, kind) {
            (Some(u), Kind::Email) => {
                let parsed = reqwest::Url::parse(u)
                    .map_err(|_| anyhow::anyhow!("receiver `{}`: `smtp_url` is not a URL", c.name))?;
                let implicit_tls = match parsed.scheme() {
                    "smtp" => false,
                    "smtps" => true,
                    _ => anyhow::bail!("receiver `{}`: `smtp_url` must be smtp:// or smtps://", c.name),
                };
                let host = parsed.host_str().unwrap_or_default().to_owned();
                let port = parsed.port().unwrap_or(if implicit_tls { 465 } else { 587 });
                let credentials = match (&c.username_env, &c.password_env) {
                    (Some(u), Some(p)) => Some((
                        env_or(&None, &Some(u.clone()), "SMTP user", &c.name)?.unwrap_or_default(),
                        env_or(&None, &Some(p.clone()), "SMTP password", &c.name)?.unwrap_or_default(),
                    )),
                    // user:password in the URL (percent-encoded) when no env is named.
                    (None, None) if !parsed.username().is_empty() => {
                        let decode = |s: &str| {
                            percent_decode(s)
                                .ok_or_else(|| anyhow::anyhow!("receiver `{}`: bad smtp_url credentials", c.name))
                        };
                        Some((decode(parsed.username())?, decode(parsed.password().unwrap_or_default())?))
                    }
                    (None, None) => None,
                    _ => anyhow::bail!("receiver `{}`: give both username_env and password_env", c.name),
                };
                let from = c.from.clone().unwrap_or_default();
                for addr in std::iter::once(&from).chain(&c.to) {
                    addr.parse::<lettre::message::Mailbox>()
                        .map_err(|e| anyhow::anyhow!("receiver `{}`: address `{addr}`: {e}", c.name))?;
                }
                Some(Smtp {
                    host,
                    port,
                    implicit_tls,
                    accept_invalid_certs: c.smtp_accept_invalid_certs,
                    ca_pem: ca_pem.clone(),
                    credentials,
                    from,
                    to: c.to.clone(),
                })
            }
            _ => None,
        };
        Ok(Self {
            name: c.name.clone(),
            kind,
            url,
            http,
            secret,
            alertmanager: c.format.as_deref() == Some("alertmanager"),
            routing_key,
            smtp,
            via: c.via.clone(),
            at_ms: c.at.as_deref().and_then(crate::config::parse_time_of_day).unwrap_or(8 * 3_600_000),
        })
    }

    /// Whether it takes acknowledge / resolve follow-ups.
    pub fn follows_up(&self, what: crate::alerts::FollowUp) -> bool {
        use crate::alerts::FollowUp;
        match (self.kind, what) {
            (Kind::Digest, _) => false,
            (_, FollowUp::Reminder) => true,
            (Kind::PagerDuty, _) => true,
            (Kind::Webhook, FollowUp::Resolve) => true,
            _ => false,
        }
    }

    /// Sends one notification.
    pub async fn deliver(&self, http: &reqwest::Client, n: &NotificationRow, ctx: &Context, now_ms: i64) -> Outcome {
        let http = self.http.as_ref().unwrap_or(http);
        let payload: Value = serde_json::from_str(&n.payload).unwrap_or(Value::Null);
        match self.kind {
            Kind::Webhook => {
                let body = if self.alertmanager {
                    alertmanager_body(n, &payload, &self.name, ctx)
                } else {
                    vigil_body(n, &payload, now_ms)
                };
                let body = body.to_string();
                let ts = (now_ms / 1000).to_string();
                let mut req = http
                    .post(self.url.as_deref().unwrap_or_default())
                    .header("content-type", "application/json")
                    .header("webhook-id", &n.idempotency_key)
                    .header("webhook-timestamp", &ts);
                if let Some(secret) = &self.secret {
                    req = req.header("webhook-signature", sign(secret, &n.idempotency_key, &ts, body.as_bytes()));
                }
                send(req.body(body)).await
            }
            Kind::Slack => {
                let body = slack_body(n, &payload, ctx).to_string();
                send(
                    http.post(self.url.as_deref().unwrap_or_default())
                        .header("content-type", "application/json")
                        .body(body),
                )
                .await
            }
            Kind::PagerDuty => {
                let body =
                    pagerduty_body(n, &payload, self.routing_key.as_deref().unwrap_or_default(), ctx).to_string();
                send(
                    http.post(self.url.as_deref().unwrap_or_default())
                        .header("content-type", "application/json")
                        .body(body),
                )
                .await
            }
            Kind::Email => match &self.smtp {
                Some(smtp) => send_email(smtp, n, &payload, ctx).await,
                None => Outcome::Failed { error: "email receiver without smtp_url".into() },
            },
            Kind::Digest => Outcome::Failed { error: "a digest is delivered through its `via` receiver".into() },
        }
    }
}

/// Decodes `%XX` escapes (URL user info).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What renderers need besides the notification.
#[derive(Debug, Clone)]
pub struct Context {
    /// Base URL for links back to Vigil.
    pub external_url: String,
    /// Delivery timeout.
    pub timeout: Duration,
}

impl Context {
    fn alert_link(&self, id: &Value) -> String {
        format!("{}/#/alerts/{}", self.external_url.trim_end_matches('/'), id)
    }
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

async fn send(req: reqwest::RequestBuilder) -> Outcome {
    match req.send().await {
        Ok(resp) => {
            classify_http(resp.status().as_u16(), resp.headers().get("retry-after").and_then(|v| v.to_str().ok()))
        }
        Err(e) => {
            // reqwest errors can carry the URL (and so a token in it): keep only the kind.
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "request failed"
            };
            Outcome::Retry { after: None, error: kind.into() }
        }
    }
}

/// 2xx delivered; 429 and 5xx retried (honouring `Retry-After`); other 4xx failed.
pub fn classify_http(status: u16, retry_after: Option<&str>) -> Outcome {
    let after = retry_after.and_then(parse_retry_after);
    match status {
        200..=299 => Outcome::Delivered,
        429 => Outcome::Retry { after, error: "HTTP 429 Too Many Requests".into() },
        500..=599 => Outcome::Retry { after, error: format!("HTTP {status}") },
        _ => Outcome::Failed { error: format!("HTTP {status} (not retried)") },
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

fn alert_of(payload: &Value) -> &Value {
    &payload["alert"]
}

fn occurrences(payload: &Value) -> i64 {
    payload["extra"]["occurrences"].as_i64().or_else(|| alert_of(payload)["count"].as_i64()).unwrap_or(1)
}

/// The subject line / fallback text of a notification.
pub fn headline(n: &NotificationRow, payload: &Value) -> String {
    let a = alert_of(payload);
    let title = a["title"].as_str().unwrap_or("alert");
    let sev = a["severity"].as_str().unwrap_or("");
    match n.kind.as_str() {
        "repeat" => format!("[{sev}] {title} ({} occurrences)", occurrences(payload)),
        "acknowledge" => format!("[{sev}] Acknowledged: {title}"),
        "resolve" => format!("[{sev}] Resolved: {title}"),
        "escalation" => format!("[{sev}] ESCALATED (level {}): {title}", payload["extra"]["level"]),
        "summary" => {
            format!("Vigil: {} notifications folded into this summary", payload["items"].as_array().map_or(0, Vec::len))
        }
        "digest" => format!("Vigil daily digest: {}", payload["day"].as_str().unwrap_or_default()),
        _ => format!("[{sev}] {title}"),
    }
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

fn severity_colour(sev: &str) -> &'static str {
    match sev {
        "P1" => "#d0021b",
        "P2" => "#f5a623",
        "P3" => "#f8e71c",
        _ => "#4a90e2",
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
    let sev = a["severity"].as_str().unwrap_or("P4");
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
            "color": severity_colour(sev),
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

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub(1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// PagerDuty severity of a Vigil severity.
pub fn pagerduty_severity(sev: &str) -> &'static str {
    match sev {
        "P1" => "critical",
        "P2" => "error",
        "P3" => "warning",
        _ => "info",
    }
}

/// PagerDuty Events API v2.
pub fn pagerduty_body(n: &NotificationRow, payload: &Value, routing_key: &str, ctx: &Context) -> Value {
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
    let severity = if a.is_null() { "warning" } else { pagerduty_severity(a["severity"].as_str().unwrap_or("P4")) };
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
                "event_seqs": a.get("event_seqs"), "items": payload.get("items"), "kind": n.kind},
        },
        "client": "Vigil",
        "client_url": if a.is_null() { ctx.external_url.clone() } else { ctx.alert_link(&a["id"]) },
    })
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Plain text and HTML bodies of an email.
pub fn email_bodies(n: &NotificationRow, payload: &Value, ctx: &Context) -> (String, String, String) {
    let subject = headline(n, payload);
    let mut text = format!("{subject}\n\n");
    if let Some(items) = payload.get("items").and_then(Value::as_array) {
        for i in items {
            text.push_str(&format!(
                "- [{}] {} (alert {}, {} occurrences)\n",
                i["alert"]["severity"].as_str().unwrap_or(""),
                i["alert"]["title"].as_str().unwrap_or(""),
                i["alert"]["id"],
                i["alert"]["count"]
            ));
        }
    }
    if let Some(report) = payload.get("report") {
        text.push_str("\nDaily security report\n");
        text.push_str(&serde_json::to_string_pretty(report).unwrap_or_default());
        text.push('\n');
    }
    let a = alert_of(payload);
    if !a.is_null() {
        text.push_str(&format!(
            "Alert {}: {}\nSeverity: {}\nRule: {}\nStatus: {}\nOccurrences: {}\nFirst seen: {}\nLast seen: {}\nFields: {}\n",
            a["id"],
            a["title"].as_str().unwrap_or(""),
            a["severity"].as_str().unwrap_or(""),
            a["rule"].as_str().unwrap_or(""),
            a["status"].as_str().unwrap_or(""),
            occurrences(payload),
            a["first_seen"].as_str().unwrap_or(""),
            a["last_seen"].as_str().unwrap_or(""),
            a["fields"],
        ));
        if let Some(actions) = a["actions"].as_array() {
            text.push_str("Suggested actions:\n");
            for act in actions {
                text.push_str(&format!("- {}\n", act.as_str().unwrap_or("")));
            }
        }
        text.push_str(&format!("\nAcknowledge: {}/ack\n", ctx.alert_link(&a["id"])));
    }
    let html = format!(
        "<!doctype html><html><body><pre style=\"font-family:monospace\">{}</pre></body></html>",
        html_escape(&text)
    );
    (subject, text, html)
}

async fn send_email(smtp: &Smtp, n: &NotificationRow, payload: &Value, ctx: &Context) -> Outcome {
    use lettre::message::{Mailbox, MultiPart};
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let (subject, text, html) = email_bodies(n, payload, ctx);
    let mut builder = Message::builder().subject(subject).message_id(Some(format!("<{}@vigil>", n.idempotency_key)));
    match smtp.from.parse::<Mailbox>() {
        Ok(from) => builder = builder.from(from),
        Err(e) => return Outcome::Failed { error: format!("bad from address: {e}") },
    }
    for to in &smtp.to {
        match to.parse::<Mailbox>() {
            Ok(m) => builder = builder.to(m),
            Err(e) => return Outcome::Failed { error: format!("bad to address: {e}") },
        }
    }
    let message = match builder.multipart(MultiPart::alternative_plain_html(text, html)) {
        Ok(m) => m,
        Err(e) => return Outcome::Failed { error: format!("could not build the message: {e}") },
    };
    let mut params =
        TlsParameters::builder(smtp.host.clone()).dangerous_accept_invalid_certs(smtp.accept_invalid_certs);
    if let Some(pem) = &smtp.ca_pem {
        match lettre::transport::smtp::client::Certificate::from_pem(pem) {
            Ok(cert) => params = params.add_root_certificate(cert),
            Err(e) => return Outcome::Failed { error: format!("ca_file: {e}") },
        }
    }
    let params = params.build();
    let tls = match params {
        Ok(p) if smtp.implicit_tls => Tls::Wrapper(p),
        Ok(p) => Tls::Opportunistic(p),
        Err(e) => return Outcome::Failed { error: format!("TLS setup failed: {e}") },
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(ctx.timeout));
    if let Some((user, pass)) = &smtp.credentials {
        transport = transport
            .credentials(lettre::transport::smtp::authentication::Credentials::new(user.clone(), pass.clone()));
    }
    // lettre's errors name the SMTP reply or the I/O / TLS failure, never the credentials.
    let detail = |e: &lettre::transport::smtp::Error| e.to_string().chars().take(300).collect::<String>();
    match transport.build().send(message).await {
        Ok(_) => Outcome::Delivered,
        Err(e) if e.is_permanent() => {
            Outcome::Failed { error: format!("SMTP permanent error (not retried): {}", detail(&e)) }
        }
        Err(e) if e.is_transient() => {
            Outcome::Retry { after: None, error: format!("SMTP transient error: {}", detail(&e)) }
        }
        Err(e) => Outcome::Retry { after: None, error: format!("SMTP connection failed: {}", detail(&e)) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_signature_matches_the_spec_example() {
        // The example of the Standard Webhooks specification.
        let secret = base64::engine::general_purpose::STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn http_statuses_are_classified() {
        assert_eq!(classify_http(202, None), Outcome::Delivered);
        assert!(
            matches!(classify_http(429, Some("7")), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7))
        );
        assert!(matches!(classify_http(503, None), Outcome::Retry { after: None, .. }));
        assert!(matches!(classify_http(404, None), Outcome::Failed { .. }));
        assert!(matches!(classify_http(400, Some("5")), Outcome::Failed { .. }));
        assert!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn pagerduty_severity_mapping() {
        let m: Vec<_> = ["P1", "P2", "P3", "P4"].into_iter().map(pagerduty_severity).collect();
        assert_eq!(m, ["critical", "error", "warning", "info"]);
    }
}
