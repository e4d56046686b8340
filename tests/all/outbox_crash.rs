//! The outbox survives `kill -9` mid-delivery: the real `vigil serve` process is killed
//! while a receiver is in the middle of answering, then started again; every notification
//! arrives, and a receiver that dedupes on `webhook-id` sees each exactly once.
//! (An integration test of the engine package, so Cargo builds the `vigil` binary for it.)

use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_tests::receiver::{Mode, Recorder};

const KEY: &str = "vgl_crash_test_admin_key_0123456789";

/// A secret-looking webhook path (as in a Slack hook URL) and signing secret: neither may
/// appear in the server's output.
const PATH: &str = "/hook/T0SECRETPATH/B0SECRETPATH";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn serve(config: &std::path::Path, log: &std::path::Path) -> std::io::Result<Child> {
    vigil_tests::serve_binary(env!("CARGO_BIN_EXE_vigil"), config, log, KEY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_loses_no_notification() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    rec.set_mode(PATH, Mode::Slow(Duration::from_secs(3)));
    let dir = std::env::temp_dir().join(format!("vigil-crash-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
database_url = "sqlite://{db}"
data_dir = "{data}"
workers = 1

[rules]
replay_on_start = false

[[receivers]]
name = "hook"
kind = "webhook"
url = "{url}"
secret = "{SECRET}"
"#,
            db = dir.join("vigil.db").display(),
            data = dir.join("data").display(),
            url = rec.url(PATH),
        ),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let log = dir.join("vigil.log");
    let mut child = serve(&config, &log)?;
    vigil_tests::wait_healthy(&client, &base).await?;
    for i in 0..5 {
        let resp = client
            .post(format!("{base}/v1/alerts"))
            .bearer_auth(KEY)
            .json(&json!({"title": format!("crash test {i}"), "severity": "P2"}))
            .send()
            .await?;
        anyhow::ensure!(resp.status().as_u16() == 201, "manual alert: {}", resp.status());
    }
    // The first delivery is in flight (the receiver has it and is slow to answer): kill -9.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rec.requests(PATH).is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill()?;
    child.wait()?;
    let in_flight = rec.requests(PATH).len();

    // Start again: the outbox still holds every notification not recorded as delivered.
    rec.set_mode(PATH, Mode::Ok);
    let mut child = serve(&config, &log)?;
    vigil_tests::wait_healthy(&client, &base).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let ids = loop {
        let ids: BTreeSet<String> = rec.requests(PATH).iter().map(|r| r.headers["webhook-id"].clone()).collect();
        if ids.len() >= 5 || Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let titles: BTreeSet<String> = rec
        .requests(PATH)
        .iter()
        .map(|r| r.json()["data"]["alert"]["title"].as_str().unwrap_or_default().to_owned())
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let output = std::fs::read_to_string(&log)?;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.contains("Vigil is listening"), "the log was captured");
    for secret in ["T0SECRETPATH", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", KEY] {
        assert!(!output.contains(secret), "a secret reached the log: {secret}");
    }
    assert_eq!(ids.len(), 5, "every notification arrived exactly once by webhook-id: {ids:?}");
    assert_eq!(titles.len(), 5, "one per alert: {titles:?}");
    assert!(in_flight >= 1);
    // The one in flight at the kill was sent again with the same webhook-id (at-least-once
    // on the wire, exactly once for a receiver that dedupes on it).
    assert!(rec.requests(PATH).len() >= 5);
    Ok(())
}
