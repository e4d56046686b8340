//! `[[inputs.syslog]]` on both backends. A real rsyslog (Debian's package, installed by
//! `scripts/setup.sh --postgres`) forwards what `logger` gives it to a Vigil listener twice,
//! RFC 5424 with octet counting and RFC 3164 with newline framing: key=value, JSON and
//! plain-text messages become events with `ingest_key = "syslog:<name>"`; an invalid one is
//! refused alone. Raw TCP clients: a peer outside `allow` is disconnected before anything
//! is read, a frame over `max_message_bytes` closes the connection and stores nothing. A
//! mutual-TLS listener (certificates made with the `openssl` command) takes a client with
//! a certificate of its CA and refuses one without.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil::config::SyslogInput;
use vigil_tests::{Backend, TestApp, both_backends, spawn_app_with};

both_backends!(
    a_token_listener_refuses_messages_without_its_token,
    rsyslog_forwards_rfc5424_and_rfc3164_into_events,
    peers_outside_allow_and_oversized_frames_store_nothing,
    a_mutual_tls_listener_takes_only_clients_of_its_ca,
);

fn listener(name: &str) -> SyslogInput {
    SyslogInput {
        name: name.into(),
        address: "127.0.0.1:0".into(),
        category: "system".into(),
        action: "syslog".into(),
        ..SyslogInput::default()
    }
}

async fn syslog_events(app: &TestApp, name: &str) -> anyhow::Result<Vec<Value>> {
    let (status, body) = app.get(&format!("/v1/events?ingest_key=syslog:{name}&limit=100")).await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(body["events"].as_array().cloned().unwrap_or_default())
}

