//! How decisions are issued (issue 21): simulate mode, globally and per rule, records a
//! rule's decisions without enforcing them; people give durations as text or seconds.

use vigil::config::{DecisionMode, RuleDecisionsConfig};

use super::guardrails::stored_on;
use super::*;

both_backends!(
    simulate_mode_records_decisions_that_are_never_enforced,
    simulate_mode_per_rule_overrides_the_global_mode
);

/// 21 failures from `ip`, and the P1 alert's decision once recorded (any status).
async fn burst_and_decision(app: &TestApp, clock: &Clock, ip: &str) -> anyhow::Result<Value> {
    let (status, body) = app.post_events(&failures(ip, clock.now_ms() - 30 * MIN, 21)).await?;
    anyhow::ensure!(status == 201, "{body}");
    eventually(&format!("the decision on {ip}"), || async { Ok(stored_on(app, ip).await?.into_iter().next()) }).await
}

// Long by design: the simulated decision is followed everywhere a decision shows.
async fn simulate_mode_records_decisions_that_are_never_enforced(backend: Backend) -> anyhow::Result<()> {
    let (app, clock) = app(backend, |c| c.decisions.mode = DecisionMode::Simulate).await?;
    deploy_example(&app, "brute_force").await?;
    let bouncer_key = app.create_key("bouncer").await?;
    let reader = app.create_key("read").await?;
    let start = stream(&app, &bouncer_key, None).await?;
    let cursor = start["cursor"].as_str().unwrap().to_owned();
    let d = burst_and_decision(&app, &clock, "192.0.2.77").await?;
    assert_eq!(d["status"], "simulated", "{d}");
    assert_eq!(d["rule"], "brute_force");
    assert!(d["alert_id"].is_i64(), "tied to its alert: {d}");
    // Not enforced: no check, stream or bouncer sees it.
    assert!(check(&app, &bouncer_key, "ip", "192.0.2.77").await?.is_empty());
    let (_, active) = app.get("/v1/decisions").await?;
    assert_eq!(active["decisions"], json!([]), "{active}");
    let snapshot = stream(&app, &bouncer_key, None).await?;
    assert_eq!(snapshot["added"], json!([]), "{snapshot}");
    let delta = stream(&app, &bouncer_key, Some(&cursor)).await?;
    assert_eq!((delta["added"].clone(), delta["deleted"].clone()), (json!([]), json!([])), "{delta}");
    // Visible to people, with the reason, under status=simulated; a bouncer key may not ask.
    let (status, simulated) = app.send(app.client.get(app.url("/v1/decisions?status=simulated")), &reader).await?;
    assert_eq!(status, 200);
    assert_eq!(ids(&simulated["decisions"]), vec![d["id"].as_i64().unwrap()], "{simulated}");
    assert!(simulated["decisions"][0]["reason"].as_str().unwrap().contains("Brute force"));
    let (status, _) = app.send(app.client.get(app.url("/v1/decisions?status=simulated")), &bouncer_key).await?;
    assert_eq!(status, 403);
    // Recorded in the chain and in the alert's history; lifting it makes no sense.
    let events = app
        .wait_for("/v1/events?category=response&action=decision_simulated", 15, |b| b["events"][0].is_object())
        .await?;
    assert_eq!(events["events"][0]["details"]["decision_id"], d["id"], "{events}");
    let alert_path = format!("/v1/alerts/{}", d["alert_id"]);
    let detail = app
        .wait_for(&alert_path, 15, |b| {
            b["history"].as_array().is_some_and(|h| h.iter().any(|h| h["action"] == "decision_simulated"))
        })
        .await?;
    assert!(detail["history"].as_array().unwrap().iter().any(|h| h["action"] == "decision_simulated"), "{detail}");
    let (status, _) = lift(&app, &app.admin_key, d["id"].as_i64().unwrap(), Some(json!({"reason": "x"}))).await?;
    assert_eq!(status, 409, "only an active decision can be lifted");
    assert_eq!(app.metric("vigil_decisions_simulated_total").await?, Some(1));
    assert_eq!(app.metric("vigil_decisions_issued_total").await?, Some(0));
    // A person's decision is enforced in simulate mode: the mode is about rules.
    let (status, manual) = issue(
        &app,
        &app.admin_key,
        json!({"scope": "ip", "value": "192.0.2.78", "kind": "block", "duration": "1h", "reason": "r"}),
    )
    .await?;
    assert_eq!((status, manual["status"].as_str()), (201, Some("active")), "{manual}");
    // A restart does not turn a simulated decision into an enforced one.
    let app = app.restart().await?;
    assert!(check(&app, &app.admin_key, "ip", "192.0.2.77").await?.is_empty());
    let (_, alerts) = app.get("/v1/alerts?rule=vigil").await?;
    assert_eq!(alerts["alerts"], json!([]), "the table agrees with the chain: {alerts}");
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    Ok(())
}

