//! Guards on silences: a `=~` pattern that would compile to megabytes (the silence bomb) is
//! refused with a 400 naming its matcher, a valid silence is compiled once however many
//! alerts it is tested against, and no silence (however broad, from a respond key) holds
//! back the server's own integrity and tamper alerts: the truncation alert at restart and
//! the decisions-table mismatch alert, on both backends.

use super::*;
use vigil_tests::{sample_event, seed};

both_backends!(a_truncation_alert_is_never_silenced_by_a_respond_key, a_decisions_mismatch_alert_is_never_silenced,);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_bomb_is_refused_naming_its_matcher_and_a_valid_silence_compiles_once() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let hook = webhook("hook", &rec, "/hook", None);
    let app = app(Backend::Sqlite, |c| c.receivers = vec![hook]).await?;
    let responder = app.create_key("respond").await?;
    // Each at most 1 KiB of pattern; each megabytes of program.
    for bomb in ["(?:a{1000}){300}", "(?:(?:a{100}){100}){100}", "(?:[\\w\\W]{1000}){50}", "(?:a{1000}){10}"] {
        assert!(bomb.len() <= 1024);
        let body = json!({"matchers": [{"name": "rule", "op": "=", "value": "manual"},
            {"name": "fields.user", "op": "=~", "value": bomb}], "ends_at": T0 + 60 * MIN, "created_by": "mallory"});
        let (status, err) = post(&app, &responder, "/v1/silences", body).await?;
        assert_eq!(status, 400, "{bomb}: {err}");
        assert_eq!(err["error"]["details"]["matcher"], 1, "{err}");
        assert_eq!(err["error"]["details"]["name"], "fields.user", "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("matchers[1] (`fields.user` =~)") && message.contains("256 KiB"), "{message}");
    }
    assert_eq!(app.get("/v1/silences").await?.1["silences"], json!([]), "nothing stored");

    // A valid pattern: compiled once, not once per alert batch.
    let (status, s) = post(
        &app,
        &responder,
        "/v1/silences",
        json!({"matchers": [{"name": "title", "op": "=~", "value": "(?i)maintenance .*"}],
            "ends_at": T0 + 60 * MIN, "created_by": "ops"}),
    )
    .await?;
    assert_eq!(status, 201, "{s}");
    let before = app.server.state.alerts.silence_compilations();
    for i in 0..20 {
        let alert = manual(&app, &format!("Maintenance window {i}"), "P3").await?;
        assert_eq!(alert["silenced_by"], s["id"], "{alert}");
    }
    assert_eq!(app.server.state.alerts.silence_compilations() - before, 1, "one compilation for 20 alerts");
    assert_eq!(app.get("/v1/silences").await?.1["silences"][0]["matched"], 20);
    Ok(())
}

/// Silences as broad as a respond key can make them, each alone enough to hold back a P1
/// alert of the server's own.
async fn hush_everything(app: &TestApp, key: &str, ends_at: i64) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for (name, op, value) in [
        ("rule", "=~", ".*"),
        ("rule", "=", "vigil"),
        ("severity", "=", "P1"),
        ("title", "=~", "(?is).*"),
        ("dedup_key", "=~", "(integrity|decisions):.*"),
    ] {
        let (status, s) = post(
            app,
            key,
            "/v1/silences",
            json!({"matchers": [{"name": name, "op": op, "value": value}], "ends_at": ends_at, "created_by": "mallory"}),
        )
        .await?;
        anyhow::ensure!(status == 201, "{s}");
        ids.push(s["id"].as_str().unwrap().to_owned());
    }
    Ok(ids)
}

/// The alert of `rule = vigil` whose dedup key starts with `prefix`, once it exists.
async fn own_alert(app: &TestApp, prefix: &str) -> anyhow::Result<Value> {
    let find = |b: &Value| {
        b["alerts"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["dedup_key"].as_str().is_some_and(|k| k.starts_with(prefix))).cloned())
    };
    let body = app.wait_for("/v1/alerts?rule=vigil&limit=100", 20, |b| find(b).is_some()).await?;
    find(&body).ok_or_else(|| anyhow::anyhow!("no `{prefix}` alert: {body}"))
}

async fn a_truncation_alert_is_never_silenced_by_a_respond_key(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let hook = webhook("hook", &rec, "/hook", None);
    let app = spawn_app_with(backend, |c| c.receivers = vec![hook]).await?;
    let responder = app.create_key("respond").await?;
    let ids = hush_everything(&app, &responder, vigil::event::now_ms() + 86_400_000).await?;
    // The silences work: an ordinary P1 alert is held back.
    let held = manual(&app, "Ordinary P1", "P1").await?;
    assert!(ids.contains(&held["silenced_by"].as_str().unwrap_or_default().to_owned()), "{held}");

    // The attack it would hide: the newest rows deleted, then a restart.
    seed(&app, 20).await?;
    app.server.state.sequencer.checkpoint_now().await?;
    let head = app.get("/v1/integrity/head").await?.1["seq"].as_i64().unwrap();
    app.drop_append_only_guards().await?;
    app.exec_sql(&format!("DELETE FROM events WHERE seq > {}", head - 8)).await?;
    app.exec_sql(&format!("DELETE FROM checkpoints WHERE seq > {}", head - 8)).await?;
    let app = app.restart().await?;
    let (status, _) = app.post_events(&json!([sample_event(99)])).await?;
    assert_eq!(status, 503, "the log is on hold");

    let alert = own_alert(&app, "integrity:").await?;
    assert_eq!(alert["severity"], "P1");
    assert!(alert["title"].as_str().unwrap().contains("truncated"), "{alert}");
    assert!(alert["silenced_by"].is_null(), "no silence holds the integrity alert: {alert}");
    let got = rec.wait_for("/hook", 20, |r| r.iter().any(|m| m.json()["data"]["alert"]["id"] == alert["id"])).await;
    assert!(got.iter().any(|m| m.json()["data"]["alert"]["id"] == alert["id"]), "notified: {got:?}");
    Ok(())
}

async fn a_decisions_mismatch_alert_is_never_silenced(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let hook = webhook("hook", &rec, "/hook", None);
    let app = spawn_app_with(backend, |c| c.receivers = vec![hook]).await?;
    let responder = app.create_key("respond").await?;
    let (status, decision) = post(
        &app,
        &app.admin_key,
        "/v1/decisions",
        json!({"scope": "ip", "value": "10.9.0.1", "kind": "block", "duration_secs": 3600, "reason": "r"}),
    )
    .await?;
    anyhow::ensure!(status == 201, "{decision}");
    hush_everything(&app, &responder, vigil::event::now_ms() + 86_400_000).await?;
    // Someone with access to the database deletes the block to get in.
    app.exec_sql(&format!("DELETE FROM decisions WHERE id = {}", decision["id"])).await?;
    let app = app.restart().await?;
    let alert = own_alert(&app, "decisions:chain_mismatch").await?;
    assert_eq!(alert["severity"], "P1");
    assert!(alert["silenced_by"].is_null(), "no silence holds the mismatch alert: {alert}");
    let got = rec.wait_for("/hook", 20, |r| r.iter().any(|m| m.json()["data"]["alert"]["id"] == alert["id"])).await;
    assert!(got.iter().any(|m| m.json()["data"]["alert"]["id"] == alert["id"]), "notified: {got:?}");
    Ok(())
}
