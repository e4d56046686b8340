//! The Prometheus exposition of `GET /metrics` passes Prometheus' own linter
//! (`promtool check metrics`, installed by `scripts/setup.sh --postgres`) after real traffic:
//! a deployed rule and the router (labelled per-rule series), ingest, a rejected request,
//! detection and an alert, on both backends; the queries of the Grafana dashboard in
//! `examples/grafana/` parse and read only metrics the server serves.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;
use vigil_tests::{Backend, both_backends, spawn_app};

both_backends!(the_metrics_exposition_passes_promtool);

async fn the_metrics_exposition_passes_promtool(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let rules = vigil_tests::example_rules()?;
    for name in ["brute_force", "default_router"] {
        let (status, body) = app.put_rule(name, std::fs::read(rules.join(format!("{name}.wasm")))?).await?;
        assert!(status == 200 || status == 201, "deploy {name}: {status} {body}");
    }
    vigil_tests::seed(&app, 50).await?;
    let (status, _) = app.post_events(&json!([{"category": "nope"}])).await?;
    assert_eq!(status, 400);
    let (status, body) = app
        .send(
            app.client.post(app.url("/v1/alerts")).json(&json!({"title": "manual", "severity": "P3"})),
            &app.admin_key,
        )
        .await?;
    assert!(status == 201 || status == 200, "{status} {body}");
    app.detection_idle().await?;
    app.server.state.sequencer.checkpoint_now().await?;
    let text = app.client.get(app.url("/metrics")).send().await?.text().await?;
    for series in [
        "vigil_events_stored",
        "rule=\"brute_force\"",
        "vigil_checkpoint_age_seconds",
        "vigil_ingest_request_duration_seconds_bucket{le=\"+Inf\"} 1",
        "vigil_ingest_request_duration_seconds_count 1",
        "vigil_sequencer_queue_depth",
        "vigil_detection_queue_events",
        "vigil_detection_lag_events",
        "vigil_detection_replay_pending_events 0",
        "# TYPE vigil_receiver_notifications gauge",
        "vigil_rule_state_bytes",
        "# TYPE vigil_security_events_total counter",
        "vigil_alerts_raised_total{rule=\"manual\",severity=\"P3\"} 1",
        "vigil_decisions_issued_by_kind_total{kind=\"block\"}",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("promtool not found ({e}): run scripts/setup.sh --postgres"))?;
    child.stdin.take().unwrap().write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n--- exposition:\n{text}");
    grafana_dashboard_queries_parse_and_use_served_metrics(&text)
}

/// `examples/grafana/vigil-security.json`: every query parses as PromQL (`promtool check
/// rules` over them, Grafana's variables replaced) and every `vigil_` metric it reads is
/// in the exposition above.
fn grafana_dashboard_queries_parse_and_use_served_metrics(exposition: &str) -> anyhow::Result<()> {
    let path = vigil_tests::repo_root().join("examples/grafana/vigil-security.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let names = regex_lite::Regex::new(r"vigil_[a-z_]+").unwrap();
    for expr in &exprs {
        for name in names.find_iter(expr) {
            assert!(
                exposition.contains(&format!("# TYPE {} ", name.as_str())),
                "{} (in {expr}) is not served",
                name.as_str()
            );
        }
    }
    let rules: Vec<serde_json::Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let e = e.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$job", ".*");
            json!({"record": format!("vigil:dashboard:{i}"), "expr": e})
        })
        .collect();
    // One file per call: the SQLite and PostgreSQL variants run this at the same time in one
    // process, and a shared name let one remove the other's file before promtool read it.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!("vigil-dashboard-rules-{}-{n}.json", std::process::id()));
    std::fs::write(&file, json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string())?;
    let out = Command::new("promtool").args(["check", "rules"]).arg(&file).output()?;
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