async fn wait_events(app: &TestApp, name: &str, n: usize) -> anyhow::Result<Vec<Value>> {
    for _ in 0..200 {
        let events = syslog_events(app, name).await?;
        if events.len() >= n {
            return Ok(events);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    syslog_events(app, name).await
}

/// rsyslogd in the foreground with its own config, socket and work directory; killed on drop.
struct Rsyslog {
    child: Child,
    dir: PathBuf,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Rsyslog {
    fn start(port: u16) -> anyhow::Result<Rsyslog> {
        let dir = std::env::temp_dir().join(format!("vigil-rsyslog-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;
        let conf = format!(
            r#"global(workDirectory="{d}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{d}/log.sock" CreatePath="on")
*.* action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
*.* action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" template="RSYSLOG_ForwardFormat")
"#,
            d = dir.display()
        );
        std::fs::write(dir.join("rsyslog.conf"), conf)?;
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .spawn()
            .map_err(|e| anyhow::anyhow!("rsyslogd (Debian's rsyslog package, scripts/setup.sh): {e}"))?;
        let rs = Rsyslog { child, dir };
        for _ in 0..100 {
            if rs.socket().exists() {
                return Ok(rs);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("rsyslogd did not create its socket")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("log.sock")
    }

    fn log(&self, tag: &str, priority: &str, message: &str) -> anyhow::Result<()> {
        let status = Command::new("logger")
            .arg("-u")
            .arg(self.socket())
            .args(["-t", tag, "-p", priority, "--", message])
            .status()?;
        anyhow::ensure!(status.success(), "logger failed");
        Ok(())
    }
}

async fn rsyslog_forwards_rfc5424_and_rfc3164_into_events(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| c.inputs.syslog = vec![listener("rsyslog")]).await?;
    let addr = app.server.inputs.syslog_addr("rsyslog").unwrap();
    let rsyslog = Rsyslog::start(addr.port())?;
    rsyslog.log(
        "checkout",
        "auth.warning",
        "category=authentication action=login_failed outcome=failure user_id=alice ip=203.0.113.9 password=hunter2",
    )?;
    rsyslog.log(
        "billing",
        "user.err",
        r#"{"category": "financial_operation", "action": "refund", "user_id": "bob", "amount": 12}"#,
    )?;
    rsyslog.log("cron", "daemon.info", "disk 93% full on /var")?;
    rsyslog.log("checkout", "auth.info", "category=authentication action=x ip=not-an-ip")?;

    // Each message arrives twice (once per rsyslog action); the invalid one never.
    let events = wait_events(&app, "rsyslog", 6).await?;
    assert_eq!(events.len(), 6, "{events:#?}");
    let of = |action: &str| -> Vec<&Value> { events.iter().filter(|e| e["action"] == action).collect() };
    let failed = of("login_failed");
    assert_eq!(failed.len(), 2, "{events:#?}");
    for e in &failed {
        assert_eq!(e["category"], "authentication");
        assert_eq!(e["outcome"], "failure");
        assert_eq!(e["user_id"], "alice");
        assert_eq!(e["ip"], "203.0.113.9");
        assert_eq!(e["severity"], "medium", "warning");
        assert_eq!(e["source"], "checkout");
        assert_eq!(e["ingest_key"], "syslog:rsyslog");
        assert_eq!(e["details"]["syslog"]["facility"], 4);
        assert_eq!(e["details"]["syslog"]["peer"], "127.0.0.1");
        assert!(e["details"]["password"].as_str().unwrap().starts_with("[masked:"), "{e}");
    }
    // Both parsers read the same header (RFC 5424 from one action, RFC 3164 with an
    // RFC 3339 time from the other): host, tag and time agree.
    assert!(failed[0]["details"]["syslog"]["hostname"].is_string());
    assert_eq!(failed[0]["details"]["syslog"]["hostname"], failed[1]["details"]["syslog"]["hostname"]);
    assert_eq!(failed[0]["timestamp"], failed[1]["timestamp"]);
    let refunds = of("refund");
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[0]["category"], "financial_operation");
    assert_eq!(refunds[0]["severity"], "high", "err");
    assert_eq!(refunds[0]["details"]["amount"], 12);
    let texts = of("syslog");
    assert_eq!(texts.len(), 2);
    assert_eq!(texts[0]["category"], "system", "the listener's default");
    assert_eq!(texts[0]["details"]["message"], "disk 93% full on /var");
    assert_eq!(texts[0]["source"], "cron");
    assert_eq!(app.metric("vigil_syslog_refused_total").await?, Some(2));
    assert_eq!(app.metric("vigil_syslog_stored_total").await?, Some(6));
    assert_eq!(app.verify().await?["status"], "ok");
    drop(rsyslog);
    Ok(())
}

/// A plain TCP listener with a `token`: a message carrying `[vigil token="..."]` is stored
/// (without the token); a message without it, or with another token, closes the
/// connection, stores nothing of that read and counts as a refused connection.
async fn a_token_listener_refuses_messages_without_its_token(backend: Backend) -> anyhow::Result<()> {
    const TOKEN: &str = "syslog-token-0123456789";
    let mut guarded = listener("guarded");
    guarded.token = Some(TOKEN.into());
    let app = spawn_app_with(backend, |c| c.inputs.syslog = vec![guarded]).await?;
    let addr = app.server.inputs.syslog_addr("guarded").unwrap();

    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    let good = format!(
        "<13>1 2026-01-05T08:00:00Z h app - - [vigil@32473 token=\"{TOKEN}\"][meta x=\"1\"] action=with_token\n"
    );
    conn.write_all(good.as_bytes()).await?;
    let events = wait_events(&app, "guarded", 1).await?;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["action"], "with_token");
    assert_eq!(events[0]["details"]["syslog"]["structured_data"], "[meta x=\"1\"]", "the token is not stored");
    assert!(!events[0].to_string().contains(TOKEN));

    let mut buf = [0u8; 16];
    for bad in [
        "<13>1 2026-01-05T08:00:01Z h app - - - action=no_token\n".to_owned(),
        "<13>1 2026-01-05T08:00:02Z h app - - [vigil token=\"syslog-token-wrong-value\"] action=wrong\n".to_owned(),
        "<13>Jan  5 08:00:03 h app: action=bsd\n".to_owned(),
    ] {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        let _ = conn.write_all(bad.as_bytes()).await;
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await?;
        assert!(matches!(read, Ok(0) | Err(_)), "the connection is closed: {bad}");
    }
    assert_eq!(app.metric("vigil_syslog_connections_refused_total").await?, Some(3));
    // The good connection still works and nothing else was stored.
    conn.write_all(good.replace("with_token", "again").as_bytes()).await?;
    let events = wait_events(&app, "guarded", 2).await?;
    let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(events.len(), 2, "{actions:?}");
    assert!(actions.contains(&"again"), "{actions:?}");
    Ok(())
}

async fn peers_outside_allow_and_oversized_frames_store_nothing(backend: Backend) -> anyhow::Result<()> {
    let mut closed = listener("closed");
    closed.allow = vec!["10.0.0.0/8".into()];
    let mut small = listener("small");
    small.max_message_bytes = 256;
    let app = spawn_app_with(backend, |c| c.inputs.syslog = vec![closed, small]).await?;

    // Not in `allow`: disconnected before anything is read.
    let mut conn = tokio::net::TcpStream::connect(app.server.inputs.syslog_addr("closed").unwrap()).await?;
    let _ = conn.write_all(b"<13>1 - - - - - - category=system action=x\n").await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await?;
    assert!(matches!(read, Ok(0) | Err(_)), "the connection is closed");
    assert_eq!(app.metric("vigil_syslog_connections_refused_total").await?, Some(1));

    // A good counted frame, then a count over the bound: the good one is stored, the
    // connection closed, nothing after it read.
    let mut conn = tokio::net::TcpStream::connect(app.server.inputs.syslog_addr("small").unwrap()).await?;
    let good = "<13>1 2026-01-05T08:00:00Z h app - - - action=ok";
    conn.write_all(format!("{} {good}", good.len()).as_bytes()).await?;
    conn.write_all(b"999999 <13>1 - - - - - - action=too_big\n<13>action=after\n").await?;
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await?;
    assert!(matches!(read, Ok(0) | Err(_)), "the connection is closed");
    let events = wait_events(&app, "small", 1).await?;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["action"], "ok");
    assert_eq!(events[0]["timestamp"], "2026-01-05T08:00:00.000Z");
    assert!(syslog_events(&app, "closed").await?.is_empty());
    Ok(())
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl").current_dir(dir).args(args).output()?;
    anyhow::ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it.
pub(super) fn make_certs(dir: &Path) -> anyhow::Result<()> {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=vigil-test-ca"],
        ]
        .concat(),
    )?;
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")?;
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")?;
    for who in ["server", "client"] {
        openssl(
            dir,
            &[
                &["req", "-new"][..],
                &ec,
                &["-keyout", &format!("{who}.key"), "-out", &format!("{who}.csr"), "-subj", &format!("/CN={who}")],
            ]
            .concat(),
        )?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{who}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{who}.ext"),
            ],
        )?;
    }
    Ok(())
}

