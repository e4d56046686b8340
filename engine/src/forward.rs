//! Forwarders (`[[forwarders]]`): each pushes committed events to a SIEM, in seq order, at
//! least once, from a durable cursor kept in the database (`forwarder_cursors`). A
//! forwarder reads the log through the store's read side (never the writer, never the
//! sequencer's queue), so a slow or dead SIEM never slows ingest: it only falls behind
//! (its lag is in `GET /v1/forwarders` and `/metrics`). A failed batch is retried with
//! exponential backoff (1 s doubling to 60 s); after 5 failures in a row the breaker opens
//! and the forwarder waits 60 s between attempts until one succeeds. The cursor advances
//! only past a batch that was delivered (or that the filters left empty), and is stored
//! after every batch, so a restart resends at most the batch in flight.

pub mod format;
mod nats;
pub mod ocsf;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::config::{Config, ForwarderConfig};
use crate::store::Store;

/// One metric: name, type, help and how to read it from a forwarder's status.
type Series = (&'static str, &'static str, &'static str, fn(&Status) -> String);

/// How often an idle forwarder looks for new events.
const POLL: Duration = Duration::from_millis(200);
/// Failures in a row that open the breaker.
const BREAKER_AFTER: u32 = 5;
/// Longest wait between attempts (and the breaker's wait).
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What a forwarder has done, for the API and the metrics.
#[derive(Debug, Default, Clone)]
struct Status {
    cursor: i64,
    head: i64,
    sent: u64,
    batches: u64,
    errors: u64,
    consecutive_failures: u32,
    last_error: Option<String>,
    last_error_at: Option<i64>,
    last_sent_at: Option<i64>,
}

/// One forwarder.
pub struct Forwarder {
    config: ForwarderConfig,
    token: Option<String>,
    tls: Option<tokio_rustls::TlsConnector>,
    status: Mutex<Status>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("name", &self.config.name).finish_non_exhaustive()
    }
}

