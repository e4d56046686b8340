//! The rule author's workflow through `vigil::cli` (what `vigil rules ...` runs): scaffold a
//! rule crate, run its native tests, build it to wasm, deploy it to a running server; and
//! backtest a rule over stored history without writing anything; and the operator's
//! `vigil keys` / `vigil alerts` commands against a running server.

use serde_json::{Value, json};
use vigil::cli::Call;
use vigil_tests::{Backend, example_rules, spawn_app};

const T0: i64 = 1_767_610_800_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaffolded_rule_tests_builds_and_deploys() -> anyhow::Result<()> {
    let app = spawn_app(Backend::Sqlite).await?;
    let dir = std::env::temp_dir().join(format!("vigil-cli-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let root = vigil::cli::new_rule("stuffing_watch", &dir)?;
    assert!(vigil::cli::new_rule("stuffing_watch", &dir).is_err(), "refuses to overwrite");
    assert!(vigil::cli::new_rule("Bad-Name", &dir).is_err());
    // Share the build cache with the rest of the tests.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| vigil_tests::repo_root().join("target"))
        .join("wasm-rules/scaffold");
    vigil::cli::test(&root, Some(&target))?;
    vigil::cli::build(&root, Some(&target))?;
    let wasm = target.join("wasm32-unknown-unknown/release/stuffing_watch.wasm");
    vigil::cli::deploy(&wasm, None, &app.base, &app.admin_key).await?;
    let (status, rule) = app.get("/v1/rules/stuffing_watch").await?;
    assert_eq!(status, 200, "{rule}");
    assert_eq!(rule["version"], "0.1.0");
    let bad = vigil::cli::deploy(&wasm, Some("other".into()), &app.base, &app.admin_key).await;
    assert!(bad.unwrap_err().to_string().contains("400"));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_reports_what_a_rule_would_have_raised_and_writes_nothing() -> anyhow::Result<()> {
    let app = spawn_app(Backend::Sqlite).await?;
    let events: Vec<Value> = (0..8)
        .map(|i| json!({"category": "authentication", "action": "login_failed", "ip": "203.0.113.9", "timestamp": T0 + i * 1000}))
        .chain((0..4).map(|i| json!({"category": "authentication", "action": "login_failed", "ip": "203.0.113.10", "timestamp": T0 + i})))
        .collect();
    let (status, _) = app.post_events(&json!(events)).await?;
    assert_eq!(status, 201);
    let head_before = app.get("/v1/integrity/head").await?.1;
    let wasm = example_rules()?.join("brute_force.wasm");
    let day = Some(T0 + 86_400_000);
    let (seen, alerts) = vigil::cli::backtest(&wasm, T0, day, app.config.clone()).await?;
    assert_eq!(seen, 12, "only events in the time range (the bootstrap key event carries today's time)");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["dedup_key"], "ip:203.0.113.9");
    assert_eq!(alerts[0]["severity"], "P2");
    let (_, later) = vigil::cli::backtest(&wasm, T0 + 5000, day, app.config.clone()).await?;
    assert!(later.is_empty(), "from T0+5s only 3 failures remain in range: {later:?}");
    let (_, stored) = app.get("/v1/alerts").await?;
    assert_eq!(stored["alerts"], json!([]), "backtest writes no alert");
    assert_eq!(app.get("/v1/integrity/head").await?.1, head_before, "and no event");
    Ok(())
}

fn call(
    app: &vigil_tests::TestApp,
    key: &str,
    json: bool,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Call {
    Call { url: app.base.clone(), key: key.into(), json, method, path: path.into(), body }
}

/// `vigil keys create|list|revoke`, `vigil alerts list|ack|resolve`, `vigil rules list`,
/// `vigil receivers` and `vigil silences` against a running server: text tables,
/// `--output json`, and the server's refusal as the error.
#[tokio::test]
async fn keys_and_alerts_commands_drive_a_running_server() -> anyhow::Result<()> {
    use reqwest::Method;
    let app = spawn_app(Backend::Sqlite).await?;
    let admin = app.admin_key.clone();
    let created = call(&app, &admin, true, Method::POST, "/v1/keys", Some(json!({"name": "soc-bot", "role": "read"})))
        .answer()
        .await?;
    let created: Value = serde_json::from_str(&created)?;
    let (id, secret) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());
    let listed = call(&app, &admin, false, Method::GET, "/v1/keys", None).answer().await?;
    assert!(listed.starts_with("ID"), "{listed}");
    assert!(listed.lines().any(|l| l.contains(&id) && l.contains("soc-bot") && l.contains("read")), "{listed}");
    assert!(!listed.contains(&secret), "secrets are never listed: {listed}");

    let (status, alert) = app
        .send(app.client.post(app.url("/v1/alerts")).json(&json!({"title": "manual triage", "severity": "P2"})), &admin)
        .await?;
    assert!(status == 201 || status == 200, "{alert}");
    let alert_id = alert["id"].as_i64().unwrap();
    let alerts = call(&app, &secret, false, Method::GET, "/v1/alerts?status=open", None).answer().await?;
    assert!(alerts.lines().any(|l| l.starts_with(&alert_id.to_string()) && l.contains("manual triage")), "{alerts}");
    // A read key may not acknowledge: the server's refusal is the command's error.
    let refused = call(&app, &secret, false, Method::POST, &format!("/v1/alerts/{alert_id}/ack"), Some(json!({})))
        .answer()
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("403") && refused.contains("role"), "{refused}");
    let acked = call(
        &app,
        &admin,
        false,
        Method::POST,
        &format!("/v1/alerts/{alert_id}/ack"),
        Some(json!({"comment": "looking"})),
    )
    .answer()
    .await?;
    assert!(acked.lines().any(|l| l == "status: acknowledged"), "{acked}");
    let resolved = call(
        &app,
        &admin,
        true,
        Method::POST,
        &format!("/v1/alerts/{alert_id}/resolve"),
        Some(json!({"disposition": "benign", "comment": null})),
    )
    .answer()
    .await?;
    let resolved: Value = serde_json::from_str(&resolved)?;
    assert_eq!((resolved["status"].as_str(), resolved["disposition"].as_str()), (Some("resolved"), Some("benign")));

    // `vigil decisions add|list|lift`: the request each sends, and a table of decisions.
    let body = json!({"scope": "ip", "value": "203.0.113.9", "kind": "block", "duration_secs": 600,
        "reason": "cli test", "alert_id": alert_id});
    let added = call(&app, &admin, true, Method::POST, "/v1/decisions", Some(body)).answer().await?;
    let added: Value = serde_json::from_str(&added)?;
    let listed = call(&app, &secret, false, Method::GET, "/v1/decisions?limit=100", None).answer().await?;
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "SCOPE", "VALUE", "KIND", "STATUS", "EXPIRES_AT", "ACTOR", "ALERT_ID", "REASON"],
        "{listed}"
    );
    assert!(
        listed.lines().any(|l| l.contains("203.0.113.9") && l.contains("block") && l.contains("cli test")),
        "{listed}"
    );
    let path = format!("/v1/decisions/{}", added["id"]);
    let lifted = call(&app, &admin, false, Method::DELETE, &path, Some(json!({"reason": "done"}))).answer().await?;
    assert!(lifted.lines().any(|l| l == "status: lifted"), "{lifted}");

    // `vigil rules list`, `vigil receivers`, `vigil silences`: tables with nested columns.
    let wasm = std::fs::read(example_rules()?.join("brute_force.wasm"))?;
    let (status, _) = app.put_rule("brute_force", wasm).await?;
    assert_eq!(status, 201);
    let rules = call(&app, &secret, false, Method::GET, "/v1/rules", None).answer().await?;
    let header: Vec<&str> = rules.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "KIND", "STATUS", "VERSION", "SHA256", "EVENTS", "MATCHES", "FAULTS"], "{rules}");
    assert!(rules.lines().any(|l| l.starts_with("brute_force") && l.contains("detection") && l.contains("active")));
    let receivers = call(&app, &secret, false, Method::GET, "/v1/receivers", None).answer().await?;
    assert!(receivers.starts_with("NAME") && receivers.contains("(none)"), "{receivers}");
    let silences = call(&app, &secret, false, Method::GET, "/v1/silences", None).answer().await?;
    assert!(silences.starts_with("ID") && silences.contains("(none)"), "{silences}");

    call(&app, &admin, false, Method::DELETE, &format!("/v1/keys/{}", vigil::cli::query_escape(&id)), None)
        .answer()
        .await?;
    let refused = call(&app, &secret, false, Method::GET, "/v1/alerts", None).answer().await.unwrap_err().to_string();
    assert!(refused.contains("401"), "a revoked key is refused: {refused}");
    Ok(())
}

