//! Database faults under ingest: PostgreSQL stopped for 12 s mid-ingest (a private instance
//! this test starts itself) and a full disk under SQLite (a small tmpfs). Every POST is
//! answered within a bound with 201, or 503 / 507 with `Retry-After` (never 500, never a
//! hang), no batch is half-stored, reads keep answering, and ingest resumes on its own once
//! the database or the space is back, with the chain verifying and nothing stored twice
//! when clients retry. And the server's own log output on a full disk (the real binary,
//! its stdout and stderr on a full tmpfs, or on `/dev/full`): nothing stops.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use vigil_tests::TestApp;
use vigil_tests::pg::PrivatePostgres;

/// One POST and how it was answered.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    code: String,
    elapsed: Duration,
    ids: Vec<String>,
}

fn batch(client: usize, n: usize, size: usize) -> (Vec<String>, Value) {
    let ids: Vec<String> =
        (0..size).map(|i| uuid::Uuid::now_v7().to_string() + &format!("-{client}-{n}-{i}")).collect();
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"event_id": id, "category": "authentication", "action": "login_failed", "outcome": "failure",
                   "user_id": format!("user-{client}-{}", i % 5), "ip": format!("198.51.100.{}", i % 200),
                   "details": {"n": n}})
        })
        .collect();
    (ids, json!(events))
}

async fn post(app: &TestApp, body: &Value, ids: Vec<String>) -> Answer {
    let started = Instant::now();
    let sent = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.admin_key)
        .timeout(Duration::from_secs(60))
        .json(body)
        .send()
        .await;
    let (status, retry_after, code) = match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, retry, body["error"]["code"].as_str().unwrap_or_default().to_owned())
        }
        Err(e) => (0, None, format!("no answer: {e}")),
    };
    Answer { status, retry_after, code, elapsed: started.elapsed(), ids }
}

/// Every POST of a run, with its body.
type Answers = Arc<Mutex<Vec<(Answer, Value)>>>;