/// A forwarder's connection (syslog, NATS).
enum Conn {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

/// The TLS client of a syslog forwarder: the public roots (webpki-roots) and `ca_file`,
/// and a client certificate when `tls_cert` is set.
fn tls_connector(cfg: &ForwarderConfig) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use anyhow::Context as _;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(ca) = &cfg.ca_file {
        for cert in
            CertificateDer::pem_file_iter(ca).with_context(|| format!("cannot read ca_file {}", ca.display()))?
        {
            roots.add(cert.with_context(|| format!("ca_file {} is not PEM certificates", ca.display()))?)?;
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("cannot read tls_cert {}", cert.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("tls_cert {} is not PEM certificates", cert.display()))?;
            let key =
                PrivateKeyDer::from_pem_file(key).with_context(|| format!("cannot read tls_key {}", key.display()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Whether this node may forward now (cluster mode: it holds detection slot 0's lease).
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

/// The configured forwarders and their tasks.
#[derive(Debug, Default)]
pub struct Forwarders {
    list: Vec<Arc<Forwarder>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stopped: Arc<AtomicBool>,
}

impl Forwarders {
    /// Starts every configured forwarder. A `token_env` that is not set stops the start
    /// with a message naming it.
    pub fn start(config: &Config, store: Store) -> anyhow::Result<Forwarders> {
        Self::start_gated(config, store, None)
    }

    /// [`Self::start`], forwarding only while `gate` says so (cluster mode: on the node
    /// holding detection slot 0's lease, so the shared cursor has one sender at a time; a node
    /// that becomes the sender reads the shared cursor again first).
    pub fn start_gated(config: &Config, store: Store, gate: Option<Gate>) -> anyhow::Result<Forwarders> {
        let mut out = Forwarders::default();
        let http = crate::net::http_client(Duration::from_secs(30)).build()?;
        for cfg in &config.forwarders {
            let token = match (&cfg.token, &cfg.token_env) {
                (Some(t), _) => Some(t.clone()),
                (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                    anyhow::anyhow!("forwarder `{}`: the environment variable {var} (token_env) is not set", cfg.name)
                })?),
                (None, None) => None,
            };
            let tls = cfg
                .tls
                .then(|| tls_connector(cfg))
                .transpose()
                .map_err(|e| anyhow::anyhow!("forwarder `{}`: TLS: {e:#}", cfg.name))?;
            let f = Arc::new(Forwarder { config: cfg.clone(), token, tls, status: Mutex::default() });
            let task = tokio::spawn(f.clone().run(store.clone(), http.clone(), out.stopped.clone(), gate.clone()));
            tracing::info!(name = %cfg.name, kind = %cfg.kind, "Forwarder started");
            out.list.push(f);
            out.tasks.push(task);
        }
        Ok(out)
    }

    /// Stops every forwarder (a batch in flight is resent after the restart).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
    }

    /// `GET /v1/forwarders`.
    pub fn describe(&self) -> Vec<Value> {
        self.list.iter().map(|f| f.describe()).collect()
    }

    /// Prometheus series per forwarder.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        if self.list.is_empty() {
            return;
        }
        let series: [Series; 5] = [
            (
                "vigil_forwarder_cursor_seq",
                "gauge",
                "Seq of the last event a forwarder delivered or passed over.",
                |s| s.cursor.to_string(),
            ),
            ("vigil_forwarder_lag_events", "gauge", "Committed events a forwarder has not reached yet.", |s| {
                (s.head - s.cursor).max(0).to_string()
            }),
            ("vigil_forwarder_events_sent_total", "counter", "Events delivered by a forwarder.", |s| {
                s.sent.to_string()
            }),
            ("vigil_forwarder_errors_total", "counter", "Failed deliveries of a forwarder.", |s| s.errors.to_string()),
            ("vigil_forwarder_breaker_open", "gauge", "1 while a forwarder's breaker is open.", |s| {
                u8::from(s.consecutive_failures >= BREAKER_AFTER).to_string()
            }),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for f in &self.list {
                let s = f.status();
                let _ =
                    writeln!(out, "{name}{{forwarder=\"{}\"}} {}", crate::telemetry::label(&f.config.name), value(&s));
            }
        }
    }
}

impl Forwarder {
    fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    fn describe(&self) -> Value {
        let s = self.status();
        let c = &self.config;
        // Where it sends, without anything secret: the syslog address, or the URL's
        // scheme, host and port (never user info, path or query).
        let target = match c.kind.as_str() {
            "syslog" => c.address.clone().unwrap_or_default(),
            "nats" => format!("{} {}", c.address.as_deref().unwrap_or(""), c.subject.as_deref().unwrap_or("")),
            _ => c
                .url
                .as_deref()
                .and_then(|u| reqwest::Url::parse(u).ok())
                .map(|u| {
                    format!(
                        "{}://{}{}",
                        u.scheme(),
                        u.host_str().unwrap_or(""),
                        u.port().map(|p| format!(":{p}")).unwrap_or_default()
                    )
                })
                .unwrap_or_default(),
        };
        json!({
            "name": c.name,
            "kind": c.kind,
            "format": self.format(),
            "target": target,
            "filters": {"categories": c.categories, "min_severity": c.min_severity},
            "cursor": s.cursor,
            "head": s.head,
            "lag": (s.head - s.cursor).max(0),
            "sent": s.sent,
            "batches": s.batches,
            "errors": s.errors,
            "consecutive_failures": s.consecutive_failures,
            "breaker": if s.consecutive_failures >= BREAKER_AFTER { "open" } else { "closed" },
            "last_error": s.last_error,
            "last_error_at": s.last_error_at.map(crate::event::format_rfc3339_ms),
            "last_sent_at": s.last_sent_at.map(crate::event::format_rfc3339_ms),
        })
    }

