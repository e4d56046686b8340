//! The Prometheus exposition of `GET /metrics` passes Prometheus' own linter
//! (`promtool check metrics`, installed by `scripts/setup.sh --postgres`) after real traffic:
//! a deployed rule and the router (labelled per-rule series), ingest, a rejected request,
//! detection and an alert, on both backends.

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
        "# TYPE vigil_receiver_notifications gauge",
        "vigil_rule_state_bytes",
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
    Ok(())
}
