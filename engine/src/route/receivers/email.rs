//! `email` receivers: SMTP (lettre) over TLS: STARTTLS required on `smtp://` (unless
//! `starttls = "opportunistic"`, never with credentials), or `smtps://` for implicit TLS;
//! credentials from the environment (or the URL), plain text and HTML
//! bodies, `Message-ID` from the idempotency key. `receivers` builds the [`Smtp`] target
//! with [`smtp_from_config`] and calls [`send`] for each notification.
//!
//! Attacker text (titles, fields, actions from events) never reaches a header raw: the
//! subject is one line (CR, LF and other control characters become spaces) before lettre
//! encodes it, and the only other headers are the configured addresses and the
//! server-made `Message-ID`. In the plain body titles and actions are one line each (no
//! forged `Acknowledge:` line); the HTML body is the plain text HTML-escaped in a `<pre>`.

use serde_json::Value;

use super::{Context, Outcome, alert_of, env_or, headline, occurrences, one_line, truncate};
use crate::config::ReceiverConfig;
use crate::report::html::escape_html;
use crate::store::NotificationRow;

/// SMTP target.
#[derive(Clone)]
pub(super) struct Smtp {
    host: String,
    port: u16,
    tls: TlsMode,
    accept_invalid_certs: bool,
    /// Extra CA certificates (PEM).
    ca_pem: Option<Vec<u8>>,
    credentials: Option<(String, String)>,
    from: String,
    to: Vec<String>,
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://`: STARTTLS or nothing is sent (a server, or a man in the middle, that does
    /// not offer it gets neither the credentials nor the mail).
    Required,
    /// `smtp://` with `starttls = "opportunistic"` and no credentials: STARTTLS when
    /// offered, else plain text.
    Opportunistic,
}

/// The SMTP target of an `email` receiver from its `smtp_url` `u` (credentials from the
/// environment, else from the URL), checking its addresses; `ca_pem` from its `ca_file`.
pub(super) fn smtp_from_config(c: &ReceiverConfig, u: &str, ca_pem: &Option<Vec<u8>>) -> anyhow::Result<Smtp> {
    let parsed =
        reqwest::Url::parse(u).map_err(|_| anyhow::anyhow!("receiver `{}`: `smtp_url` is not a URL", c.name))?;
    let tls = match (parsed.scheme(), c.starttls.as_deref()) {
        ("smtps", _) => TlsMode::Implicit,
        ("smtp", None | Some("required")) => TlsMode::Required,
        ("smtp", Some("opportunistic")) => TlsMode::Opportunistic,
        ("smtp", Some(other)) => {
            anyhow::bail!("receiver `{}`: `starttls` must be \"required\" or \"opportunistic\", not {other:?}", c.name)
        }
        _ => anyhow::bail!("receiver `{}`: `smtp_url` must be smtp:// or smtps://", c.name),
    };
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port().unwrap_or(if tls == TlsMode::Implicit { 465 } else { 587 });
    let credentials = match (&c.username_env, &c.password_env) {
        (Some(u), Some(p)) => Some((
            env_or(&None, &Some(u.clone()), "SMTP user", &c.name)?.unwrap_or_default(),
            env_or(&None, &Some(p.clone()), "SMTP password", &c.name)?.unwrap_or_default(),
        )),
        // user:password in the URL (percent-encoded) when no env is named.
        (None, None) if !parsed.username().is_empty() => {
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| anyhow::anyhow!("receiver `{}`: bad smtp_url credentials", c.name))
            };
            Some((decode(parsed.username())?, decode(parsed.password().unwrap_or_default())?))
        }
        (None, None) => None,
        _ => anyhow::bail!("receiver `{}`: give both username_env and password_env", c.name),
    };
    // The config check refuses this too; a receiver built any other way must not either.
    if credentials.is_some() && tls == TlsMode::Opportunistic {
        anyhow::bail!(
            "receiver `{}`: SMTP credentials need TLS (starttls = \"required\" or smtps://), not opportunistic STARTTLS",
            c.name
        );
    }
    let from = c.from.clone().unwrap_or_default();
    for addr in std::iter::once(&from).chain(&c.to) {
        addr.parse::<lettre::message::Mailbox>()
            .map_err(|e| anyhow::anyhow!("receiver `{}`: address `{addr}`: {e}", c.name))?;
    }
    Ok(Smtp {
        host,
        port,
        tls,
        accept_invalid_certs: c.smtp_accept_invalid_certs,
        ca_pem: ca_pem.clone(),
        credentials,
        from,
        to: c.to.clone(),
    })
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

