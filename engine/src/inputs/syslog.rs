//! One `[[inputs.syslog]]` listener: TCP (or TLS, or mutual TLS) connections from the
//! `allow`ed networks, at most `max_connections` at once, each closed after
//! `idle_timeout_secs` without data. Bytes are framed (`ingest::syslog::Framer`), each
//! frame parsed into an event, validated and masked; what one read brought in is committed
//! as one batch before the next read (so a slow database slows the sender through TCP,
//! not memory). A frame that cannot be read or validated is refused alone: logged with the
//! listener, the peer and the reason (never the content), counted in
//! `vigil_syslog_refused_total`, nothing of it stored. A broken framing (a count over the
//! bound) or a failed commit closes the connection (the sender reconnects and resends what
//! it had not delivered, as rsyslog does).
//!
//! With a `token`, every frame must carry it as RFC 5424 structured data `[vigil
//! token="..."]` (compared in constant time, removed before the event is stored); a frame
//! without it closes the connection, nothing of that read stored, counted in
//! `vigil_syslog_connections_refused_total`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::config::SyslogInput;
use crate::ingest::syslog::{Defaults, Framer, parse_frame};
use crate::ingest::{Enricher, Masker, validate_each};
use crate::ledger::sequencer::SequencerHandle;
use crate::net::IpNet;
use crate::telemetry::Metrics;

/// Bytes read from a connection at a time (and so the most one batch is made of).
const READ_BYTES: usize = 64 * 1024;

struct Shared {
    name: String,
    ingest_key: String,
    defaults: Defaults,
    max_message: usize,
    idle: Duration,
    allow: Vec<IpNet>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    sequencer: SequencerHandle,
    masker: Arc<Masker>,
    enricher: Arc<Enricher>,
    metrics: Arc<Metrics>,
    /// The shared secret every frame must carry (`token`).
    token: Option<String>,
}

/// A syslog listener.
#[derive(Debug)]
pub struct Listener;

impl Listener {
    /// Binds the listener and spawns its accept loop (aborting the task closes every
    /// connection).
    pub async fn bind(
        cfg: &SyslogInput,
        sequencer: SequencerHandle,
        masker: Arc<Masker>,
        enricher: Arc<Enricher>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let allow =
            cfg.allow.iter().map(|a| IpNet::parse(a)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => Some(
                tls_acceptor(cert, key, cfg.client_ca.as_deref())
                    .with_context(|| format!("syslog listener `{}`: TLS", cfg.name))?,
            ),
            _ => None,
        };
        let token = match (&cfg.token, &cfg.token_env) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                anyhow::anyhow!("syslog listener `{}`: the environment variable {var} (token_env) is not set", cfg.name)
            })?),
            (None, None) => None,
        };
        let listener = tokio::net::TcpListener::bind(&cfg.address)
            .await
            .with_context(|| format!("syslog listener `{}`: cannot listen on {}", cfg.name, cfg.address))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: cfg.name.clone(),
            ingest_key: format!("syslog:{}", cfg.name),
            defaults: Defaults { category: cfg.category.clone(), action: cfg.action.clone() },
            max_message: cfg.max_message_bytes,
            idle: Duration::from_secs(cfg.idle_timeout_secs),
            allow,
            tls,
            sequencer,
            masker,
            enricher,
            metrics,
            token,
        });
        let slots = Arc::new(Semaphore::new(cfg.max_connections));
        let task = tokio::spawn(accept_loop(listener, shared, slots));
        Ok((addr, task))
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>, slots: Arc<Semaphore>) {
    // Dropped with the task: every connection goes with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let ip = peer.ip().to_canonical();
                    if !shared.allow.iter().any(|net| net.contains(ip)) {
                        Metrics::add(&shared.metrics.syslog_connections_refused, 1);
                        tracing::warn!(listener = %shared.name, %peer, "Syslog connection refused: address not in `allow`");
                        continue;
                    }
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        Metrics::add(&shared.metrics.syslog_connections_refused, 1);
                        tracing::warn!(listener = %shared.name, %peer, "Syslog connection refused: max_connections reached");
                        continue;
                    };
                    connections.spawn(serve(shared.clone(), stream, ip, permit));
                }
                Err(e) => {
                    tracing::warn!(listener = %shared.name, error = %e, "Syslog accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(shared: Arc<Shared>, stream: tokio::net::TcpStream, peer: IpAddr, _slot: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    match &shared.tls {
        Some(acceptor) => match tokio::time::timeout(shared.idle, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => read_loop(&shared, tls, peer).await,
            Ok(Err(e)) => {
                Metrics::add(&shared.metrics.syslog_connections_refused, 1);
                tracing::warn!(listener = %shared.name, %peer, error = %e, "Syslog TLS handshake failed");
            }
            Err(_) => {
                Metrics::add(&shared.metrics.syslog_connections_refused, 1);
                tracing::warn!(listener = %shared.name, %peer, "Syslog TLS handshake timed out");
            }
        },
        None => read_loop(&shared, stream, peer).await,
    }
}