async fn simulate_mode_per_rule_overrides_the_global_mode(backend: Backend) -> anyhow::Result<()> {
    let per_rule = |mode| [("brute_force".to_owned(), RuleDecisionsConfig { mode })].into_iter().collect();
    // Enforced globally, simulated for the rule.
    let (first, clock) = app(backend, |c| c.decisions.rules = per_rule(DecisionMode::Simulate)).await?;
    deploy_example(&first, "brute_force").await?;
    let d = burst_and_decision(&first, &clock, "192.0.2.81").await?;
    assert_eq!(d["status"], "simulated", "{d}");
    assert!(check(&first, &first.admin_key, "ip", "192.0.2.81").await?.is_empty());
    drop(first);
    // Simulated globally, enforced for the rule.
    let (second, clock) = app(backend, |c| {
        c.decisions.mode = DecisionMode::Simulate;
        c.decisions.rules = per_rule(DecisionMode::Enforce);
    })
    .await?;
    deploy_example(&second, "brute_force").await?;
    let d = burst_and_decision(&second, &clock, "192.0.2.82").await?;
    assert_eq!(d["status"], "active", "{d}");
    assert_eq!(check(&second, &second.admin_key, "ip", "192.0.2.82").await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_are_given_as_text_or_seconds_never_both() -> anyhow::Result<()> {
    let (app, _clock) = app(Backend::Sqlite, |_| {}).await?;
    for (duration, ms) in [("90s", 90_000), ("30m", 30 * MIN), ("4h", 240 * MIN), ("7d", 7 * 1440 * MIN)] {
        let (status, d) = issue(
            &app,
            &app.admin_key,
            json!({"scope": "user", "value": format!("u{duration}"), "kind": "block", "duration": duration, "reason": "r"}),
        )
        .await?;
        assert_eq!(status, 201, "{duration}: {d}");
        let created = vigil::event::parse_time(d["created_at"].as_str().unwrap()).unwrap();
        let expires = vigil::event::parse_time(d["expires_at"].as_str().unwrap()).unwrap();
        assert_eq!(expires - created, ms, "{duration}");
    }
    for (extra, why) in [
        (json!({"duration": "30m", "duration_secs": 1800}), "not both"),
        (json!({}), "duration is required"),
        (json!({"duration": "30"}), "no unit"),
        (json!({"duration": "30x"}), "unknown unit"),
        (json!({"duration": "1.5h"}), "unknown unit"),
        (json!({"duration": "0m"}), "more than zero"),
        (json!({"duration": "-5m"}), "not a duration"),
        (json!({"duration": "99999999999999999999d"}), "too large"),
        (json!({"duration": "999999999999999d"}), "too large"),
        (json!({"duration": "31d"}), "longer than"),
        (json!({"duration": 30}), "expected a string"),
        (json!({"duration_secs": 0}), "duration_secs"),
    ] {
        let mut body = json!({"scope": "user", "value": "x", "kind": "block", "reason": "r"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = issue(&app, &app.admin_key, body.clone()).await?;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap_or_default().contains(why), "{body}: {answer}");
    }
    Ok(())
}