fn tls_client(dir: &Path, with_cert: bool) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(dir.join("ca.pem"))?)?;
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = if with_cert {
        let chain = vec![CertificateDer::from_pem_file(dir.join("client.pem"))?];
        builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(dir.join("client.key"))?)?
    } else {
        builder.with_no_client_auth()
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn a_mutual_tls_listener_takes_only_clients_of_its_ca(backend: Backend) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-tls-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    make_certs(&dir)?;
    let mut tls = listener("tls");
    tls.tls_cert = Some(dir.join("server.pem"));
    tls.tls_key = Some(dir.join("server.key"));
    tls.client_ca = Some(dir.join("ca.pem"));
    let app = spawn_app_with(backend, |c| c.inputs.syslog = vec![tls]).await?;
    let addr = app.server.inputs.syslog_addr("tls").unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());

    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut stream = tls_client(&dir, true)?.connect(name.clone(), tcp).await?;
    stream
        .write_all(
            b"<86>1 2026-01-05T08:00:00Z h sshd - - - category=authentication action=login_success user_id=carol\n",
        )
        .await?;
    stream.shutdown().await?;
    let events = wait_events(&app, "tls", 1).await?;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["user_id"], "carol");
    assert_eq!(events[0]["ingest_key"], "syslog:tls");

    // Without a client certificate the handshake fails (rustls reports it on the first
    // read or write); nothing is stored.
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    if let Ok(mut stream) = tls_client(&dir, false)?.connect(name, tcp).await {
        let _ = stream
            .write_all(b"<86>1 - h sshd - - - category=authentication action=login_success user_id=mallory\n")
            .await;
        let _ = stream.flush().await;
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await?;
        assert!(matches!(read, Ok(0) | Err(_)), "refused");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = syslog_events(&app, "tls").await?;
    assert_eq!(events.len(), 1, "only carol: {events:#?}");
    assert!(app.metric("vigil_syslog_connections_refused_total").await?.unwrap_or(0) >= 1);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