async fn read_loop<S: AsyncRead + Unpin>(shared: &Shared, mut stream: S, peer: IpAddr) {
    let mut framer = Framer::new(shared.max_message);
    let mut buf = vec![0u8; READ_BYTES];
    loop {
        let n = match tokio::time::timeout(shared.idle, stream.read(&mut buf)).await {
            Err(_) => {
                tracing::debug!(listener = %shared.name, %peer, "Idle syslog connection closed");
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(listener = %shared.name, %peer, error = %e, "Syslog connection failed");
                return;
            }
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            // At the end, a last line without its newline is still a message.
            let mut frames = Vec::new();
            while let Ok(Some(frame)) = framer.next_frame() {
                frames.push(frame);
            }
            if framer.pending() > 0 {
                framer.push(b"\n");
                if let Ok(Some(frame)) = framer.next_frame() {
                    frames.push(frame);
                }
            }
            let _ = store(shared, frames, peer).await;
            return;
        }
        framer.push(&buf[..n]);
        let mut frames = Vec::new();
        let broken = loop {
            match framer.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if store(shared, frames, peer).await.is_err() {
            return;
        }
        if let Some(e) = broken {
            Metrics::add(&shared.metrics.syslog_refused, 1);
            tracing::warn!(listener = %shared.name, %peer, problem = %e, "Syslog connection closed: the stream cannot be framed");
            return;
        }
    }
}

/// Parses, validates and commits the frames of one read; refused frames are logged and
/// counted. An error means the commit failed (the connection is closed).
async fn store(shared: &Shared, frames: Vec<Vec<u8>>, peer: IpAddr) -> Result<(), ()> {
    if frames.is_empty() {
        return Ok(());
    }
    let now = crate::event::now_ms();
    let mut values = Vec::with_capacity(frames.len());
    for frame in &frames {
        let parsed = parse_frame(frame, &shared.defaults, now);
        if let Some(token) = &shared.token
            && !parsed.as_ref().is_ok_and(|v| carries_token(v, token))
        {
            Metrics::add(&shared.metrics.syslog_connections_refused, 1);
            tracing::warn!(listener = %shared.name, %peer, "Syslog connection refused: a message without the listener's token");
            return Err(());
        }
        match parsed {
            Ok(mut v) => {
                if shared.token.is_some() {
                    drop_token(&mut v);
                }
                if let Some(meta) = v.pointer_mut("/details/syslog").and_then(Value::as_object_mut) {
                    meta.insert("peer".into(), Value::String(peer.to_string()));
                }
                values.push(v);
            }
            Err(problem) => {
                Metrics::add(&shared.metrics.syslog_refused, 1);
                tracing::warn!(listener = %shared.name, %peer, %problem, "Syslog message refused");
            }
        }
    }
    let mut events = Vec::with_capacity(values.len());
    for result in validate_each(values, &shared.masker) {
        match result {
            Ok(mut ev) => {
                ev.ingest_key = Some(shared.ingest_key.clone());
                events.push(ev);
            }
            Err(problems) => {
                Metrics::add(&shared.metrics.syslog_refused, 1);
                let what: Vec<String> = problems.iter().map(|p| format!("{} {}", p.field, p.problem)).collect();
                tracing::warn!(listener = %shared.name, %peer, problem = %what.join("; "), "Syslog message refused");
            }
        }
    }
    if events.is_empty() {
        return Ok(());
    }
    shared.enricher.apply(&mut events, &shared.masker);
    let n = events.len() as u64;
    match shared.sequencer.submit_client(events).await {
        Ok(acks) => {
            let stored = acks.iter().filter(|a| !a.duplicate).count() as u64;
            Metrics::add(&shared.metrics.syslog_stored, stored);
            Metrics::add(&shared.metrics.events_stored, stored);
            Metrics::add(&shared.metrics.events_duplicate, n - stored);
            Ok(())
        }
        Err(e) => {
            Metrics::add(&shared.metrics.ingest_failed, 1);
            tracing::error!(listener = %shared.name, %peer, error = %e, messages = n, "Syslog messages not stored; closing the connection");
            Err(())
        }
    }
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<&std::path::Path>,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read tls_cert {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("tls_cert {} is not PEM certificates", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "tls_cert {} holds no certificate", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
    let builder = rustls::ServerConfig::builder();
    let config = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in
                CertificateDer::pem_file_iter(ca).with_context(|| format!("cannot read client_ca {}", ca.display()))?
            {
                roots.add(c.with_context(|| format!("client_ca {} is not PEM certificates", ca.display()))?)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
            builder.with_client_cert_verifier(verifier).with_single_cert(certs, key)?
        }
        None => builder.with_no_client_auth().with_single_cert(certs, key)?,
    };
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Whether the event's RFC 5424 structured data holds `[vigil token="<token>"]` (or an
/// SD-ID `vigil@<number>`), compared in constant time.
fn carries_token(event: &Value, token: &str) -> bool {
    let sd = event.pointer("/details/syslog/structured_data").and_then(Value::as_str).unwrap_or("");
    let (found, _) = split_vigil_element(sd);
    found.is_some_and(|t| bool::from(subtle::ConstantTimeEq::ct_eq(t.as_bytes(), token.as_bytes())))
}

/// Removes the `vigil` element (the token) from the stored structured data.
fn drop_token(event: &mut Value) {
    let Some(meta) = event.pointer_mut("/details/syslog").and_then(Value::as_object_mut) else { return };
    let rest = meta.get("structured_data").and_then(Value::as_str).map(|sd| split_vigil_element(sd).1);
    match rest {
        Some(rest) if rest.is_empty() => {
            meta.remove("structured_data");
        }
        Some(rest) => {
            meta.insert("structured_data".into(), Value::String(rest));
        }
        None => {}
    }
}

/// Splits RFC 5424 structured data into the `token` param of its `vigil` element and the
/// other elements (as they were).
fn split_vigil_element(sd: &str) -> (Option<String>, String) {
    let (mut token, mut rest) = (None, String::new());
    let bytes = sd.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] == b'[' {
        let start = i;
        let (mut escaped, mut quoted) = (false, false);
        i += 1;
        while i < bytes.len() {
            match bytes[i] {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = !quoted,
                b']' if !quoted => break,
                _ => {}
            }
            i += 1;
        }
        i = (i + 1).min(bytes.len());
        let element = &sd[start..i];
        let inner = element.trim_start_matches('[').trim_end_matches(']');
        let (id, params) = inner.split_once(' ').unwrap_or((inner, ""));
        if id == "vigil" || id.starts_with("vigil@") {
            token = sd_param(params, "token");
        } else {
            rest.push_str(element);
        }
    }
    (token, rest)
}

/// The value of `name="..."` among SD params (`\"`, `\\` and `\]` unescaped).
fn sd_param(mut params: &str, name: &str) -> Option<String> {
    loop {
        let (key, after) = params.trim_start().split_once("=\"")?;
        let (mut value, mut escaped, mut end) = (String::new(), false, None);
        for (j, c) in after.char_indices() {
            match c {
                _ if escaped => {
                    value.push(c);
                    escaped = false;
                }
                '\\' => escaped = true,
                '"' => {
                    end = Some(j);
                    break;
                }
                _ => value.push(c),
            }
        }
        let end = end?;
        if key == name {
            return Some(value);
        }
        params = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_element_is_found_and_removed() {
        let sd = r#"[meta x="a]b"][vigil@32473 token="s3cret-token-value\"x" other="1"][origin ip="10.0.0.1"]"#;
        let (token, rest) = split_vigil_element(sd);
        assert_eq!(token.as_deref(), Some(r#"s3cret-token-value"x"#));
        assert_eq!(rest, r#"[meta x="a]b"][origin ip="10.0.0.1"]"#);
        assert_eq!(split_vigil_element(r#"[vigil other="1"]"#), (None, String::new()));
        assert_eq!(split_vigil_element("-").0, None);
        assert_eq!(split_vigil_element(r#"[vigilx token="t"]"#).0, None, "another SD-ID");
        assert_eq!(split_vigil_element(r#"[vigil token="unterminated]"#).0, None);
    }
}