    fn format(&self) -> &str {
        match self.config.kind.as_str() {
            "syslog" => self.config.format.as_deref().unwrap_or("rfc5424"),
            "ocsf_http" => "ocsf_json",
            "nats" => "json",
            _ => "hec_json",
        }
    }

    /// Whether the filters let an event through.
    fn wants(&self, ev: &Value) -> bool {
        let c = &self.config;
        let category = ev.get("category").and_then(Value::as_str).unwrap_or("");
        if !c.categories.is_empty() && !c.categories.iter().any(|k| k == category) {
            return false;
        }
        let rank = |s: &str| ["low", "medium", "high", "critical"].iter().position(|x| *x == s);
        match (&c.min_severity, ev.get("severity").and_then(Value::as_str).and_then(rank)) {
            (Some(min), Some(sev)) => rank(min).is_some_and(|m| sev >= m),
            (Some(_), None) => false,
            (None, _) => true,
        }
    }

    async fn run(self: Arc<Self>, store: Store, http: reqwest::Client, stopped: Arc<AtomicBool>, gate: Option<Gate>) {
        let name = self.config.name.clone();
        let mut cursor = loop {
            match store.forwarder_cursor(&name).await {
                Ok(Some(seq)) => break seq,
                Ok(None) if self.config.start == "end" => match store.head().await {
                    Ok(head) => break head.seq,
                    Err(e) => tracing::warn!(forwarder = %name, error = %e, "Forwarder cannot read the head yet"),
                },
                Ok(None) => break 0,
                Err(e) => tracing::warn!(forwarder = %name, error = %e, "Forwarder cannot read its cursor yet"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        self.update(|s| s.cursor = cursor);
        let mut conn: Option<Conn> = None;
        // Gated: whether this node was the sender at the last look.
        let mut sending = gate.is_none();
        while !stopped.load(Ordering::Relaxed) {
            if let Some(gate) = &gate {
                if !gate() {
                    sending = false;
                    conn = None;
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                if !sending {
                    // Another node may have moved the shared cursor meanwhile.
                    match store.forwarder_cursor(&name).await {
                        Ok(seq) => cursor = seq.unwrap_or(cursor),
                        Err(e) => {
                            tracing::warn!(forwarder = %name, error = %e, "Forwarder cannot read its cursor");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                    self.update(|s| s.cursor = cursor);
                    sending = true;
                }
            }
            let head = match store.head().await {
                Ok(h) => h.seq,
                Err(e) => {
                    tracing::warn!(forwarder = %name, error = %e, "Forwarder cannot read the head");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.update(|s| s.head = head);
            if cursor >= head {
                tokio::time::sleep(POLL).await;
                continue;
            }
            let rows = match store.scan(cursor + 1, head, self.config.batch_size as i64).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(forwarder = %name, error = %e, "Forwarder cannot read events");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Rows below a retention purge are gone: the scan starts at the first that is left.
            let last = rows.last().map_or(head.min(cursor + self.config.batch_size as i64), |r| r.seq);
            let mut batch = Vec::with_capacity(rows.len());
            for row in &rows {
                match row.to_api_json() {
                    Ok(ev) if self.wants(&ev) => batch.push(ev),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(forwarder = %name, seq = row.seq, error = %e, "A stored event cannot be read; not forwarded (verify names it)")
                    }
                }
            }
            if !batch.is_empty() {
                if let Err(problem) = self.send(&batch, &http, &mut conn).await {
                    conn = None;
                    let now = crate::event::now_ms();
                    let mut failures = 0;
                    self.update(|s| {
                        s.errors += 1;
                        s.consecutive_failures += 1;
                        s.last_error = Some(problem.clone());
                        s.last_error_at = Some(now);
                        failures = s.consecutive_failures;
                    });
                    let wait = if failures >= BREAKER_AFTER {
                        MAX_BACKOFF
                    } else {
                        Duration::from_secs(1 << (failures - 1).min(6)).min(MAX_BACKOFF)
                    };
                    tracing::warn!(forwarder = %name, %problem, failures, wait_secs = wait.as_secs(), "Forwarding failed; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                let n = batch.len() as u64;
                self.update(|s| {
                    s.sent += n;
                    s.batches += 1;
                    s.consecutive_failures = 0;
                    s.last_sent_at = Some(crate::event::now_ms());
                });
            }
            cursor = last;
            self.update(|s| s.cursor = cursor);
            if let Err(e) = store.set_forwarder_cursor(&name, cursor, crate::event::now_ms()).await {
                // Kept in memory; written with the next batch (a restart meanwhile resends).
                tracing::warn!(forwarder = %name, error = %e, "Forwarder cursor not stored");
            }
        }
    }

    async fn send(&self, batch: &[Value], http: &reqwest::Client, conn: &mut Option<Conn>) -> Result<(), String> {
        match self.config.kind.as_str() {
            "nats" => {
                if conn.is_none() {
                    let address = self.config.address.as_deref().unwrap_or_default();
                    *conn = Some(Conn::Plain(nats::connect(address, self.token.as_deref()).await?));
                }
                let Some(Conn::Plain(stream)) = conn.as_mut() else { return Err("no connection".into()) };
                nats::publish(stream, self.config.subject.as_deref().unwrap_or_default(), batch).await
            }
            "syslog" => {
                let cef = self.config.format.as_deref() == Some("cef");
                let mut text = String::new();
                for ev in batch {
                    text.push_str(&if cef { format::cef_line(ev) } else { format::rfc5424_line(ev) });
                }
                if conn.is_none() {
                    let address = self.config.address.as_deref().unwrap_or_default();
                    let stream = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(address))
                        .await
                        .map_err(|_| format!("connecting to {address} timed out"))?
                        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
                    *conn = Some(match &self.tls {
                        None => Conn::Plain(stream),
                        Some(connector) => {
                            let host = address.rsplit_once(':').map_or(address, |(h, _)| h).trim_matches(['[', ']']);
                            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                                .map_err(|_| format!("`{host}` is not a valid TLS server name"))?;
                            let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, stream))
                                .await
                                .map_err(|_| format!("TLS handshake with {address} timed out"))?
                                .map_err(|e| format!("TLS handshake with {address} failed: {e}"))?;
                            Conn::Tls(Box::new(tls))
                        }
                    });
                }
                let stream = conn.as_mut().ok_or("no connection")?;
                tokio::time::timeout(Duration::from_secs(30), async {
                    match stream {
                        Conn::Plain(s) => {
                            s.write_all(text.as_bytes()).await?;
                            s.flush().await
                        }
                        Conn::Tls(s) => {
                            s.write_all(text.as_bytes()).await?;
                            s.flush().await
                        }
                    }
                })
                .await
                .map_err(|_| "writing timed out".to_owned())?
                .map_err(|e| format!("write failed: {e}"))
            }
            kind => {
                let mut req = http
                    .post(self.config.url.as_deref().unwrap_or_default())
                    .header("content-type", "application/json");
                let body = if kind == "ocsf_http" {
                    if let Some(token) = &self.token {
                        req = req.bearer_auth(token);
                    }
                    Value::Array(batch.iter().map(ocsf::to_ocsf).collect()).to_string()
                } else {
                    req = req.header("authorization", format!("Splunk {}", self.token.as_deref().unwrap_or_default()));
                    let mut body = String::new();
                    for ev in batch {
                        body.push_str(&format::hec_event(ev, self.config.index.as_deref()).to_string());
                        body.push('\n');
                    }
                    body
                };
                let resp = req.body(body).send().await.map_err(|e| format!("request failed: {}", e.without_url()))?;
                let status = resp.status();
                if status.is_success() { Ok(()) } else { Err(format!("HTTP {}", status.as_u16())) }
            }
        }
    }
}
