//! Cluster mode's shared timers and outbox with two nodes in this process (the real server,
//! `vigil::app::start`, twice on one fresh schema of the shared PostgreSQL and a private
//! `nats-server` with JetStream on a free port; docs/cluster.md "Timers and the outbox"):
//! both nodes' delivery workers and timer tasks run against one recording webhook
//! receiver, and each notification is delivered once, each escalation fires once and each
//! decision expiry is recorded once; a decision issued through one node is answered by the
//! other (pushed on core NATS); `GET /v1/cluster` shows each partition's stream lag, which
//! comes back to 0 after a load; a forwarder configured on both nodes sends each event once
//! (only the holder of detection slot 0's lease sends).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use vigil::app::RunningServer;
use vigil_tests::receiver::Recorder;

use super::Schema;

const KEY: &str = "vgl_cluster_timers_admin_key_0123456789";
const HOOK: &str = "/hook";

/// A single `nats-server` with JetStream on a free port, killed on drop.
struct Nats {
    child: std::process::Child,
    url: String,
}

impl Nats {
    async fn start(dir: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let store = dir.join("nats");
        std::fs::create_dir_all(&store)?;
        let log = std::fs::File::create(dir.join("nats.log"))?;
        let child = std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdout(std::process::Stdio::from(log.try_clone()?))
            .stderr(std::process::Stdio::from(log))
            .spawn()
            .context("nats-server (scripts/setup.sh installs it)")?;
        let nats = Self { child, url: format!("nats://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "nats-server did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(nats)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A syslog receiver (TCP, newline framing): every line it was sent.
struct Siem {
    address: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Siem {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut reader = tokio::io::BufReader::new(stream).lines();
                    while let Ok(Some(line)) = reader.next_line().await {
                        sink.lock().unwrap().push(line);
                    }
                });
            }
        });
        Ok(Self { address, lines })
    }

    /// The event id of every line (the message is the event's JSON).
    fn event_ids(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|l| l.find('{').and_then(|i| serde_json::from_str::<Value>(&l[i..]).ok()))
            .filter_map(|ev| ev["event_id"].as_str().map(str::to_owned))
            .collect()
    }
}

/// One node's configuration: 2 partitions, the recorder as the only receiver, P3 alerts
/// escalated once after a second, storms never folded (every notification is its own), a
/// syslog forwarder to `siem`.
fn node_config(
    dir: &Path,
    name: &str,
    database_url: &str,
    nats: &str,
    (hook, siem): (&str, &str),
) -> anyhow::Result<vigil::config::Config> {
    let data = dir.join(name);
    std::fs::create_dir_all(&data)?;
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"listen = "127.0.0.1:0"
database_url = "{database_url}"
data_dir = "{data}"
workers = 1

[rules]
replay_on_start = false

[outbox]
poll_interval_ms = 100
timeout_secs = 3
storm_threshold = 100000

[[receivers]]
name = "hook"
kind = "webhook"
url = "{hook}"

[[forwarders]]
name = "siem"
kind = "syslog"
address = "{siem}"

[[escalation]]
severity = "P3"
levels = [ {{ after = "1s", receivers = [] }} ]

[cluster]
nats_url = "{nats}"
partitions = 2
node_id = "{name}"
stream_replicas = 1
lease_ms = 3000
heartbeat_ms = 500
"#,
            data = data.display(),
        ),
    )?;
    let mut config = vigil::config::Config::from_file(&path)?;
    config.admin_key = Some(KEY.into());
    config.validate()?;
    Ok(config)
}