/// `clients` loops posting batches of `size` until `stop` is set; every answer is kept.
fn load(
    app: &Arc<TestApp>,
    clients: usize,
    size: usize,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> (Answers, Vec<tokio::task::JoinHandle<()>>) {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let tasks = (0..clients)
        .map(|c| {
            let (app, stop, answers) = (app.clone(), stop.clone(), answers.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (ids, body) = batch(c, n, size);
                    let answer = post(&app, &body, ids).await;
                    answers.lock().unwrap().push((answer, body));
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    (answers, tasks)
}

/// How many of `ids` the database holds (read directly, bypassing the server).
async fn stored(app: &TestApp, ids: &[String]) -> anyhow::Result<usize> {
    use sqlx::Connection;
    let list = ids.iter().map(|id| format!("'{}'", id.replace('\'', "''"))).collect::<Vec<_>>().join(",");
    let sql = format!("SELECT COUNT(*) FROM events WHERE event_id IN ({list})");
    let n: i64 = match app.backend {
        vigil_tests::Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
                .await
                .with_context(|| format!("open {} to count rows", app.database_url))?;
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await?
        }
        vigil_tests::Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.database_url).await?;
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await?
        }
    };
    Ok(n as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_mid_ingest_answers_503_and_resumes() -> anyhow::Result<()> {
    let pg = PrivatePostgres::start()?;
    let app = Arc::new(vigil_tests::spawn_app_on_pg(&pg.url(), |_| {}).await?);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (answers, tasks) = load(&app, 4, 50, &stop);
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.stop()?;
    let down_at = Instant::now();
    // Reads while the database is down: an answer, not a hang or a 500.
    let (status, body) = app.get("/v1/events?limit=5").await?;
    anyhow::ensure!(status == 503, "GET /v1/events with the database down answered {status}: {body}");
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(down_at.elapsed())).await;
    pg.resume()?;
    let up_at = Instant::now();
    // Ingest resumes on its own: wait for 201s answered after the restart.
    let resumed = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let recent = answers.lock().unwrap().iter().rev().take(8).filter(|(a, _)| a.status == 201).count();
        if recent == 8 {
            break true;
        }
        if up_at.elapsed() > Duration::from_secs(30) {
            break false;
        }
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    anyhow::ensure!(resumed, "ingest did not resume within 30 s of PostgreSQL coming back");
    let answers = answers.lock().unwrap().clone();
    check_answers(&answers, 503, Duration::from_secs(15))?;
    anyhow::ensure!(answers.iter().any(|(a, _)| a.status == 503), "no POST noticed the outage");
    retry_and_check(&app, &answers).await
}

/// Every answer is 201 or `refused` with `Retry-After`, within `bound`.
fn check_answers(answers: &[(Answer, Value)], refused: u16, bound: Duration) -> anyhow::Result<()> {
    for (a, _) in answers {
        anyhow::ensure!(
            a.status == 201 || a.status == refused,
            "a POST was answered {} ({}) : {a:?}",
            a.status,
            a.code
        );
        anyhow::ensure!(a.elapsed <= bound, "a POST took {:?} (bound {bound:?}): {a:?}", a.elapsed);
        if a.status == refused {
            anyhow::ensure!(a.retry_after.is_some(), "a {refused} without Retry-After: {a:?}");
        }
    }
    Ok(())
}

/// No refused batch is half-stored; retrying every batch with the same event_ids stores each
/// event exactly once; the chain verifies.
async fn retry_and_check(app: &TestApp, answers: &[(Answer, Value)]) -> anyhow::Result<()> {
    let mut refused = 0;
    for (a, _) in answers.iter().filter(|(a, _)| a.status != 201) {
        let n = stored(app, &a.ids).await?;
        anyhow::ensure!(n == 0 || n == a.ids.len(), "a refused batch is half-stored: {n} of {} events", a.ids.len());
        refused += 1;
    }
    let mut seqs: HashMap<String, i64> = HashMap::new();
    for (a, body) in answers {
        let (status, reply) = app.post_events(body).await?;
        anyhow::ensure!(status == 201, "retry answered {status}: {reply}");
        for e in reply["events"].as_array().context("events in reply")? {
            let id = e["event_id"].as_str().context("event_id")?.to_owned();
            if a.status == 201 {
                anyhow::ensure!(e["duplicate"] == true, "an acknowledged event was stored again on retry: {e}");
            }
            seqs.insert(id, e["seq"].as_i64().context("seq")?);
        }
    }
    let distinct: HashSet<i64> = seqs.values().copied().collect();
    anyhow::ensure!(distinct.len() == seqs.len(), "two event_ids share a seq");
    let report = app.verify().await?;
    anyhow::ensure!(report["status"] == "ok", "verify after the fault: {report}");
    eprintln!("{refused} batches were refused during the fault; {} events stored once each", seqs.len());
    Ok(())
}

/// Runs `cmd`, failing with its output.
fn sh(cmd: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("sh").args(["-c", cmd]).output()?;
    anyhow::ensure!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A tmpfs of `mb` MiB at a new temp dir, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(mb: u32) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("vigil-full-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;
        sh(&format!("mount -t tmpfs -o size={mb}m vigil-full {}", dir.display()))
            .context("mounting a small tmpfs needs root (CI runs as root)")?;
        Ok(Self(dir))
    }

    /// Free bytes on it.
    fn free(&self) -> anyhow::Result<u64> {
        let out = std::process::Command::new("df").args(["-B1", "--output=avail"]).arg(&self.0).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().nth(1).and_then(|l| l.trim().parse().ok()).context("df output")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = sh(&format!("umount -l {}", self.0.display()));
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_disk_full_answers_507_and_resumes_when_space_returns() -> anyhow::Result<()> {
    let disk = SmallDisk::mount(24)?;
    let db = disk.0.join("vigil.db");
    let data = disk.0.clone();
    let app = Arc::new(
        vigil_tests::spawn_app_with(vigil_tests::Backend::Sqlite, |c| {
            c.database_url = format!("sqlite://{}", db.display());
            c.data_dir = data;
        })
        .await?,
    );
    vigil_tests::seed(&app, 20).await?;
    // Leave about 1 MiB free, then post until the disk is full.
    let ballast = disk.0.join("ballast");
    let fill = disk.free()?.saturating_sub(1 << 20);
    sh(&format!(
        "fallocate -l {fill} {} || dd if=/dev/zero of={} bs=1M count={} 2>/dev/null",
        ballast.display(),
        ballast.display(),
        fill >> 20
    ))?;
    let mut answers = Vec::new();
    let mut n = 0;
    while !answers.iter().any(|(a, _): &(Answer, Value)| a.status == 507) {
        anyhow::ensure!(n < 2000, "the disk never filled up: {:?}", answers.last().map(|(a, _)| a));
        let (ids, body) = batch(0, n, 100);
        answers.push((post(&app, &body, ids).await, body));
        n += 1;
    }
    let full = answers.last().unwrap().0.clone();
    anyhow::ensure!(full.code == "insufficient_storage", "507 with code {}", full.code);
    // More POSTs while full: 507 again, quickly; the server stays up.
    for _ in 0..3 {
        let (ids, body) = batch(1, n, 100);
        n += 1;
        let a = post(&app, &body, ids).await;
        anyhow::ensure!(a.status == 507 || a.status == 201, "while full: {a:?}");
        answers.push((a, body));
    }
    // Reads keep answering.
    let (status, body) = app.get("/v1/events?limit=5").await?;
    anyhow::ensure!(status == 200, "GET /v1/events while full answered {status}: {body}");
    let (status, body) = app.get("/v1/integrity/verify").await?;
    anyhow::ensure!(status == 200 && body["status"] == "ok", "verify while full: {status} {body}");
    let health = app.client.get(app.url("/healthz")).send().await?.status().as_u16();
    anyhow::ensure!(health == 200, "healthz while full: {health}");
    check_answers(&answers, 507, Duration::from_secs(15))?;
    // Space returns: ingest resumes without a restart.
    std::fs::remove_file(&ballast)?;
    let (ids, body) = batch(2, n, 100);
    let a = post(&app, &body, ids).await;
    anyhow::ensure!(a.status == 201, "after space returned: {a:?}");
    answers.push((a, body));
    retry_and_check(&app, &answers).await?;
    drop(app);
    drop(disk);
    Ok(())
}

// The server's own log output on a full disk. tracing-subscriber reported a failed log
// write with `eprintln!`, which panics when stderr fails too (the same file): inside the
// sequencer's task that stopped the log for good, and every POST was then answered 503 "the
// server is shutting down", even after space was freed. These run the real `vigil` binary
// with its stdout and stderr on the full disk.

const PROCESS_KEY: &str = "vgl_log_output_test_admin_key_0123456789";

/// `vigil serve --config CONFIG` with stdout and stderr into `out`.
fn serve_into(
    config: &std::path::Path,
    out: std::fs::File,
    admin_key: Option<&str>,
) -> anyhow::Result<std::process::Child> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(["serve", "--config"]).arg(config).env("VIGIL_LOG", "info").env_remove("VIGIL_ADMIN_KEY");
    if let Some(key) = admin_key {
        cmd.env("VIGIL_ADMIN_KEY", key);
    }
    Ok(cmd.stdout(std::process::Stdio::from(out.try_clone()?)).stderr(std::process::Stdio::from(out)).spawn()?)
}

/// A config file in `dir` for a server on a free port; returns (path, base URL).
fn process_config(
    dir: &std::path::Path,
    db: &std::path::Path,
    data: &std::path::Path,
) -> anyhow::Result<(std::path::PathBuf, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.join("vigil.toml");
    // Checkpoints every second: the sequencer signs (and writes the anchor, and logs when it
    // cannot) all through the test.
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{}\"\ndata_dir = \"{}\"\nworkers = 1\n\n\
             [store]\ncheckpoint_every_secs = 1\n",
            db.display(),
            data.display()
        ),
    )?;
    Ok((config, format!("http://127.0.0.1:{port}")))
}

/// POSTs a batch of `n` events; returns (status, error code).
async fn post_batch(client: &reqwest::Client, base: &str, tag: &str, n: usize) -> anyhow::Result<(u16, String)> {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"category": "authentication", "action": "login_failed", "user_id": format!("{tag}-{i}"),
                        "details": {"pad": "x".repeat(200)}})
        })
        .collect();
    let resp = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(PROCESS_KEY)
        .timeout(Duration::from_secs(60))
        .json(&events)
        .send()
        .await
        .with_context(|| format!("POST {tag}: no answer (did the server die?)"))?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Ok((status, body["error"]["code"].as_str().unwrap_or_default().to_owned()))
}

