//! The first hour with the `vigil` binary, as a new user meets it (issue 22): `config check`
//! warns about a receiver nothing routes to (and the documented fix silences it); `rules
//! backtest` without a database fails naming where it looked and creates nothing; `rules
//! new` outside the repository finds the SDK, says which, and the crate builds; a log
//! written to a file has no colour codes; a receiver the router names but nobody configured
//! is warned about once, not once per alert.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

const KEY: &str = "vgl_first_hour_test_admin_key_0123456789";

fn vigil(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("VIGIL_")) {
        cmd.env_remove(k);
    }
    cmd.current_dir(dir).env_remove("RUST_BACKTRACE");
    cmd
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn temp_dir(what: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("vigil-{what}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The ```toml block of `doc` that contains `needle`.
fn toml_block(doc: &str, needle: &str) -> String {
    doc.split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(block, _)| block))
        .find(|b| b.contains(needle))
        .unwrap_or_else(|| panic!("no toml block with {needle}"))
        .to_owned()
}

#[test]
fn config_check_warns_about_a_receiver_nothing_routes_to() -> anyhow::Result<()> {
    let dir = temp_dir("reach")?;
    // docs/alerting.md's receivers as written: `hook` is named by no routing.
    let doc = std::fs::read_to_string(vigil_tests::repo_root().join("docs/alerting.md"))?;
    let receivers = toml_block(&doc, "name = \"hook\"");
    let path = dir.join("receivers.toml");
    std::fs::write(&path, &receivers)?;
    let out = vigil(&dir).args(["config", "check", "--config"]).arg(&path).output()?;
    assert_eq!(out.status.code(), Some(0), "a warning, not an error: {}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("warning: receiver `hook` (webhook) gets no alerts"), "{shown}");
    assert!(shown.contains("unless a routing rule you deploy names it"), "{shown}");
    assert!(shown.contains("[rules.config.default_router]"), "says how: {shown}");
    assert_eq!(shown.matches("warning:").count(), 1, "the other receivers are routed to: {shown}");
    let out = vigil(&dir).args(["config", "check", "--strict", "--config"]).arg(&path).output()?;
    assert_eq!(out.status.code(), Some(1), "--strict fails on warnings: {}", text(&out));

    // The doc's routing example, added to the same receivers, routes to it.
    let routing = toml_block(&doc, "[rules.config.default_router]");
    let fixed = dir.join("fixed.toml");
    std::fs::write(&fixed, format!("{receivers}\n{routing}"))?;
    let out = vigil(&dir).args(["config", "check", "--strict", "--config"]).arg(&fixed).output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("warning:"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn backtest_without_a_database_fails_naming_where_it_looked() -> anyhow::Result<()> {
    let dir = temp_dir("backtest")?;
    // The module is not even read as Wasm: the database is looked for first.
    std::fs::write(dir.join("rule.wasm"), b"\0asm\x01\0\0\0")?;
    let out = vigil(&dir).args(["rules", "backtest", "rule.wasm", "--since", "2026-01-01T00:00:00Z"]).output()?;
    assert!(!out.status.success(), "{}", text(&out));
    let shown = text(&out);
    let looked = dir.canonicalize()?.join("data/vigil.db");
    assert!(
        shown.contains(&format!("no database at {}", looked.display()))
            || shown.contains(&format!("no database at {}", dir.join("data/vigil.db").display())),
        "{shown}"
    );
    assert!(shown.contains("--database-url") && shown.contains("VIGIL_DATABASE_URL"), "{shown}");
    assert!(!shown.contains("events evaluated"), "{shown}");
    assert!(!dir.join("data").exists(), "nothing created");

    // The same through VIGIL_DATABASE_URL naming a file that is not there.
    let elsewhere = dir.join("srv/vigil.db");
    let out = vigil(&dir)
        .args(["rules", "backtest", "rule.wasm", "--since", "0"])
        .env("VIGIL_DATABASE_URL", format!("sqlite://{}", elsewhere.display()))
        .output()?;
    assert!(!out.status.success());
    assert!(text(&out).contains(&format!("no database at {}", elsewhere.display())), "{}", text(&out));
    assert!(!dir.join("srv").exists(), "no directory created either");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn rules_new_outside_the_repository_finds_the_sdk_says_which_and_builds() -> anyhow::Result<()> {
    let dir = temp_dir("rules-new")?;
    let sdk = vigil_tests::repo_root().join("sdk");
    let out = vigil(&dir).args(["rules", "new", "outside_rule"]).env("VIGIL_SDK_PATH", &sdk).output()?;
    assert!(out.status.success(), "{}", text(&out));
    let sdk = sdk.canonicalize()?;
    assert!(
        text(&out).contains(&format!("Using vigil-sdk at {} (from VIGIL_SDK_PATH)", sdk.display())),
        "{}",
        text(&out)
    );
    let manifest = std::fs::read_to_string(dir.join("outside_rule/Cargo.toml"))?;
    assert!(manifest.contains(&format!("vigil-sdk = {{ path = {:?} }}", sdk.display().to_string())), "{manifest}");
    // The crate compiles where it is (its own workspace), sharing the suite's build cache.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| vigil_tests::repo_root().join("target"))
        .join("wasm-rules/outside");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(dir.join("outside_rule"))
        .args(["check", "--tests", "--target-dir"])
        .arg(&target)
        .status()?;
    assert!(status.success(), "cargo check of the new crate");

    // VIGIL_SDK_PATH naming something else: refused, naming the variable; nothing created.
    let out = vigil(&dir).args(["rules", "new", "second_rule"]).env("VIGIL_SDK_PATH", &dir).output()?;
    assert!(!out.status.success());
    assert!(text(&out).contains("VIGIL_SDK_PATH=") && text(&out).contains("sdk/"), "{}", text(&out));
    assert!(!dir.join("second_rule").exists());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_has_no_colour_and_unknown_receivers_are_warned_once() -> anyhow::Result<()> {
    vigil::app::install_tls();
    let dir = temp_dir("log")?;
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)?;
    let built = vigil_tests::example_rules()?;
    for name in ["brute_force.wasm", "default_router.wasm"] {
        std::fs::copy(built.join(name), rules.join(name))?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.join("vigil.toml");
    // No receivers at all: default_router names pager, chat and email for every P2 alert.
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{}\"\ndata_dir = \"{}\"\nrules_dir = \"{}\"\nworkers = 1\n",
            dir.join("vigil.db").display(),
            dir.join("data").display(),
            rules.display()
        ),
    )?;
    let log = dir.join("vigil.log");
    let mut child = vigil_tests::serve_binary(env!("CARGO_BIN_EXE_vigil"), &config, &log, KEY)?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let result = async {
        vigil_tests::wait_healthy(&client, &base).await?;
        // Eight addresses past brute_force's 5-minute threshold: eight P2 alerts.
        let events: Vec<_> = (0..8)
            .flat_map(|ip| {
                (0..7).map(move |i| {
                    json!({"category": "authentication", "action": "login_failed", "user_id": format!("u{i}"), "ip": format!("198.51.100.{ip}")})
                })
            })
            .collect();
        let resp = client.post(format!("{base}/v1/events")).bearer_auth(KEY).json(&events).send().await?;
        anyhow::ensure!(resp.status().as_u16() == 201, "ingest: {}", resp.status());
        // Every alert routed (the fallback counter moves after the router has logged).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let metrics = client.get(format!("{base}/metrics")).bearer_auth(KEY).send().await?.text().await?;
            let routed = metrics
                .lines()
                .find_map(|l| l.strip_prefix("vigil_alerts_default_routed_total "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if routed >= 8 {
                break;
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "alerts not routed: {routed}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let written = std::fs::read_to_string(&log)?;
        assert!(!written.contains("\x1b["), "no ANSI escape codes in a log file:\n{written}");
        for receiver in ["pager", "chat", "email"] {
            let lines = written
                .lines()
                .filter(|l| l.contains("named a receiver that is not configured") && l.contains(&format!("receiver={receiver}")))
                .count();
            assert_eq!(lines, 1, "one warning for `{receiver}` over eight alerts:\n{written}");
        }
        anyhow::Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}