/// Plain text and HTML bodies of an email.
pub fn email_bodies(n: &NotificationRow, payload: &Value, ctx: &Context) -> (String, String, String) {
    if n.kind == "report" {
        return super::report_email_bodies(n, payload, ctx);
    }
    // `headline` is one line already; the cap keeps a long title from making a subject
    // that clients cut anyway.
    let subject = truncate(&headline(n, payload), 250);
    let mut text = format!("{subject}\n\n");
    if let Some(items) = payload.get("items").and_then(Value::as_array) {
        for i in items {
            text.push_str(&format!(
                "- [{}] {} (alert {}, {} occurrences)\n",
                one_line(i["alert"]["severity"].as_str().unwrap_or("")),
                one_line(i["alert"]["title"].as_str().unwrap_or("")),
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
            one_line(a["title"].as_str().unwrap_or("")),
            one_line(a["severity"].as_str().unwrap_or("")),
            one_line(a["rule"].as_str().unwrap_or("")),
            one_line(a["status"].as_str().unwrap_or("")),
            occurrences(payload),
            one_line(a["first_seen"].as_str().unwrap_or("")),
            one_line(a["last_seen"].as_str().unwrap_or("")),
            a["fields"],
        ));
        if let Some(actions) = a["actions"].as_array() {
            text.push_str("Suggested actions:\n");
            for act in actions {
                text.push_str(&format!("- {}\n", one_line(act.as_str().unwrap_or(""))));
            }
        }
        text.push_str(&format!("\nAcknowledge: {}/ack\n", ctx.alert_link(&a["id"])));
    }
    let html = format!(
        "<!doctype html><html><body><pre style=\"font-family:monospace\">{}</pre></body></html>",
        escape_html(&text)
    );
    (subject, text, html)
}

pub(super) async fn send(smtp: &Smtp, n: &NotificationRow, payload: &Value, ctx: &Context) -> Outcome {
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
    let body = MultiPart::alternative_plain_html(text, html);
    // A scheduled report also carries its JSON, attached.
    let body = if n.kind == "report" {
        let json = serde_json::to_string_pretty(&payload["report"]).unwrap_or_default();
        let content_type = lettre::message::header::ContentType::parse("application/json").expect("a valid MIME type");
        MultiPart::mixed().multipart(body).singlepart(
            lettre::message::Attachment::new(super::report::attachment_name(payload)).body(json, content_type),
        )
    } else {
        body
    };
    let message = match builder.multipart(body) {
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
    let tls = match (params, smtp.tls) {
        (Ok(p), TlsMode::Implicit) => Tls::Wrapper(p),
        (Ok(p), TlsMode::Required) => Tls::Required(p),
        (Ok(p), TlsMode::Opportunistic) => Tls::Opportunistic(p),
        (Err(e), _) => return Outcome::Failed { error: format!("TLS setup failed: {e}") },
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
        // With TLS required, lettre stops before AUTH and MAIL when the server does not
        // offer STARTTLS (a client-side error naming it): retried, as the server may be
        // fixed, and visible as such.
        Err(e) if e.is_client() && smtp.tls == TlsMode::Required => Outcome::Retry {
            after: None,
            error: format!(
                "SMTP with starttls = \"required\" (nothing is sent to a server without STARTTLS): {}",
                detail(&e)
            ),
        },
        Err(e) => Outcome::Retry { after: None, error: format!("SMTP connection failed: {}", detail(&e)) },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::{Context, email_bodies};
    use crate::store::NotificationRow;

    #[test]
    fn attacker_text_neither_adds_header_or_body_lines_nor_html() {
        let n = NotificationRow { kind: "trigger".into(), ..Default::default() };
        let payload = json!({"alert": {"id": 7, "severity": "P2", "rule": "account_lockout",
            "title": "Account locked: x\r\nBcc: victim@evil.example\r\n\r\n<b>hi</b>",
            "actions": ["ok\nAcknowledge: https://evil.example/ack", "<script>alert(1)</script>"],
            "fields": {"user_id": "x\r\nBcc: victim@evil.example"}}});
        let ctx =
            Context { external_url: "https://vigil.example".into(), timeout: Duration::from_secs(1), rules: None };
        let (subject, text, html) = email_bodies(&n, &payload, &ctx);
        assert!(!subject.contains(['\r', '\n']), "{subject:?}");
        assert!(!text.lines().any(|l| l.starts_with("Bcc:")), "{text}");
        let acks: Vec<&str> = text.lines().filter(|l| l.starts_with("Acknowledge:")).collect();
        assert_eq!(acks, ["Acknowledge: https://vigil.example/#/alerts/7/ack"], "only the server's own link");
        assert!(!html.contains("<script>") && !html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