/// Copies a node's key files (not its anchor) into another's data directory: the nodes of
/// a cluster share their secrets (docs/cluster.md).
fn share_secrets(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() && entry.file_name() != "anchor.json" {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

struct Pair {
    a: RunningServer,
    b: RunningServer,
    schema: Schema,
    dir: PathBuf,
    siem: Siem,
    _nats: Nats,
}

impl Pair {
    async fn start(hook: &str) -> anyhow::Result<Self> {
        let siem = Siem::start().await?;
        let to = (hook, siem.address.as_str());
        vigil::app::install_tls();
        let dir = std::env::temp_dir().join(format!("vigil-timers-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;
        let nats = Nats::start(&dir).await?;
        let schema = Schema::new().await?;
        let a = vigil::app::start(node_config(&dir, "a", &schema.url, &nats.url, to)?).await.context("node a")?;
        let b_config = node_config(&dir, "b", &schema.url, &nats.url, to)?;
        share_secrets(&dir.join("a"), &dir.join("b"))?;
        let b = vigil::app::start(b_config).await.context("node b")?;
        Ok(Self { a, b, schema, dir, siem, _nats: nats })
    }

    fn base(server: &RunningServer) -> String {
        format!("http://{}", server.addr)
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.a.shutdown().await;
        self.b.shutdown().await;
        self.schema.drop_all().await?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// Rows of a query on the test's schema (read directly, as the superuser).
async fn rows<T>(schema: &Schema, sql: &str) -> anyhow::Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let mut conn = vigil_tests::connect_pg(&vigil_tests::pg_base_url()).await?;
    let sql = sql.replace("{s}", &schema.name);
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&mut conn).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_deliver_each_notification_fire_each_escalation_and_record_each_expiry_once() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let pair = Pair::start(&rec.url(HOOK)).await?;
    let client = reqwest::Client::new();
    let bases = [Pair::base(&pair.a), Pair::base(&pair.b)];

    // 12 alerts, half through each node: each owes the hook a trigger now and an
    // escalation a second later, and both nodes' workers and timers run meanwhile.
    const ALERTS: usize = 12;
    let mut ids = Vec::new();
    for i in 0..ALERTS {
        let resp = client
            .post(format!("{}/v1/alerts", bases[i % 2]))
            .bearer_auth(KEY)
            .json(&json!({"title": format!("shared outbox {i}"), "severity": "P3"}))
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 201, "manual alert: {}", resp.status());
        let body: Value = resp.json().await?;
        ids.push(body["id"].as_i64().context("alert id")?);
    }
    // Until every notification is recorded delivered (24: a trigger and an escalation each).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: Vec<(i64,)> =
            rows(&pair.schema, "SELECT count(*) FROM {s}.notifications WHERE status = 'delivered'").await?;
        if done[0].0 >= 2 * ALERTS as i64 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {} of {} notifications delivered", done[0].0, 2 * ALERTS);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored: Vec<(String, String, String, i64, Option<String>)> = rows(
        &pair.schema,
        "SELECT idempotency_key, kind, status, attempts, claimed_by FROM {s}.notifications ORDER BY id",
    )
    .await?;
    assert_eq!(stored.len(), 2 * ALERTS, "a trigger and one escalation per alert: {stored:?}");
    for (key, kind, status, attempts, claimed_by) in &stored {
        assert!(kind == "trigger" || kind == "escalation", "{kind}");
        assert_eq!(status, "delivered", "{key}");
        assert_eq!(*attempts, 1, "{key} was attempted once");
        assert_eq!(*claimed_by, None, "{key}: the claim is released once the outcome is recorded");
    }
    // Each notification reached the receiver exactly once (by its webhook-id).
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in rec.requests(HOOK) {
        *seen.entry(r.headers.get("webhook-id").cloned().unwrap_or_default()).or_default() += 1;
    }
    assert_eq!(seen.len(), 2 * ALERTS, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1), "a notification went out twice: {seen:?}");
    for (key, ..) in &stored {
        assert_eq!(seen.get(key), Some(&1), "{key}");
    }
    // Each alert's timer fired once: one `escalated` entry in its history, the timer done.
    let escalated: Vec<(i64, i64)> = rows(
        &pair.schema,
        "SELECT alert_id, count(*) FROM {s}.alert_changes WHERE action = 'escalated' GROUP BY alert_id ORDER BY alert_id",
    )
    .await?;
    assert_eq!(escalated, ids.iter().map(|id| (*id, 1)).collect::<Vec<_>>());
    let timers: Vec<(String, i64)> =
        rows(&pair.schema, "SELECT status, count(*) FROM {s}.escalations GROUP BY status").await?;
    assert_eq!(timers, vec![("done".to_owned(), ALERTS as i64)]);

    // A decision due to expire while both nodes' expiry tasks run: one `expired` change.
    let resp = client
        .post(format!("{}/v1/decisions", bases[0]))
        .bearer_auth(KEY)
        .json(&json!({"scope": "ip", "value": "203.0.113.77", "kind": "block", "duration": "2s", "reason": "expiry once"}))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 201, "decision: {}", resp.status());
    let decision: Value = resp.json().await?;
    let id = decision["id"].as_i64().context("decision id")?;
    let expired = format!("SELECT action FROM {{s}}.decision_changes WHERE decision_id = {id} AND action = 'expired'");
    let deadline = Instant::now() + Duration::from_secs(30);
    while rows::<(String,)>(&pair.schema, &expired).await?.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "the decision never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both nodes' expiry passes (every 250 ms) have looked at it several times since.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rows::<(String,)>(&pair.schema, &expired).await?.len(), 1, "one expiry recorded");
    // And one chain event (written after the change; the only expiry of this test).
    let chained = "SELECT count(*) FROM {s}.events WHERE action = 'decision_expired'";
    let deadline = Instant::now() + Duration::from_secs(30);
    while rows::<(i64,)>(&pair.schema, chained).await?[0].0 == 0 {
        anyhow::ensure!(Instant::now() < deadline, "the expiry never reached the chain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows::<(i64,)>(&pair.schema, chained).await?[0].0, 1, "one expiry in the chain");

    pair.stop().await?;
    rec.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_issued_on_one_node_is_pushed_to_the_other_and_stream_lag_drains() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let pair = Pair::start(&rec.url(HOOK)).await?;
    let client = reqwest::Client::new();
    let (a, b) = (Pair::base(&pair.a), Pair::base(&pair.b));

    // Issued through a, answered by b: polled with a deadline (a check of reach); the time
    // it took is printed, not asserted.
    let issued = Instant::now();
    let resp = client
        .post(format!("{a}/v1/decisions"))
        .bearer_auth(KEY)
        .json(&json!({"scope": "ip", "value": "203.0.113.88", "kind": "block", "duration": "30m", "reason": "pushed"}))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 201, "decision: {}", resp.status());
    let id = resp.json::<Value>().await?["id"].as_i64().context("decision id")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body: Value = client
            .get(format!("{b}/v1/decisions?scope=ip&value=203.0.113.88"))
            .bearer_auth(KEY)
            .send()
            .await?
            .json()
            .await?;
        if body["decisions"].as_array().into_iter().flatten().any(|d| d["id"] == id) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "node b never answered with the decision issued through a");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("decision issued through a answered by b after {:?}", issued.elapsed());

    // A load through both nodes, then b's view: every partition has a lag, the stream holds
    // the groups, and the lag comes back to 0 once every group is committed.
    for (i, base) in [&a, &b].into_iter().enumerate() {
        let events: Vec<Value> = (0..300)
            .map(|n| {
                json!({"event_id": format!("lag-{i}-{n}"), "category": "authentication", "action": "login_failed",
                    "user_id": format!("u{n}"), "ip": "198.51.100.20"})
            })
            .collect();
        let resp = client.post(format!("{base}/v1/events")).bearer_auth(KEY).json(&events).send().await?;
        anyhow::ensure!(resp.status() == 201, "events: {}", resp.status());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let view: Value = client.get(format!("{b}/v1/cluster")).bearer_auth(KEY).send().await?.json().await?;
        let parts = view["partitions"].as_array().cloned().unwrap_or_default();
        let drained = parts.len() == 2 && parts.iter().all(|p| p["lag"] == 0);
        if drained && view["stream"]["messages"].as_u64().is_some_and(|m| m >= 2) {
            break view;
        }
        anyhow::ensure!(Instant::now() < deadline, "the stream lag never drained: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stream = &view["stream"];
    assert_eq!(stream["name"], "VIGIL_EVENTS", "{view}");
    assert_eq!(stream["replicas"], 1, "{view}");
    assert!(stream["last_seq"].as_u64() >= stream["first_seq"].as_u64(), "{view}");
    assert_eq!(stream["error"], Value::Null, "{view}");
    let consumers: Vec<&Value> = stream["partitions"].as_array().context("stream partitions")?.iter().collect();
    assert_eq!(consumers.len(), 2, "{view}");
    for c in consumers {
        assert_eq!(c["lag"], 0, "{view}");
        assert_eq!(c["pending"], 0, "{view}");
        assert!(c["ack_floor_seq"].as_u64().is_some_and(|s| s >= 1), "{view}");
    }

    // Both nodes configure the forwarder; only detection slot 0's holder sends, from the
    // shared cursor: every event of partition 0 (the log forwarders read) arrives once.
    let stored: Vec<(String,)> = rows(&pair.schema, "SELECT event_id FROM {s}.events").await?;
    anyhow::ensure!(stored.len() >= 100, "partition 0 holds part of the load: {}", stored.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent: HashSet<String> = pair.siem.event_ids().into_iter().collect();
        let missing = stored.iter().filter(|(id,)| !sent.contains(id)).count();
        if missing == 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{missing} of {} events never forwarded", stored.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids = pair.siem.event_ids();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "an event was forwarded twice (by both nodes?)");

    pair.stop().await?;
    rec.stop().await;
    Ok(())
}
