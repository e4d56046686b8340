//! The integrity command line against the real `vigil` binary: one writer per log (a
//! second `vigil serve` refuses and names the holder), SIGTERM signs the head, an export is
//! checked by `vigil verify --file` with the key from `vigil keys checkpoint-public` (exit
//! status 0, and 1 naming the seq once a line is edited), and a missing key file with a
//! database that needs it stops the start with a message instead of being regenerated.

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::json;

const KEY: &str = "vgl_integrity_test_admin_key_0123456789";

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

fn serve(config: &std::path::Path, log: &std::path::Path) -> std::io::Result<Child> {
    vigil_tests::serve_binary(env!("CARGO_BIN_EXE_vigil"), config, log, KEY)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_sigterm_signs_and_exports_verify_offline() -> anyhow::Result<()> {
    vigil::app::install_tls();
    let dir = std::env::temp_dir().join(format!("vigil-integrity-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let data = dir.join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{}\"\ndata_dir = \"{}\"\nworkers = 1\n\n\
             [store]\ncheckpoint_every_secs = 3600\ncheckpoint_every_events = 1000000\n",
            dir.join("vigil.db").display(),
            data.display()
        ),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let log = dir.join("vigil.log");
    let mut child = serve(&config, &log)?;
    vigil_tests::wait_healthy(&client, &base).await?;
    let events: Vec<_> = (0..25)
        .map(|i| json!({"category": "authentication", "action": "login_failed", "user_id": format!("u{i}"), "ip": "192.0.2.7"}))
        .collect();
    let resp = client.post(format!("{base}/v1/events")).bearer_auth(KEY).json(&events).send().await?;
    anyhow::ensure!(resp.status().as_u16() == 201, "ingest: {}", resp.status());

    // A second server on the same log refuses and says who holds it.
    let mut second_config = std::fs::read_to_string(&config)?;
    let port2 = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    second_config = second_config.replace(&format!(":{port}\""), &format!(":{port2}\""));
    let config2 = dir.join("second.toml");
    std::fs::write(&config2, second_config)?;
    let out = vigil().args(["serve", "--config"]).arg(&config2).env("VIGIL_ADMIN_KEY", KEY).output()?;
    assert!(!out.status.success());
    assert!(text(&out).contains("another server is writing this log"), "{}", text(&out));
    assert!(text(&out).contains(&format!("pid {}", child.id())), "names the holder: {}", text(&out));

    // SIGTERM: the head (never signed: the timer is an hour) is signed before exit.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "vigil did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let anchor: serde_json::Value = serde_json::from_slice(&std::fs::read(data.join("anchor.json"))?)?;
    let head_seq = anchor["checkpoint"]["seq"].as_i64().unwrap_or_default();
    assert!(head_seq >= 26, "the anchor holds the head signed at shutdown: {anchor}");

    // Export, then verify offline with the printed public key.
    let mut child = serve(&config, &log)?;
    vigil_tests::wait_healthy(&client, &base).await?;
    let export =
        client.get(format!("{base}/v1/events/export?format=ndjson")).bearer_auth(KEY).send().await?.text().await?;
    child.kill()?;
    child.wait()?;
    let out = vigil().args(["keys", "checkpoint-public", "--data-dir"]).arg(&data).output()?;
    assert!(out.status.success(), "{}", text(&out));
    let public = String::from_utf8(out.stdout)?.trim().to_owned();
    assert_eq!(public.len(), 64);
    let file = dir.join("export.ndjson");
    std::fs::write(&file, &export)?;
    let out = vigil().args(["verify", "--file"]).arg(&file).args(["--public-key", &public]).output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["status"], "ok");
    let edited = export.replacen("\"user_id\\\":\\\"u7\\\"", "\"user_id\\\":\\\"u8\\\"", 1);
    assert_ne!(edited, export, "the edit applies");
    std::fs::write(&file, &edited)?;
    let out = vigil().args(["verify", "--file"]).arg(&file).args(["--public-key", &public]).output()?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["failures"][0]["kind"], "hash_mismatch", "{report}");

    // A key file gone with a database that needs it: a clear refusal, nothing regenerated.
    std::fs::remove_file(data.join("checkpoint-ed25519.key"))?;
    let out = vigil().args(["serve", "--config"]).arg(&config).env("VIGIL_ADMIN_KEY", KEY).output()?;
    assert!(!out.status.success());
    assert!(text(&out).contains("Refusing to create a new key"), "{}", text(&out));
    assert!(!data.join("checkpoint-ed25519.key").exists());
    // A too-short admin key is refused.
    let out = vigil().args(["serve", "--config"]).arg(&config).env("VIGIL_ADMIN_KEY", "short").output()?;
    assert!(!out.status.success() && text(&out).contains("at least 24 characters"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
