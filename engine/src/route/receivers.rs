//! Receivers: each notification rendered in its ecosystem's own format and sent. This file
//! holds what the kinds share (the [`Receiver`] resolved from config, [`Outcome`] and the
//! HTTP status classification, the headline); `webhook`, `slack`, `pagerduty` and `email`
//! each encode and send their own kind, and `report` encodes a scheduled security report
//! for each. The `outbox` calls [`Receiver::deliver`].
//!
//! Secrets (URLs, signing secrets, routing keys, SMTP credentials) are resolved once at
//! start and never formatted into logs or errors: errors name the receiver and the status.

mod email;
mod ocsf;
mod pagerduty;
mod report;
mod slack;
mod webhook;

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::config::ReceiverConfig;
use crate::store::NotificationRow;

pub use email::email_bodies;
pub use ocsf::{OCSF_VERSION, ocsf_body};
pub use pagerduty::{pagerduty_body, pagerduty_severity};
pub use report::{report_email_bodies, report_pagerduty_body, report_slack_body, report_webhook_body};
pub use slack::slack_body;
pub use webhook::{alertmanager_body, sign, sign_v1a, vigil_body};

/// The kinds of receiver `[[receivers]] kind` names.
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
    /// Its name in `[[receivers]] kind`.
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

/// A receiver with its secrets resolved.
#[derive(Clone)]
pub struct Receiver {
    /// Its `[[receivers]] name`.
    pub name: String,
    pub kind: Kind,
    url: Option<String>,
    /// Its own HTTP client when it trusts extra CAs (`ca_file`).
    http: Option<reqwest::Client>,
    secret: Option<Vec<u8>>,
    /// Standard Webhooks `v1a`: the Ed25519 key that signs (a `whsk_` secret).
    ed25519: Option<ed25519_dalek::SigningKey>,
    alertmanager: bool,
    ocsf: bool,
    routing_key: Option<String>,
    smtp: Option<email::Smtp>,
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
        /// The server's `Retry-After`, when it gave one.
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
        let mut ed25519 = None;
        let secret = match env_or(&c.secret, &c.secret_env, "signing secret", &c.name)? {
            Some(s) if s.starts_with("whsk_") => {
                ed25519 = Some(signing_key(&s["whsk_".len()..]).ok_or_else(|| {
                    anyhow::anyhow!(
                        "receiver `{}`: an Ed25519 signing secret is whsk_ followed by the base64 of a 32-byte seed (or a 64-byte key pair)",
                        c.name
                    )
                })?);
                None
            }
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
            (Some(u), Kind::Email) => Some(email::smtp_from_config(c, u, &ca_pem)?),
            _ => None,
        };
        Ok(Self {
            name: c.name.clone(),
            kind,
            url,
            http,
            secret,
            ed25519,
            alertmanager: c.format.as_deref() == Some("alertmanager"),
            ocsf: c.format.as_deref() == Some("ocsf"),
            routing_key,
            smtp,
            via: c.via.clone(),
            at_ms: c.at.as_deref().and_then(crate::config::parse_time_of_day).unwrap_or(8 * 3_600_000),
        })
    }

    /// The Standard Webhooks public key (`whpk_<base64>`) receivers verify `v1a` signatures
    /// with, when it signs with Ed25519.
    pub fn public_key(&self) -> Option<String> {
        use base64::Engine as _;
        self.ed25519
            .as_ref()
            .map(|k| format!("whpk_{}", base64::engine::general_purpose::STANDARD.encode(k.verifying_key().as_bytes())))
    }

    /// Whether it takes acknowledge / resolve follow-ups: PagerDuty (its `acknowledge` and
    /// `resolve` event actions), Slack (a new message: an incoming webhook cannot edit the
    /// first one) and `vigil` webhooks take both; Alertmanager-format webhooks only the
    /// resolve (v4 has no acknowledged state); email takes neither (one mail per alert
    /// and reminder, no status mail), digests neither.
    pub fn follows_up(&self, what: crate::alerts::FollowUp) -> bool {
        use crate::alerts::FollowUp;
        match (self.kind, what) {
            (Kind::Digest, _) => false,
            (_, FollowUp::Reminder) => true,
            (Kind::PagerDuty | Kind::Slack, _) => true,
            (Kind::Webhook, FollowUp::Resolve) => true,
            (Kind::Webhook, FollowUp::Acknowledge) => !self.alertmanager,
            (Kind::Email, _) => false,
        }
    }

    /// Sends one notification.
    pub async fn deliver(&self, http: &reqwest::Client, n: &NotificationRow, ctx: &Context, now_ms: i64) -> Outcome {
        let http = self.http.as_ref().unwrap_or(http);
        let payload: Value = serde_json::from_str(&n.payload).unwrap_or(Value::Null);
        match self.kind {
            Kind::Webhook => webhook::deliver(self, http, n, &payload, ctx, now_ms).await,
            Kind::Slack => slack::deliver(self, http, n, &payload, ctx).await,
            Kind::PagerDuty => pagerduty::deliver(self, http, n, &payload, ctx).await,
            Kind::Email => match &self.smtp {
                Some(smtp) => email::send(smtp, n, &payload, ctx).await,
                None => Outcome::Failed { error: "email receiver without smtp_url".into() },
            },
            Kind::Digest => Outcome::Failed { error: "a digest is delivered through its `via` receiver".into() },
        }
    }
}

