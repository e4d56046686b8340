//! `[[forwarders]]` on both backends. A real rsyslog (imtcp, writing what it receives to a
//! file) gets the committed events from two syslog forwarders, RFC 5424 with the event's
//! JSON and CEF, in seq order and through the category filter. A Splunk-HEC-shaped
//! receiver (a real HTTP server that records every request and answers as told) gets HEC
//! JSON with the token; while it answers 503 the forwarder retries and shows the error and
//! its lag in `GET /v1/forwarders`; after a restart of Vigil the forwarder resumes from its
//! stored cursor: every matching event arrives, none of those delivered before is resent.
//! An `ocsf_http` forwarder posts OCSF 1.3.0 events, each valid against the JSON Schema of
//! its class (tests/fixtures/ocsf/1.3.0). A `nats` forwarder publishes to a real
//! nats-server (Debian's package), read by a plain subscriber on the subject. A syslog
//! forwarder over TLS (trusting a CA made with `openssl`) reaches Vigil's own TLS syslog
//! listener.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{Value, json};
use vigil::config::ForwarderConfig;
use vigil_tests::receiver::{Mode, Recorder};
use vigil_tests::{Backend, TestApp, both_backends, spawn_app_with};

both_backends!(
    rsyslog_receives_rfc5424_and_cef_in_seq_order,
    splunk_hec_retries_and_resumes_from_its_cursor,
    an_ocsf_http_forwarder_posts_events_valid_against_their_class,
    a_nats_forwarder_publishes_each_event_to_a_subscriber,
    a_tls_cef_forwarder_reaches_a_tls_syslog_listener,
);

