//! `vigil config init` writes the commented reference configuration (and will not replace a
//! file without `--force`); `vigil config check` validates a configuration as `vigil serve`
//! loads it, prints what it resolves to without secrets, and exits 2 naming what is wrong.

use std::process::{Command, Output};

fn vigil(args: &[&str]) -> std::io::Result<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("VIGIL_")) {
        cmd.env_remove(k);
    }
    cmd.args(args).output()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn config_init_writes_a_valid_reference_and_check_names_mistakes() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-config-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("conf").join("vigil.toml");
    let p = path.to_str().unwrap();

    let out = vigil(&["config", "init", "--path", p])?;
    anyhow::ensure!(out.status.success(), "init: {}", text(&out));
    let written = std::fs::read_to_string(&path)?;
    assert_eq!(written, include_str!("../../vigil.example.toml"));

    let out = vigil(&["config", "init", "--path", p])?;
    assert!(!out.status.success() && text(&out).contains("--force"), "no silent overwrite: {}", text(&out));
    let out = vigil(&["config", "init", "--path", p, "--force"])?;
    assert!(out.status.success(), "{}", text(&out));

    // The reference configuration is valid as written.
    let out = vigil(&["config", "check", "--config", p])?;
    assert!(out.status.success(), "check of the reference: {}", text(&out));
    assert!(text(&out).contains("configuration ok"), "{}", text(&out));

    // A database password is never printed.
    let with_pw = dir.join("pw.toml");
    std::fs::write(&with_pw, "database_url = \"postgres://vigil:hunter2-secret@db.internal:5432/vigil\"\n")?;
    let out = vigil(&["config", "check", "--config", with_pw.to_str().unwrap()])?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("postgres://vigil:***@db.internal:5432/vigil"), "{}", text(&out));
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));

    // Mistakes: an unknown key, a value out of range; exit status 2 and the key named.
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "[store]\nmax_group_event = 10\n")?;
    let out = vigil(&["config", "check", "--config", unknown.to_str().unwrap()])?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("max_group_event"), "{}", text(&out));
    let zero = dir.join("zero.toml");
    std::fs::write(&zero, "[store]\nmax_group_events = 0\n")?;
    let out = vigil(&["config", "check", "--config", zero.to_str().unwrap()])?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("store.max_group_events"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `[log] format = "json"`: every line `vigil serve` writes is one JSON object.
#[tokio::test]
async fn json_logs_are_one_object_per_line() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-jsonlog-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{}\"\ndata_dir = \"{}\"\n\n[log]\nformat = \"json\"\n",
            dir.join("vigil.db").display(),
            dir.join("data").display()
        ),
    )?;
    let log = dir.join("vigil.log");
    let mut child =
        vigil_tests::serve_binary(env!("CARGO_BIN_EXE_vigil"), &config, &log, "vgl_jsonlog_test_admin_key_0123456789")?;
    vigil::app::install_tls();
    let ready = vigil_tests::wait_healthy(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}")).await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    ready?;
    let text = std::fs::read_to_string(&log)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{text}");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| anyhow::anyhow!("not JSON ({e}): {line}"))?;
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