/// `vigil events tail` prints only what is stored after it starts, oldest first, with its
/// filters; `vigil events export` downloads an export that `vigil verify --file` accepts;
/// `vigil verify --url` asks the server and exits 0 on an intact log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_export_and_verify_against_a_server() -> anyhow::Result<()> {
    let app = spawn_app(Backend::Sqlite).await?;
    vigil_tests::seed(&app, 5).await?;
    let reader = app.create_key("read").await?;
    let (url, key) = (app.base.clone(), reader.clone());
    let tail = tokio::spawn(async move {
        let mut lines = Vec::new();
        let filter = vigil::cli::TailFilter { pairs: vec![("action", "login_failed".into())] };
        let every = std::time::Duration::from_millis(100);
        vigil::cli::tail(&url, &key, &filter, every, Some(3), true, |l| lines.push(l)).await.map(|()| lines)
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let batch = |action: &str, user: &str| json!({"category": "authentication", "action": action, "user_id": user});
    for (i, action) in ["login_failed", "login_success", "login_failed", "login_failed"].iter().enumerate() {
        let (status, _) = app.post_events(&json!([batch(action, &format!("t{i}"))])).await?;
        assert_eq!(status, 201);
    }
    let lines = tokio::time::timeout(std::time::Duration::from_secs(20), tail).await???;
    let users: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(users, ["t0", "t2", "t3"], "only new login_failed events, oldest first: {lines:?}");

    app.server.state.sequencer.checkpoint_now().await?;
    let file = app.dir.join("export.ndjson");
    let bytes = vigil::cli::export(&app.base, &reader, "format=ndjson", &file).await?;
    assert!(bytes > 0 && std::fs::metadata(&file)?.len() == bytes);
    let (_, pk) = app.get("/v1/integrity/public-key").await?;
    let code = vigil::cli::verify_file(&file, &[pk["public_key"].as_str().unwrap().to_owned()], true)?;
    assert_eq!(code, 0, "the downloaded export verifies offline");
    assert_eq!(vigil::cli::verify_server(&app.base, &reader, None, None, true).await?, 0);
    assert_eq!(vigil::cli::verify_server(&app.base, &reader, Some(2), Some(4), true).await?, 0);
    let refused = vigil::cli::verify_server(&app.base, "vgl_not_a_key", None, None, true).await;
    assert!(refused.unwrap_err().to_string().contains("401"));
    let refused = vigil::cli::export(&app.base, &reader, "format=xml", &app.dir.join("x")).await;
    assert!(refused.unwrap_err().to_string().contains("400"));
    Ok(())
}

/// `vigil allowlist add|list|remove` and `vigil decisions add --duration` through the real
/// binary: the entry refuses a decision on an address it covers (the server's 409 is the
/// command's error), a text duration sets the expiry, and a removed entry is listed only
/// with `--all`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlist_and_text_durations_from_the_command_line() -> anyhow::Result<()> {
    let app = spawn_app(Backend::Sqlite).await?;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .args(["--url", &app.base, "--key", &app.admin_key, "--output", "json"])
            .env_remove("VIGIL_URL")
            .env_remove("VIGIL_KEY")
            .output()
            .expect("run vigil");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, added, err) =
        run(&["allowlist", "add", "ip", "198.51.100.0/24", "--reason", "partner scanner", "--duration", "1h"]);
    assert!(ok, "{added}{err}");
    let added: Value = serde_json::from_str(&added)?;
    let id = added["id"].as_str().unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "{added}");
    let (ok, listed, err) = run(&["allowlist", "list"]);
    assert!(ok && listed.contains("198.51.100.0/24") && listed.contains("partner scanner"), "{listed}{err}");
    let (ok, out, err) = run(&["decisions", "add", "ip", "198.51.100.7", "--reason", "x", "--duration", "30m"]);
    assert!(!ok, "a decision on an allowlisted address is refused: {out}");
    assert!(err.contains("409") && err.contains(&id), "{err}");
    let (ok, out, err) = run(&["decisions", "add", "ip", "203.0.113.5", "--reason", "x", "--duration", "30m"]);
    assert!(ok, "{out}{err}");
    let decision: Value = serde_json::from_str(&out)?;
    let expires = vigil::event::parse_time(decision["expires_at"].as_str().unwrap_or_default()).unwrap_or_default();
    let left = expires - vigil::event::now_ms();
    assert!((29 * 60_000..=30 * 60_000).contains(&left), "30m from now: {decision}");
    let (ok, _, err) =
        run(&["decisions", "add", "ip", "203.0.113.6", "--reason", "x", "--duration", "5m", "--duration-secs", "60"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, out, err) = run(&["allowlist", "remove", &id]);
    assert!(ok, "{out}{err}");
    let (_, listed, _) = run(&["allowlist", "list"]);
    assert!(!listed.contains("198.51.100.0/24"), "{listed}");
    let (_, listed, _) = run(&["allowlist", "list", "--all"]);
    assert!(listed.contains("198.51.100.0/24"), "{listed}");
    Ok(())
}