/// An Ed25519 signing key from the base64 of its 32-byte seed or 64-byte key pair.
fn signing_key(b64: &str) -> Option<ed25519_dalek::SigningKey> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let seed: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
    (bytes.len() == 32 || bytes.len() == 64).then(|| ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// What renderers need besides the notification.
#[derive(Clone)]
pub struct Context {
    /// Base URL for links back to Vigil.
    pub external_url: String,
    /// Delivery timeout for SMTP (the HTTP clients carry their own).
    pub timeout: Duration,
    /// The deployed rules (their MITRE ids go into OCSF findings).
    pub rules: Option<std::sync::Arc<crate::rules::RuleRegistry>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("external_url", &self.external_url).finish_non_exhaustive()
    }
}

impl Context {
    /// The MITRE ATT&CK ids of a deployed rule's manifest (none when it is gone).
    fn mitre_of(&self, rule: &str) -> Vec<String> {
        self.rules.as_ref().map(|r| r.mitre_of(rule)).unwrap_or_default()
    }

    fn alert_link(&self, id: &Value) -> String {
        format!("{}/#/alerts/{}", self.external_url.trim_end_matches('/'), id)
    }
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

/// The subject line / fallback text of a notification: always one line (see [`one_line`]),
/// whatever the alert's title holds; each receiver escapes it for its own format.
pub fn headline(n: &NotificationRow, payload: &Value) -> String {
    one_line(&headline_text(n, payload))
}

fn headline_text(n: &NotificationRow, payload: &Value) -> String {
    let a = alert_of(payload);
    let title = a["title"].as_str().unwrap_or("alert");
    let sev = a["severity"].as_str().unwrap_or("");
    match n.kind.as_str() {
        "repeat" => format!("[{sev}] {title} ({} occurrences)", occurrences(payload)),
        "acknowledge" => format!("[{sev}] Acknowledged by {}: {title}", actor(payload)),
        "resolve" => match payload["extra"]["disposition"].as_str() {
            Some(d) => format!("[{sev}] Resolved ({}) by {}: {title}", d.replace('_', " "), actor(payload)),
            None => format!("[{sev}] Resolved by {}: {title}", actor(payload)),
        },
        "trigger" if payload["extra"]["reopened"] == true => {
            format!("[{sev}] Reopened by {}: {title}", actor(payload))
        }
        "escalation" => format!("[{sev}] ESCALATED (level {}): {title}", payload["extra"]["level"]),
        "summary" => {
            format!("Vigil: {} notifications folded into this summary", payload["items"].as_array().map_or(0, Vec::len))
        }
        "digest" => format!("Vigil daily digest: {}", payload["day"].as_str().unwrap_or_default()),
        "report" => format!(
            "Vigil security report: {} of {}",
            payload["period"].as_str().unwrap_or_default(),
            payload["date"].as_str().unwrap_or_default()
        ),
        _ => format!("[{sev}] {title}"),
    }
}

/// Who acknowledged, resolved or reopened the alert of a follow-up: the API key's name,
/// else its id (`someone` for rows written before follow-ups named the actor).
pub fn actor(payload: &Value) -> String {
    let extra = &payload["extra"];
    let name = extra["actor_name"].as_str().filter(|s| !s.is_empty());
    one_line(name.or_else(|| extra["actor"].as_str()).unwrap_or("someone"))
}

/// The comment of a follow-up, if any (one line).
pub fn comment(payload: &Value) -> Option<String> {
    payload["extra"]["comment"].as_str().map(str::trim).filter(|c| !c.is_empty()).map(one_line)
}

/// Attacker text made one line: control characters (CR, LF, tab, ...), the Unicode line
/// and paragraph separators and the bidirectional overrides and isolates (which can make
/// `moc.live` read as `evil.com`) become spaces. Titles and list items go through it, so
/// text from an event can neither add lines (a fake list item, a mail header) nor reorder
/// what is displayed.
pub fn one_line(s: &str) -> String {
    let unsafe_char = |c: char| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return s.to_owned();
    }
    s.chars().map(|c| if unsafe_char(c) { ' ' } else { c }).collect()
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Outcome, classify_http, parse_retry_after};

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
}
