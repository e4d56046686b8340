//! `email` receivers: SMTP (lettre), STARTTLS when the server offers it (`smtps://` for
//! implicit TLS), credentials from the environment (or the URL), plain text and HTML
//! bodies, `Message-ID` from the idempotency key. `receivers` builds the [`Smtp`] target
//! with [`smtp_from_config`] and calls [`send`] for each notification.

use serde_json::Value;

use super::{Context, Outcome, alert_of, env_or, headline, occurrences};
use crate::config::ReceiverConfig;
use crate::store::NotificationRow;

/// SMTP target.
#[derive(Clone)]
pub(super) struct Smtp {
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

/// The SMTP target of an `email` receiver from its `smtp_url` `u` (credentials from the
/// environment, else from the URL), checking its addresses; `ca_pem` from its `ca_file`.
pub(super) fn smtp_from_config(c: &ReceiverConfig, u: &str, ca_pem: &Option<Vec<u8>>) -> anyhow::Result<Smtp> {
    let parsed =
        reqwest::Url::parse(u).map_err(|_| anyhow::anyhow!("receiver `{}`: `smtp_url` is not a URL", c.name))?;
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
                percent_decode(s).ok_or_else(|| anyhow::anyhow!("receiver `{}`: bad smtp_url credentials", c.name))
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
    Ok(Smtp {
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