/// The value of an unlabelled series of `GET {base}/metrics`.
async fn process_metric(client: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<Option<f64>> {
    let text = client.get(format!("{base}/metrics")).send().await?.text().await?;
    let prefix = format!("{name} ");
    Ok(text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).and_then(|v| v.trim().parse().ok()))
}

/// SIGTERM, then the exit status (within 30 s).
async fn terminate(child: &mut std::process::Child) -> anyhow::Result<std::process::ExitStatus> {
    sh(&format!("kill -TERM {}", child.id()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        anyhow::ensure!(Instant::now() < deadline, "vigil did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The database, the data directory and the log file share a small disk that fills up:
/// 507 while it is full (never "shutting down"), every log line that cannot be written is
/// counted and dropped, and ingest resumes by itself once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_server_log_does_not_stop_it() -> anyhow::Result<()> {
    vigil::app::install_tls();
    let disk = SmallDisk::mount(24)?;
    let (config, base) = process_config(&disk.0, &disk.0.join("vigil.db"), &disk.0.join("data"))?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(disk.0.join("vigil.log"))?;
    let mut child = serve_into(&config, log, Some(PROCESS_KEY))?;
    let client = reqwest::Client::new();
    let result = async {
        vigil_tests::wait_healthy(&client, &base).await?;
        let (status, code) = post_batch(&client, &base, "seed", 20).await?;
        anyhow::ensure!(status == 201, "seed: {status} {code}");
        // Leave about 1 MiB, post until the database is full, then take the last blocks too,
        // so no log line fits either.
        let ballast = disk.0.join("ballast");
        let fill = disk.free()?.saturating_sub(1 << 20);
        sh(&format!(
            "fallocate -l {fill} {0} || dd if=/dev/zero of={0} bs=1M count={1} 2>/dev/null",
            ballast.display(),
            fill >> 20
        ))?;
        let mut n = 0;
        loop {
            let (status, code) = post_batch(&client, &base, &format!("fill-{n}"), 100).await?;
            if status == 507 {
                anyhow::ensure!(code == "insufficient_storage", "507 with code {code}");
                break;
            }
            anyhow::ensure!(status == 201, "while filling: {status} {code}");
            n += 1;
            anyhow::ensure!(n < 2000, "the disk never filled up");
        }
        let _ = sh(&format!("dd if=/dev/zero of={} bs=4k 2>/dev/null", disk.0.join("ballast2").display()));
        // Full: POSTs are 507, the sequencer keeps signing (and failing, and logging) on its
        // timer, and nothing is ever "shutting down".
        // Each 507 logs a line; the last page of the log file may still hold a few of them,
        // so go on until a log write has failed (bounded).
        let mut lost = 0.0;
        for i in 0..200 {
            let (status, code) = post_batch(&client, &base, &format!("full-{i}"), 100).await?;
            anyhow::ensure!(status == 507 || status == 201, "while full: {status} {code}");
            lost = process_metric(&client, &base, "vigil_log_write_errors_total").await?.unwrap_or(0.0);
            if lost > 0.0 && i >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::ensure!(lost > 0.0, "the log output never failed: the test did not fill the disk under it");
        let health = client.get(format!("{base}/healthz")).send().await?.status().as_u16();
        anyhow::ensure!(health == 200, "healthz while full: {health}");
        // Space returns: ingest resumes without a restart.
        std::fs::remove_file(&ballast)?;
        let _ = std::fs::remove_file(disk.0.join("ballast2"));
        let (status, code) = post_batch(&client, &base, "after", 100).await?;
        anyhow::ensure!(status == 201, "after space returned: {status} {code}");
        let ready = client.get(format!("{base}/readyz")).send().await?.status().as_u16();
        anyhow::ensure!(ready == 200, "readyz after space returned: {ready}");
        let report: Value =
            client.get(format!("{base}/v1/integrity/verify")).bearer_auth(PROCESS_KEY).send().await?.json().await?;
        anyhow::ensure!(report["status"] == "ok", "verify: {report}");
        let status = terminate(&mut child).await?;
        anyhow::ensure!(status.success(), "vigil exited with {status}");
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    drop(disk);
    result
}

/// stdout and stderr on `/dev/full` (every write fails with ENOSPC) for the whole run: the
/// server starts (also when it cannot show the admin key it generated), ingests, verifies
/// and stops cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_output_that_takes_no_writes_does_not_stop_the_server() -> anyhow::Result<()> {
    vigil::app::install_tls();
    let dir = std::env::temp_dir().join(format!("vigil-devfull-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let (config, base) = process_config(&dir, &dir.join("vigil.db"), &dir.join("data"))?;
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full");
    let client = reqwest::Client::new();
    // First start without VIGIL_ADMIN_KEY: the generated key cannot be printed.
    let mut child = serve_into(&config, full()?, None)?;
    let first = async {
        vigil_tests::wait_healthy(&client, &base).await?;
        let status = terminate(&mut child).await?;
        anyhow::ensure!(status.success(), "vigil exited with {status}");
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    first?;
    let mut child = serve_into(&config, full()?, Some(PROCESS_KEY))?;
    let second = async {
        vigil_tests::wait_healthy(&client, &base).await?;
        for i in 0..10 {
            let (status, code) = post_batch(&client, &base, &format!("b{i}"), 50).await?;
            anyhow::ensure!(status == 201, "POST {i}: {status} {code}");
        }
        let bad = client.post(format!("{base}/v1/events")).bearer_auth(PROCESS_KEY).json(&json!([{}])).send().await?;
        anyhow::ensure!(bad.status().as_u16() == 400);
        tokio::time::sleep(Duration::from_millis(1500)).await; // a timed checkpoint or two
        let (status, code) = post_batch(&client, &base, "late", 50).await?;
        anyhow::ensure!(status == 201, "POST after the checkpoints: {status} {code}");
        let lost = process_metric(&client, &base, "vigil_log_write_errors_total").await?.unwrap_or(0.0);
        anyhow::ensure!(lost > 0.0, "no log write failed: {lost}");
        let ready = client.get(format!("{base}/readyz")).send().await?.status().as_u16();
        anyhow::ensure!(ready == 200, "readyz: {ready}");
        let report: Value =
            client.get(format!("{base}/v1/integrity/verify")).bearer_auth(PROCESS_KEY).send().await?.json().await?;
        anyhow::ensure!(report["status"] == "ok" && report["verified"].as_i64() >= Some(550), "verify: {report}");
        let status = terminate(&mut child).await?;
        anyhow::ensure!(status.success(), "vigil exited with {status}");
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    second
}