/// rsyslogd receiving on TCP and writing each raw message to `out.log`; killed on drop.
struct RsyslogReceiver {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for RsyslogReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RsyslogReceiver {
    fn start() -> anyhow::Result<RsyslogReceiver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("vigil-rsyslog-rx-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;
        let conf = format!(
            r#"global(workDirectory="{d}")
module(load="imtcp")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\n")
*.* action(type="omfile" file="{d}/out.log" template="raw" asyncWriting="off" flushOnTXEnd="on")
"#,
            d = dir.display()
        );
        std::fs::write(dir.join("rsyslog.conf"), conf)?;
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .spawn()?;
        let rx = RsyslogReceiver { child, dir, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(rx);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("rsyslogd did not listen on {port}")
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    async fn wait_lines(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        for _ in 0..200 {
            let lines = self.lines();
            if done(&lines) {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.lines()
    }
}

fn auth_failures(n: usize, tag: &str) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({"event_id": format!("{tag}-{i}"), "category": "authentication", "action": "login_failed",
                       "outcome": "failure", "severity": "high", "user_id": format!("user|{i}"), "ip": "203.0.113.9",
                       "details": {"note": "line\nbreak=yes"}})
            })
            .collect(),
    )
}

async fn rsyslog_receives_rfc5424_and_cef_in_seq_order(backend: Backend) -> anyhow::Result<()> {
    let rx = RsyslogReceiver::start()?;
    let address = format!("127.0.0.1:{}", rx.port);
    let json_fwd = ForwarderConfig {
        name: "siem-json".into(),
        kind: "syslog".into(),
        address: Some(address.clone()),
        format: Some("rfc5424".into()),
        categories: vec!["authentication".into()],
        ..ForwarderConfig::default()
    };
    let cef_fwd = ForwarderConfig {
        name: "siem-cef".into(),
        kind: "syslog".into(),
        address: Some(address),
        format: Some("cef".into()),
        categories: vec!["authentication".into()],
        min_severity: Some("high".into()),
        ..ForwarderConfig::default()
    };
    let app = spawn_app_with(backend, |c| c.forwarders = vec![json_fwd, cef_fwd]).await?;
    let (status, body) = app.post_events(&auth_failures(5, "fw")).await?;
    assert_eq!(status, 201, "{body}");
    let (status, _) = app.post_events(&json!({"category": "system", "action": "boot", "severity": "critical"})).await?;
    assert_eq!(status, 201);
    let (status, _) =
        app.post_events(&json!({"category": "authentication", "action": "login_success", "severity": "low"})).await?;
    assert_eq!(status, 201);

    // rfc5424: the 6 authentication events (not `system`); cef: the 5 high ones.
    let lines = rx
        .wait_lines(|l| {
            l.iter().filter(|x| x.contains("CEF:0|")).count() >= 5
                && l.iter().filter(|x| x.contains("{\"action\"")).count() >= 6
        })
        .await;
    let json_lines: Vec<Value> = lines
        .iter()
        .filter_map(|l| l.find("{\"action\"").map(|i| serde_json::from_str::<Value>(&l[i..]).unwrap_or(Value::Null)))
        .collect();
    assert_eq!(json_lines.len(), 6, "{lines:#?}");
    assert!(json_lines.iter().all(|e| e["category"] == "authentication"), "the filter: {json_lines:#?}");
    let seqs: Vec<i64> = json_lines.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in seq order: {seqs:?}");
    assert_eq!(json_lines[0]["details"]["note"], "line\nbreak=yes", "the JSON keeps the text, escaped");
    assert!(json_lines[0]["hash"].is_string(), "with its chain hash");
    let cef: Vec<&String> = lines.iter().filter(|l| l.contains("CEF:0|")).collect();
    assert_eq!(cef.len(), 5, "min_severity high: {cef:#?}");
    assert!(cef[0].contains("|authentication:login_failed|authentication login_failed|8|"), "{}", cef[0]);
    assert!(cef[0].contains("suser=user|0") && cef[0].contains("src=203.0.113.9"), "{}", cef[0]);
    assert!(cef[0].contains("break\\=yes"), "CEF escapes `=` in values: {}", cef[0]);

    let (status, listed) = app.get("/v1/forwarders").await?;
    assert_eq!(status, 200);
    let json_state =
        listed["forwarders"].as_array().unwrap().iter().find(|f| f["name"] == "siem-json").unwrap().clone();
    assert_eq!(json_state["sent"], 6, "{listed}");
    assert_eq!(json_state["errors"], 0);
    assert_eq!(json_state["breaker"], "closed");
    let metrics = app.client.get(app.url("/metrics")).send().await?.text().await?;
    assert!(metrics.contains("vigil_forwarder_events_sent_total{forwarder=\"siem-json\"} 6"), "{metrics}");
    Ok(())
}

async fn forwarder_state(app: &TestApp) -> anyhow::Result<Value> {
    let (_, listed) = app.get("/v1/forwarders").await?;
    Ok(listed["forwarders"][0].clone())
}

fn hec_seqs(rec: &Recorder) -> Vec<i64> {
    rec.delivered("/hec")
        .iter()
        .flat_map(|r| {
            r.body.lines().map(|l| serde_json::from_str::<Value>(l).unwrap_or(Value::Null)).collect::<Vec<_>>()
        })
        .filter_map(|e| e["event"]["seq"].as_i64())
        .collect()
}

async fn splunk_hec_retries_and_resumes_from_its_cursor(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let hec = ForwarderConfig {
        name: "splunk".into(),
        kind: "splunk_hec".into(),
        url: Some(rec.url("/hec")),
        token: Some("11111111-2222-3333-4444-555555555555".into()),
        index: Some("security".into()),
        categories: vec!["authentication".into()],
        ..ForwarderConfig::default()
    };
    let app = spawn_app_with(backend, |c| c.forwarders = vec![hec]).await?;
    let (status, posted) = app.post_events(&auth_failures(3, "hec-a")).await?;
    assert_eq!(status, 201, "{posted}");
    let first: Vec<i64> = posted["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    rec.wait_for("/hec", 20, |r| !r.is_empty()).await;
    for _ in 0..100 {
        if hec_seqs(&rec).len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hec_seqs(&rec), first);
    let got = rec.delivered("/hec");
    assert_eq!(got[0].headers["authorization"], "Splunk 11111111-2222-3333-4444-555555555555");
    let line: Value = serde_json::from_str(got[0].body.lines().next().unwrap())?;
    assert_eq!((line["sourcetype"].as_str(), line["index"].as_str()), (Some("vigil:event"), Some("security")));
    assert!(line["time"].as_f64().unwrap() > 1.7e9, "seconds: {line}");

    // The SIEM fails: the forwarder retries, shows the error and its lag.
    rec.set_mode("/hec", Mode::Status(503));
    let (status, posted) = app.post_events(&auth_failures(2, "hec-b")).await?;
    assert_eq!(status, 201);
    let second: Vec<i64> = posted["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let mut state = Value::Null;
    for _ in 0..100 {
        state = forwarder_state(&app).await?;
        if state["errors"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state["last_error"], "HTTP 503", "{state}");
    assert!(state["lag"].as_i64().unwrap() >= 2, "{state}");
    assert_eq!(state["cursor"].as_i64(), Some(first[2]), "the cursor stays before the failed batch: {state}");
    let target = state["target"].as_str().unwrap();
    assert!(!target.contains("/hec"), "only scheme, host and port: {target}");

    // Restart Vigil with the SIEM healthy: it resumes from the stored cursor.
    rec.set_mode("/hec", Mode::Ok);
    let app = app.restart().await?;
    let mut seqs = Vec::new();
    for _ in 0..200 {
        seqs = hec_seqs(&rec);
        if seqs.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let want: Vec<i64> = first.iter().chain(&second).copied().collect();
    assert_eq!(seqs, want, "each matching event once, in order; nothing delivered before is resent");
    let unique: BTreeSet<i64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), seqs.len());
    let state = forwarder_state(&app).await?;
    assert_eq!(state["consecutive_failures"], 0, "{state}");
    Ok(())
}

async fn an_ocsf_http_forwarder_posts_events_valid_against_their_class(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let lake = ForwarderConfig {
        name: "lake".into(),
        kind: "ocsf_http".into(),
        url: Some(rec.url("/ocsf")),
        token: Some("lake-token".into()),
        ..ForwarderConfig::default()
    };
    let app = spawn_app_with(backend, |c| c.forwarders = vec![lake]).await?;
    let events = json!([
        {"event_id": "o-auth", "category": "authentication", "action": "login_failed", "outcome": "failure",
         "user_id": "alice", "ip": "203.0.113.9", "geo": {"country": "FR", "city": "Paris", "lat": 48.85, "lon": 2.35},
         "severity": "high", "reason": "bad password"},
        {"event_id": "o-lock", "category": "authentication", "action": "account_locked", "user_id": "alice"},
        {"event_id": "o-read", "category": "data_access", "action": "read", "user_id": "bob", "resource": "invoices",
         "resource_type": "table", "request_id": "r-1"},
        {"event_id": "o-http", "category": "http", "action": "post", "error_code": "401", "resource": "/login",
         "source": "shop", "user_agent": "curl/8"},
        {"event_id": "o-boot", "category": "system", "action": "boot", "severity": "critical"},
        {"event_id": "o-anon", "category": "authentication", "action": "login_failed"},
    ]);
    let (status, body) = app.post_events(&events).await?;
    assert_eq!(status, 201, "{body}");
    let mut posted: Vec<Value> = Vec::new();
    for _ in 0..200 {
        posted = rec.delivered("/ocsf").iter().flat_map(|r| r.json().as_array().cloned().unwrap_or_default()).collect();
        if posted.iter().filter(|e| e["metadata"]["uid"].as_str().is_some_and(|u| u.starts_with("o-"))).count() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rec.delivered("/ocsf")[0].headers["authorization"], "Bearer lake-token");
    let by_uid = |uid: &str| posted.iter().find(|e| e["metadata"]["uid"] == uid).cloned().unwrap_or(Value::Null);
    let expect = [("o-auth", 3002), ("o-lock", 3001), ("o-read", 6003), ("o-http", 4002), ("o-boot", 0), ("o-anon", 0)];
    for (uid, class) in expect {
        assert_eq!(by_uid(uid)["class_uid"], class, "{uid}: {}", by_uid(uid));
    }
    for (class, schema) in
        [(0, "base_event"), (3001, "account_change"), (3002, "authentication"), (4002, "http"), (6003, "api")]
    {
        let docs: Vec<Value> = posted.iter().filter(|e| e["class_uid"] == class).cloned().collect();
        assert!(!docs.is_empty(), "no event of class {class}");
        super::ocsf::validate(schema, &docs)?;
    }
    let auth = by_uid("o-auth");
    assert_eq!(auth["src_endpoint"]["location"]["long"], 2.35);
    assert_eq!(auth["status_detail"], "bad password");
    assert_eq!(auth["unmapped"]["vigil"]["event_id"], "o-auth", "the whole Vigil event rides along");
    let seqs: Vec<i64> = posted.iter().filter_map(|e| e["metadata"]["sequence"].as_i64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in seq order: {seqs:?}");
    Ok(())
}

/// nats-server on a free port; killed on drop.
struct NatsServer {
    child: Child,
    port: u16,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn a_nats_forwarder_publishes_each_event_to_a_subscriber(backend: Backend) -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--auth", "nats-secret"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("nats-server (Debian's nats-server package, scripts/setup.sh): {e}"))?;
    let nats = NatsServer { child, port };
    let mut ready = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", nats.port)).is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(ready, "nats-server did not start");
    // A subscriber, on the plain protocol.
    let sub = tokio::net::TcpStream::connect(("127.0.0.1", nats.port)).await?;
    let mut sub = tokio::io::BufReader::new(sub);
    let mut line = String::new();
    sub.read_line(&mut line).await?;
    sub.get_mut()
        .write_all(b"CONNECT {\"verbose\":false,\"auth_token\":\"nats-secret\"}\r\nSUB vigil.events 1\r\nPING\r\n")
        .await?;
    line.clear();
    sub.read_line(&mut line).await?;
    assert_eq!(line.trim(), "PONG", "subscribed");

    let fwd = ForwarderConfig {
        name: "bus".into(),
        kind: "nats".into(),
        address: Some(format!("127.0.0.1:{}", nats.port)),
        subject: Some("vigil.events".into()),
        token: Some("nats-secret".into()),
        categories: vec!["authentication".into()],
        ..ForwarderConfig::default()
    };
    let app = spawn_app_with(backend, |c| c.forwarders = vec![fwd]).await?;
    let (status, posted) = app.post_events(&auth_failures(3, "nats")).await?;
    assert_eq!(status, 201, "{posted}");
    let mut got = Vec::new();
    while got.len() < 3 {
        line.clear();
        tokio::time::timeout(Duration::from_secs(20), sub.read_line(&mut line)).await??;
        let head = line.trim().to_owned();
        if head == "PING" {
            sub.get_mut().write_all(b"PONG\r\n").await?;
            continue;
        }
        let size: usize = head.rsplit(' ').next().unwrap().parse()?;
        assert!(head.starts_with("MSG vigil.events 1 "), "{head}");
        let mut payload = vec![0u8; size + 2];
        sub.read_exact(&mut payload).await?;
        got.push(serde_json::from_slice::<Value>(&payload[..size])?);
    }
    let ids: Vec<&str> = got.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["nats-0", "nats-1", "nats-2"], "each event once, in seq order");
    assert!(got.iter().all(|e| e["hash"].is_string()));
    let (_, listed) = app.get("/v1/forwarders").await?;
    assert_eq!(listed["forwarders"][0]["sent"], 3, "{listed}");
    assert_eq!(listed["forwarders"][0]["errors"], 0, "{listed}");
    Ok(())
}

async fn a_tls_cef_forwarder_reaches_a_tls_syslog_listener(backend: Backend) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-fwd-tls-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    super::syslog::make_certs(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listener = vigil::config::SyslogInput {
        name: "loop".into(),
        address: format!("127.0.0.1:{port}"),
        tls_cert: Some(dir.join("server.pem")),
        tls_key: Some(dir.join("server.key")),
        ..vigil::config::SyslogInput::default()
    };
    // CEF is text to the listener (stored as category `system`), so the forwarder's
    // `authentication` filter never sends back what the listener stored.
    let fwd = ForwarderConfig {
        name: "tls-cef".into(),
        kind: "syslog".into(),
        address: Some(format!("127.0.0.1:{port}")),
        format: Some("cef".into()),
        tls: true,
        ca_file: Some(dir.join("ca.pem")),
        categories: vec!["authentication".into()],
        ..ForwarderConfig::default()
    };
    let app = spawn_app_with(backend, |c| {
        c.inputs.syslog = vec![listener];
        c.forwarders = vec![fwd];
    })
    .await?;
    let (status, _) = app.post_events(&auth_failures(2, "tls")).await?;
    assert_eq!(status, 201);
    let mut got = Vec::new();
    for _ in 0..200 {
        let (_, listed) = app.get("/v1/events?ingest_key=syslog:loop").await?;
        got = listed["events"].as_array().cloned().unwrap_or_default();
        if got.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got.len(), 2, "{got:#?}");
    let message = got[0]["details"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("CEF:0|Vigil|Vigil|"), "{message}");
    assert!(message.contains("|authentication:login_failed|"), "{message}");
    assert_eq!(forwarder_state(&app).await?["errors"], 0);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
