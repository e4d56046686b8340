//! Alerts reach people: the lifecycle, Wasm routing, real receivers (a recording HTTP server
//! and a real SMTP server), the outbox, circuit breakers, storm control, silences,
//! escalation and the digest, on both backends, under a manual server clock (time is
//! moved forward, never slept through).

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use vigil::clock::Clock;
use vigil::config::{Config, EscalationLevel, EscalationPolicy, ReceiverConfig};
use vigil_tests::receiver::{Mode, Recorder, Smtp};
use vigil_tests::{Backend, TestApp, both_backends, example_rules, spawn_app_with};

both_backends!(
    a_brute_force_burst_is_one_alert_notified_acked_and_not_escalated,
    a_failing_receiver_opens_the_breaker_and_every_notification_arrives_once,
    retry_after_is_honoured_4xx_is_not_retried_and_dead_letters_can_be_retried,
    lifecycle_history_roles_silences_and_stats,
    routing_rules_route_and_a_broken_router_never_silences,
    a_spinning_or_flooding_router_neither_stalls_nor_silences,
    a_routing_rule_can_name_the_escalation_policy,
    escalation_policies_run_on_database_timers_that_survive_a_restart,
);

/// 2026-01-05T07:00:00Z, a Monday: the manual clock's start.
const T0: i64 = 1_767_596_400_000;
const MIN: i64 = 60_000;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn webhook(name: &str, rec: &Recorder, path: &str, format: Option<&str>) -> ReceiverConfig {
    ReceiverConfig {
        name: name.into(),
        kind: "webhook".into(),
        url: Some(rec.url(path)),
        secret: Some(SECRET.into()),
        format: format.map(str::to_owned),
        ..Default::default()
    }
}

fn slack(rec: &Recorder) -> ReceiverConfig {
    ReceiverConfig { name: "chat".into(), kind: "slack".into(), url: Some(rec.url("/slack")), ..Default::default() }
}

fn pager(rec: &Recorder) -> ReceiverConfig {
    ReceiverConfig {
        name: "pager".into(),
        kind: "pagerduty".into(),
        url: Some(rec.url("/pd")),
        routing_key: Some("R0UT1NGKEY".into()),
        ..Default::default()
    }
}

fn email(smtp: &Smtp) -> ReceiverConfig {
    ReceiverConfig {
        name: "email".into(),
        kind: "email".into(),
        smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
        from: Some("vigil@example.org".into()),
        to: vec!["secops@example.org".into()],
        ..Default::default()
    }
}

async fn app(backend: Backend, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<TestApp> {
    spawn_app_with(backend, |c| {
        c.clock = Clock::manual(T0);
        adjust(c);
    })
    .await
}

async fn deploy_examples(app: &TestApp, names: &[&str]) -> anyhow::Result<()> {
    let dir = example_rules()?;
    for name in names {
        let (status, body) = app.put_rule(name, std::fs::read(dir.join(format!("{name}.wasm")))?).await?;
        anyhow::ensure!(status == 200 || status == 201, "deploy {name}: {status} {body}");
    }
    Ok(())
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    app.send(app.client.post(app.url(path)).json(&body), key).await
}

async fn manual(app: &TestApp, title: &str, severity: &str) -> anyhow::Result<Value> {
    let (status, body) = post(app, &app.admin_key, "/v1/alerts", json!({"title": title, "severity": severity})).await?;
    anyhow::ensure!(status == 201, "manual alert: {status} {body}");
    Ok(body)
}

fn failures(ip: &str, at: i64, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({"category": "authentication", "action": "login_failed", "outcome": "failure",
                    "ip": ip, "user_id": format!("victim{i}"), "timestamp": at + i as i64 * 1000})
            })
            .collect(),
    )
}

/// Checks a Standard Webhooks signature the way a receiver does.
fn signature_ok(r: &vigil_tests::receiver::Recorded) -> bool {
    let key = base64::engine::general_purpose::STANDARD.decode(SECRET.trim_start_matches("whsec_")).unwrap();
    let (id, ts) = (&r.headers["webhook-id"], &r.headers["webhook-timestamp"]);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{}", r.body).as_bytes());
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    r.headers.get("webhook-signature") == Some(&expected)
}

async fn notifications(app: &TestApp, query: &str) -> anyhow::Result<Vec<Value>> {
    let (status, body) = app.get(&format!("/v1/notifications?limit=1000&{query}")).await?;
    anyhow::ensure!(status == 200, "{status} {body}");
    Ok(body["notifications"].as_array().cloned().unwrap_or_default())
}

/// Lets the outbox worker run a pass (it is woken by clock moves and new rows; this only
/// gives it real time to finish HTTP calls to the local recorder).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(600)).await;
}

async fn a_brute_force_burst_is_one_alert_notified_acked_and_not_escalated(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let smtp = Smtp::start().await?;
    let (c, p, e) = (slack(&rec), pager(&rec), email(&smtp));
    let app = app(backend, |cfg| cfg.receivers = vec![c, p, e]).await?;
    deploy_examples(&app, &["brute_force", "default_router"]).await?;
    let responder = app.create_key("respond").await?;

    // Burst 1: six failed logins from one IP within six seconds.
    let e0 = 1_767_600_000_000;
    let (status, posted) = app.post_events(&failures("203.0.113.7", e0, 6)).await?;
    assert_eq!(status, 201, "{posted}");
    let seqs: Vec<i64> = posted["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let body = app
        .wait_for("/v1/alerts?rule=brute_force&severity=P2", 20, |b| {
            b["alerts"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await?;
    let alert = body["alerts"][0].clone();
    let id = alert["id"].as_i64().unwrap();
    assert_eq!(alert["event_seqs"], json!(seqs), "the alert names all six failures it counted");
    assert_eq!(alert["count"], 1);

    // Delivered to chat, email and pager (the default router's P2 receivers).
    let chat = rec.wait_for("/slack", 20, |r| !r.is_empty()).await;
    let pd = rec.wait_for("/pd", 20, |r| !r.is_empty()).await;
    let mail = smtp.wait_for(1, 20).await;
    assert_eq!((chat.len(), pd.len(), mail.len()), (1, 1, 1));
    let slack_msg = chat[0].json();
    assert!(slack_msg["text"].as_str().unwrap().contains("Brute force"), "{slack_msg}");
    assert_eq!(slack_msg["attachments"][0]["color"], "#f5a623", "P2 colour");
    let buttons = &slack_msg["attachments"][0]["blocks"][2]["elements"];
    assert!(buttons[0]["url"].as_str().unwrap().ends_with(&format!("/alerts/{id}/ack")), "{buttons}");
    let trigger = pd[0].json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], "R0UT1NGKEY");
    assert_eq!(trigger["payload"]["severity"], "error", "P2 is PagerDuty error");
    let dedup_key = trigger["dedup_key"].clone();
    assert_eq!(dedup_key, alert["fingerprint"]);
    assert!(mail[0].contains("Subject: [P2] Brute force"), "{}", mail[0]);
    assert!(mail[0].contains("multipart/alternative") && mail[0].contains("text/html"), "plain and HTML");

    // Nine more bursts, each in a fresh five-minute window: the same alert counts them.
    for k in 1..10 {
        let (status, _) = app.post_events(&failures("203.0.113.7", e0 + k * 6 * MIN, 6)).await?;
        assert_eq!(status, 201);
    }
    let body = app.wait_for(&format!("/v1/alerts/{id}"), 20, |b| b["count"] == 10).await?;
    assert_eq!(body["count"], 10, "{body}");
    let p2: Vec<Value> =
        app.get("/v1/alerts?rule=brute_force&severity=P2").await?.1["alerts"].as_array().unwrap().clone();
    assert_eq!(p2.len(), 1, "one P2 alert for the IP: {p2:?}");
    let chat = rec.wait_for("/slack", 20, |r| r.iter().any(|m| m.body.contains("(10 occurrences)"))).await;
    assert!(chat.iter().any(|m| m.body.contains("(10 occurrences)")), "re-notified at 10");
    assert!(!chat.iter().any(|m| m.body.contains("(9 occurrences)")), "only at the thresholds");

    // Acknowledged by a responder: PagerDuty gets the acknowledge for the same dedup_key.
    let (status, acked) = post(&app, &responder, &format!("/v1/alerts/{id}/ack"), json!({"comment": "on it"})).await?;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    let pd = rec.wait_for("/pd", 20, |r| r.iter().any(|m| m.json()["event_action"] == "acknowledge")).await;
    let ack = pd.iter().map(|m| m.json()).find(|m| m["event_action"] == "acknowledge").expect("acknowledge sent");
    assert_eq!(ack["dedup_key"], dedup_key);

    // The 21st failure within the hour raised a P1, left unacknowledged: it escalates after
    // 15 minutes (and only then); the acknowledged P2 never does.
    let p1 = app.get("/v1/alerts?rule=brute_force&severity=P1").await?.1["alerts"][0].clone();
    let p1_id = p1["id"].as_i64().expect("a P1 alert");
    app.server.state.alerts.clock().advance(14 * MIN);
    settle().await;
    assert!(notifications(&app, &format!("alert_id={p1_id}")).await?.iter().all(|n| n["kind"] != "escalation"));
    app.server.state.alerts.clock().advance(2 * MIN);
    let escalated = app
        .wait_for(&format!("/v1/alerts/{p1_id}"), 20, |b| {
            b["history"].as_array().is_some_and(|h| h.iter().any(|c| c["action"] == "escalated"))
        })
        .await?;
    assert!(escalated["history"].as_array().unwrap().iter().any(|c| c["action"] == "escalated"), "{escalated}");
    rec.wait_for("/slack", 20, |r| r.iter().any(|m| m.body.contains("ESCALATED"))).await;
    app.server.state.alerts.clock().advance(2 * 60 * MIN);
    settle().await;
    let p2_now = app.get(&format!("/v1/alerts/{id}")).await?.1;
    assert!(p2_now["history"].as_array().unwrap().iter().all(|c| c["action"] != "escalated"), "acked: no escalation");
    assert!(p2_now["escalations"].as_array().unwrap().iter().all(|e| e["status"] == "cancelled"));

    // The history is in the chain, with the responder's key id.
    let done = app
        .wait_for(&format!("/v1/alerts/{id}"), 20, |b| {
            b["history"].as_array().is_some_and(|h| h.iter().all(|c| c["chain_seq"].is_i64()))
        })
        .await?;
    let ack_change =
        done["history"].as_array().unwrap().iter().find(|c| c["action"] == "acknowledged").unwrap().clone();
    let (_, ev) = app.get("/v1/events?category=alert&action=alert_acknowledged").await?;
    let ev = &ev["events"][0];
    assert_eq!(ev["seq"], ack_change["chain_seq"]);
    assert_eq!(ev["details"]["alert_id"], id);
    assert_eq!(ev["user_id"], ack_change["actor"]);
    assert!(ev["user_id"].as_str().unwrap().starts_with("k_"), "the responder's key id: {ev}");
    assert_eq!(app.verify().await?["status"], "ok");
    assert_eq!(done["chain"]["consistent"], true, "{}", done["chain"]);

    // The alerts table is a projection of the chain: a row changed behind the server's
    // back disagrees with its latest chain event, and the alert says so.
    app.exec_sql(&format!("UPDATE alerts SET status = 'resolved', count = 1 WHERE id = {id}")).await?;
    let tampered = app.get(&format!("/v1/alerts/{id}")).await?.1;
    assert_eq!(tampered["chain"]["consistent"], false, "{}", tampered["chain"]);
    let fields: Vec<&str> =
        tampered["chain"]["differences"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["status", "count"]);
    Ok(())
}

async fn a_failing_receiver_opens_the_breaker_and_every_notification_arrives_once(
    backend: Backend,
) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let hook = webhook("hook", &rec, "/hook", None);
    let app = app(backend, |c| c.receivers = vec![hook]).await?;
    rec.set_mode("/hook", Mode::Status(503));
    for i in 0..6 {
        manual(&app, &format!("incident {i}"), "P3").await?;
    }
    // Five failures within 60 s open the circuit; the sixth waits in the outbox.
    let receivers = app.wait_for("/v1/receivers", 20, |b| b["receivers"][0]["circuit"]["state"] == "open").await?;
    let circuit = &receivers["receivers"][0]["circuit"];
    assert_eq!(circuit["state"], "open", "{receivers}");
    assert_eq!(circuit["last_error"], "HTTP 503");
    assert!(!receivers.to_string().contains(&rec.base), "no URL in the receiver listing");
    settle().await;
    assert_eq!(rec.requests("/hook").len(), 5, "nothing is sent while open");
    assert_eq!(notifications(&app, "status=pending").await?.len(), 6, "all wait in the outbox");

    // The receiver recovers; after 30 s the breaker lets trial calls through, two successes
    // close it, and everything waiting arrives.
    rec.set_mode("/hook", Mode::Ok);
    app.server.state.alerts.clock().advance(29_000);
    settle().await;
    assert_eq!(rec.delivered("/hook").len(), 0, "still open before 30 s");
    app.server.state.alerts.clock().advance(2_000);
    let got = rec.wait_for("/hook", 20, |r| r.len() >= 6).await;
    let mut ids: Vec<&String> = got.iter().map(|r| &r.headers["webhook-id"]).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "every notification arrived: {ids:?}");
    assert!(got.iter().all(signature_ok), "signatures verify with the shared secret");
    // Retries kept the webhook-id of the first attempt.
    let all = rec.requests("/hook");
    let first_attempts: Vec<&String> = all.iter().take(5).map(|r| &r.headers["webhook-id"]).collect();
    assert!(first_attempts.iter().all(|id| ids.contains(id)));
    let after = app.get("/v1/receivers").await?.1;
    assert_eq!(after["receivers"][0]["circuit"]["state"], "closed", "{after}");

    // Operators can force it open (nothing goes) and reset it.
    let admin = app.admin_key.clone();
    let (status, body) = post(&app, &admin, "/v1/receivers/hook/circuit", json!({"action": "force_open"})).await?;
    assert_eq!((status, body["circuit"]["state"].as_str()), (200, Some("open")));
    manual(&app, "while forced open", "P3").await?;
    settle().await;
    assert_eq!(rec.delivered("/hook").len(), 6);
    let (status, _) = post(&app, &admin, "/v1/receivers/hook/circuit", json!({"action": "reset"})).await?;
    assert_eq!(status, 200);
    rec.wait_for("/hook", 20, |r| r.len() >= 7).await;
    assert_eq!(rec.delivered("/hook").len(), 7);
    let reader = app.create_key("read").await?;
    let (status, _) = post(&app, &reader, "/v1/receivers/hook/circuit", json!({"action": "reset"})).await?;
    assert_eq!(status, 403, "circuit commands need admin");
    let (status, _) = post(&app, &admin, "/v1/receivers/hook/circuit", json!({"action": "explode"})).await?;
    assert_eq!(status, 400);
    let (status, _) = post(&app, &admin, "/v1/receivers/nope/circuit", json!({"action": "reset"})).await?;
    assert_eq!(status, 404);
    Ok(())
}

async fn retry_after_is_honoured_4xx_is_not_retried_and_dead_letters_can_be_retried(
    backend: Backend,
) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let hook = webhook("hook", &rec, "/hook", None);
    let app = app(backend, |c| {
        c.receivers = vec![hook];
        c.outbox.max_age_secs = 600;
    })
    .await?;
    let clock = app.server.state.alerts.clock().clone();

    // 429 with Retry-After: 120 -> not before 120 s.
    rec.set_mode("/hook", Mode::RetryAfter(120));
    manual(&app, "rate limited", "P3").await?;
    // The 429 has been answered and its retry scheduled (before the clock moves).
    app.wait_for("/v1/notifications?status=pending", 20, |b| b["notifications"][0]["attempts"].as_i64() >= Some(1))
        .await?;
    rec.set_mode("/hook", Mode::Ok);
    clock.advance(100_000);
    settle().await;
    assert_eq!(rec.requests("/hook").len(), 1, "Retry-After honoured");
    clock.advance(21_000);
    rec.wait_for("/hook", 20, |r| r.len() == 1).await;
    assert_eq!(rec.delivered("/hook").len(), 1);

    // 400: failed, kept, not retried.
    rec.set_mode("/hook", Mode::Status(400));
    manual(&app, "bad request", "P3").await?;
    let failed = app
        .wait_for("/v1/notifications?status=failed", 20, |b| {
            b["notifications"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await?;
    let n = &failed["notifications"][0];
    assert_eq!((n["attempts"].as_i64(), n["last_error"].as_str()), (Some(1), Some("HTTP 400 (not retried)")));
    clock.advance(10 * MIN);
    settle().await;
    assert_eq!(rec.requests("/hook").len(), 3, "the 400 was tried once");

    // 500 until max_age: dead-lettered, listed, and retryable.
    rec.set_mode("/hook", Mode::Status(500));
    manual(&app, "down for good", "P3").await?;
    // Backoff with jitter: keep moving time (at most 30 minutes) until the attempt after
    // max_age has happened.
    let mut dead = Vec::new();
    for _ in 0..30 {
        clock.advance(MIN);
        settle().await;
        dead = notifications(&app, "status=dead").await?;
        if !dead.is_empty() {
            break;
        }
    }
    assert_eq!(dead.len(), 1, "dead-lettered after max_age: {dead:?}");
    let attempts = dead[0]["attempts"].as_i64().unwrap();
    assert!(attempts >= 3, "retried with backoff before: {attempts}");
    rec.set_mode("/hook", Mode::Ok);
    let responder = app.create_key("respond").await?;
    let id = dead[0]["id"].as_i64().unwrap();
    let (status, body) = post(&app, &responder, &format!("/v1/notifications/{id}/retry"), json!({})).await?;
    assert_eq!((status, body["status"].as_str()), (200, Some("pending")), "{body}");
    let ok = rec.wait_for("/hook", 20, |r| r.len() >= 2).await;
    assert_eq!(ok.len(), 2, "the dead letter arrived after the retry");
    let (status, _) = post(&app, &responder, &format!("/v1/notifications/{id}/retry"), json!({})).await?;
    assert_eq!(status, 409, "a delivered notification is not retried");
    Ok(())
}

async fn lifecycle_history_roles_silences_and_stats(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let hook = webhook("hook", &rec, "/hook", None);
    let am = webhook("am", &rec, "/am", Some("alertmanager"));
    let app = app(backend, |c| c.receivers = vec![hook, am]).await?;
    let clock = app.server.state.alerts.clock().clone();
    let (responder, reader) = (app.create_key("respond").await?, app.create_key("read").await?);

    // Roles: reading is not responding.
    let (status, _) = post(&app, &reader, "/v1/alerts", json!({"title": "x", "severity": "P2"})).await?;
    assert_eq!(status, 403);
    let (status, body) = post(&app, &responder, "/v1/alerts", json!({"title": "", "severity": "P9"})).await?;
    assert_eq!(status, 400, "{body}");

    let a = manual(&app, "Suspicious wire transfer", "P2").await?;
    let id = a["id"].as_i64().unwrap();
    let (status, _) = post(&app, &reader, &format!("/v1/alerts/{id}/ack"), json!({})).await?;
    assert_eq!(status, 403);
    clock.advance(90_000);
    let (status, body) = post(&app, &responder, &format!("/v1/alerts/{id}/ack"), json!({})).await?;
    assert_eq!((status, body["status"].as_str()), (200, Some("acknowledged")));
    let (status, _) = post(&app, &responder, &format!("/v1/alerts/{id}/ack"), json!({})).await?;
    assert_eq!(status, 409, "acking twice is a conflict");
    let (status, body) =
        post(&app, &responder, &format!("/v1/alerts/{id}/resolve"), json!({"disposition": "maybe"})).await?;
    assert_eq!(status, 400, "{body}");
    clock.advance(30_000);
    let (status, body) =
        post(&app, &responder, &format!("/v1/alerts/{id}/resolve"), json!({"disposition": "false_positive"})).await?;
    assert_eq!((status, body["disposition"].as_str()), (200, Some("false_positive")));
    let (status, body) =
        post(&app, &responder, &format!("/v1/alerts/{id}/reopen"), json!({"comment": "again"})).await?;
    assert_eq!((status, body["status"].as_str()), (200, Some("open")));
    let (status, _) = post(&app, &responder, "/v1/alerts/999999/ack", json!({})).await?;
    assert_eq!(status, 404);
    let (status, _) = post(&app, &responder, "/v1/alerts/abc/ack", json!({})).await?;
    assert_eq!(status, 400);

    // The alertmanager receiver got v4 JSON: firing, then resolved.
    let am_msgs = rec.wait_for("/am", 20, |r| r.len() >= 3).await;
    let bodies: Vec<Value> = am_msgs.iter().map(|r| r.json()).collect();
    assert_eq!(bodies[0]["version"], "4");
    assert_eq!(bodies[0]["status"], "firing");
    assert_eq!(bodies[0]["alerts"][0]["labels"]["severity"], "P2");
    assert_eq!(bodies[0]["alerts"][0]["labels"]["alertname"], "manual");
    assert!(bodies.iter().any(|b| b["status"] == "resolved"), "{bodies:?}");
    let hook_msgs = rec.wait_for("/hook", 20, |r| r.len() >= 3).await;
    assert_eq!(hook_msgs[0].json()["type"], "alert.triggered");
    assert!(hook_msgs.iter().any(|m| m.json()["type"] == "alert.resolved"));
    assert!(hook_msgs.iter().all(signature_ok));

    // History: every step with its actor; the alert list filters.
    let full = app.get(&format!("/v1/alerts/{id}")).await?.1;
    let actions: Vec<&str> =
        full["history"].as_array().unwrap().iter().map(|c| c["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["manual", "acknowledged", "resolved", "reopened"]);
    let listed = app.get("/v1/alerts?status=open&severity=P2").await?.1;
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 1);
    let (status, _) = app.get("/v1/alerts?status=sleeping").await?;
    assert_eq!(status, 400);

    // Stats: MTTA 90 s, MTTR 120 s, false-positive rate 1.0 for `manual` (before reopen
    // cleared the resolution, the disposition was recorded; reopened alerts count again
    // when resolved again).
    let (status, _) =
        post(&app, &responder, &format!("/v1/alerts/{id}/resolve"), json!({"disposition": "false_positive"})).await?;
    assert_eq!(status, 200);
    let stats = app.get("/v1/alerts/stats").await?.1;
    let manual_stats = stats["by_rule"].as_array().unwrap().iter().find(|r| r["rule"] == "manual").unwrap().clone();
    assert_eq!(manual_stats["false_positive_rate"], 1.0, "{stats}");
    assert_eq!(stats["by_severity"]["P2"], 1);
    assert!(stats["mttr_seconds"].as_f64().unwrap() >= 120.0, "{stats}");
    let metrics = app.client.get(app.url("/metrics")).send().await?.text().await?;
    assert!(metrics.contains("vigil_rule_false_positive_ratio{rule=\"manual\"} 1"), "{metrics}");
    assert!(metrics.contains("vigil_rule_mtta_seconds{rule=\"manual\"} 90"), "{metrics}");
    assert!(metrics.contains("vigil_alerts_by_severity{severity=\"P2\"} 1"));
    assert!(metrics.contains("vigil_receiver_circuit_open{receiver=\"hook\",state=\"closed\"} 0"));

    // Silences: matching alerts are stored and counted, not notified.
    let before = rec.requests("/hook").len();
    let (status, s) = post(
        &app,
        &responder,
        "/v1/silences",
        json!({"matchers": [{"name": "title", "op": "=~", "value": "Maintenance.*"}, {"name": "severity", "op": "!=", "value": "P1"}],
            "ends_at": T0 + 24 * 60 * MIN, "created_by": "ops", "comment": "planned window"}),
    )
    .await?;
    assert_eq!(status, 201, "{s}");
    let silence_id = s["id"].as_str().unwrap().to_owned();
    let silenced = manual(&app, "Maintenance reboot", "P3").await?;
    assert_eq!(silenced["silenced_by"], json!(silence_id));
    let loud = manual(&app, "Maintenance breach", "P1").await?;
    assert!(loud["silenced_by"].is_null(), "P1 is not matched");
    rec.wait_for("/hook", 20, |r| r.len() > before).await;
    settle().await;
    let after: Vec<Value> = rec.requests("/hook")[before..].iter().map(|r| r.json()).collect();
    assert_eq!(after.len(), 1, "only the unsilenced alert notified: {after:?}");
    assert_eq!(after[0]["data"]["alert"]["title"], "Maintenance breach");
    let listed = app.get("/v1/silences").await?.1;
    assert_eq!(listed["silences"][0]["matched"], 1);
    assert_eq!(listed["silences"][0]["state"], "active");
    for bad in [
        json!({"matchers": [{"name": "colour", "op": "=", "value": "x"}], "ends_at": T0 + MIN * 100, "created_by": "a"}),
        json!({"matchers": [{"name": "rule", "op": "=~", "value": "("}], "ends_at": T0 + MIN * 100, "created_by": "a"}),
        json!({"matchers": [], "ends_at": T0 + MIN * 100, "created_by": "a"}),
        json!({"matchers": [{"name": "rule", "op": "=", "value": "x"}], "ends_at": T0 - 1, "created_by": "a"}),
    ] {
        let (status, body) = post(&app, &responder, "/v1/silences", bad.clone()).await?;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    let (status, _) = app.send(app.client.delete(app.url(&format!("/v1/silences/{silence_id}"))), &responder).await?;
    assert_eq!(status, 200);
    let listed = app.get("/v1/silences").await?.1;
    assert_eq!(listed["silences"][0]["state"], "expired", "an expired silence stays listed");
    let loud_again = manual(&app, "Maintenance reboot", "P3").await?;
    assert!(loud_again["silenced_by"].is_null());
    let (_, chain) = app.get("/v1/events?category=alert&action=silence_created").await?;
    assert_eq!(chain["events"][0]["details"]["silence_id"], json!(silence_id));
    let (_, chain) = app.get("/v1/events?category=alert&action=silence_expired").await?;
    assert_eq!(chain["events"].as_array().unwrap().len(), 1);
    assert_eq!(app.verify().await?["status"], "ok");
    Ok(())
}

/// A raw ABI routing module whose evaluate traps.
fn trapping_router() -> Vec<u8> {
    raw_router("bad_router", "unreachable")
}

/// A raw ABI 1.0 routing module named `name` whose `vigil_evaluate` (param `$n`, local `$i`)
/// runs `body`; the bytes `nope` are at address 4096, `pager` at 4200, `policy:night` at
/// 4205, and `route` is imported as `$route`.
fn raw_router(name: &str, body: &str) -> Vec<u8> {
    let manifest = json!({"name": name, "version": "1.0.0", "kind": "routing", "severity": "P3",
        "fields": ["severity"], "subscribe": [{"categories": [], "actions": [], "outcomes": []}]})
    .to_string();
    let escaped: String = manifest.bytes().map(|b| format!("\\{b:02x}")).collect();
    let wat = format!(
        r#"(module
  (import "vigil" "route" (func $route (param i32 i32 i32)))
  (memory (export "memory") 4)
  (data (i32.const 4096) "nope")
  (data (i32.const 4200) "pagerpolicy:night")
  (global (export "VIGIL_ABI_MAJOR") i32 (i32.const 16))
  (global (export "VIGIL_ABI_MINOR") i32 (i32.const 20))
  (data (i32.const 16) "\01\00\00\00\00\00\00\00")
  (data (i32.const 65536) "{escaped}")
  (func (export "vigil_manifest") (result i64) (i64.or (i64.shl (i64.const 65536) (i64.const 32)) (i64.const {len})))
  (func (export "vigil_input_area") (result i64) (i64.or (i64.shl (i64.const 131072) (i64.const 32)) (i64.const 65536)))
  (func (export "vigil_verdicts") (result i64) (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 64)))
  (func (export "vigil_init") (param i32) (result i32) (i32.const 0))
  (func (export "vigil_evaluate") (param $n i32) (result i32) (local $i i32) {body})
)"#,
        len = manifest.len()
    );
    wat::parse_str(&wat).expect("valid WAT")
}

async fn routing_rules_route_and_a_broken_router_never_silences(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let receivers = vec![
        webhook("pager", &rec, "/pager", None),
        webhook("chat", &rec, "/chat", None),
        webhook("email", &rec, "/email", None),
    ];
    let app = app(backend, |c| {
        c.receivers = receivers;
        c.routing.default_receivers = Some(vec!["chat".into()]);
    })
    .await?;
    // No routing rule: the default receivers.
    manual(&app, "no router", "P1").await?;
    rec.wait_for("/chat", 20, |r| !r.is_empty()).await;
    settle().await;
    assert_eq!((rec.requests("/pager").len(), rec.requests("/email").len()), (0, 0));

    // default_router: P3 to email only; P1 to pager, chat and email.
    deploy_examples(&app, &["default_router", "sql_injection_probe"]).await?;
    // A title an attacker controls, in an alert whose history goes to the chain: the
    // history events are never offered to detection, so no alert loops on itself.
    manual(&app, "probe ' OR 1=1 -- UNION SELECT", "P3").await?;
    rec.wait_for("/email", 20, |r| !r.is_empty()).await;
    manual(&app, "page me", "P1").await?;
    rec.wait_for("/pager", 20, |r| !r.is_empty()).await;
    rec.wait_for("/email", 20, |r| r.len() >= 2).await;
    rec.wait_for("/chat", 20, |r| r.len() >= 2).await;
    settle().await;
    assert_eq!(rec.requests("/chat").len(), 2, "P3 did not go to chat; P1 did");
    assert_eq!(rec.requests("/pager").len(), 1);
    app.detection_idle().await?;
    settle().await;
    let sqli = app.get("/v1/alerts?rule=sql_injection_probe").await?.1;
    assert_eq!(sqli["alerts"].as_array().unwrap().len(), 0, "alert history is not detection input: {sqli}");

    // A routing rule that traps: its alerts still go to the default receivers, and after
    // repeated faults it is quarantined with an alert of its own.
    let (status, _) = app.send(app.client.delete(app.url("/v1/rules/default_router")), &app.admin_key).await?;
    assert_eq!(status, 200);
    let (status, body) = app.put_rule("bad_router", trapping_router()).await?;
    assert!(status == 200 || status == 201, "{body}");
    for i in 0..4 {
        manual(&app, &format!("routed by a broken router {i}"), "P2").await?;
    }
    let chat = rec.wait_for("/chat", 20, |r| r.len() >= 6).await;
    assert!(chat.len() >= 6, "every alert reached the default receiver: {}", chat.len());
    let q = app
        .wait_for("/v1/alerts?rule=vigil", 20, |b| {
            b["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["title"].as_str().unwrap().contains("bad_router")))
        })
        .await?;
    assert!(q.to_string().contains("quarantined"), "{q}");
    Ok(())
}

async fn escalation_policies_run_on_database_timers_that_survive_a_restart(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let receivers = vec![
        webhook("pager", &rec, "/pager", None),
        webhook("secondary", &rec, "/secondary", None),
        webhook("cto", &rec, "/cto", None),
    ];
    let policy = EscalationPolicy {
        name: None,
        severity: Some("P1".into()),
        repeat: 1,
        levels: vec![
            EscalationLevel { after: "15m".into(), receivers: vec!["secondary".into()] },
            EscalationLevel { after: "30m".into(), receivers: vec!["cto".into()] },
        ],
    };
    let app = app(backend, |c| {
        c.receivers = receivers;
        c.routing.default_receivers = Some(vec!["pager".into()]);
        c.escalation = vec![policy];
    })
    .await?;
    let clock = app.server.state.alerts.clock().clone();
    let a = manual(&app, "database exfiltration", "P1").await?;
    let id = a["id"].as_i64().unwrap();
    let acked = manual(&app, "acked quickly", "P1").await?;
    let responder = app.create_key("respond").await?;
    let (status, _) = post(&app, &responder, &format!("/v1/alerts/{}/ack", acked["id"]), json!({})).await?;
    assert_eq!(status, 200);
    rec.wait_for("/pager", 20, |r| r.len() >= 2).await;

    // Restart (the timers are rows): nothing is lost.
    let app = app.restart().await?;
    clock.advance(14 * MIN);
    settle().await;
    assert!(rec.requests("/secondary").is_empty(), "not before 15 minutes");
    clock.advance(2 * MIN);
    let s = rec.wait_for("/secondary", 20, |r| !r.is_empty()).await;
    assert_eq!(s.len(), 1, "only the unacknowledged alert escalates");
    assert_eq!(s[0].json()["data"]["alert"]["id"], id);
    assert_eq!(s[0].json()["type"], "alert.escalated");
    clock.advance(15 * MIN);
    rec.wait_for("/cto", 20, |r| !r.is_empty()).await;
    // The policy repeats once: secondary again at 45 min, cto at 60 min, then it stops.
    clock.advance(15 * MIN);
    rec.wait_for("/secondary", 20, |r| r.len() >= 2).await;
    clock.advance(15 * MIN);
    rec.wait_for("/cto", 20, |r| r.len() >= 2).await;
    clock.advance(120 * MIN);
    settle().await;
    assert_eq!((rec.requests("/secondary").len(), rec.requests("/cto").len()), (2, 2));
    let full = app.get(&format!("/v1/alerts/{id}")).await?.1;
    let escalated = full["history"].as_array().unwrap().iter().filter(|c| c["action"] == "escalated").count();
    assert_eq!(escalated, 4, "{full}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_control_folds_a_burst_into_one_summary() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let hook = webhook("hook", &rec, "/hook", None);
    let app = app(Backend::Sqlite, |c| {
        c.receivers = vec![hook];
        c.outbox.storm_threshold = 3;
    })
    .await?;
    rec.set_mode("/hook", Mode::Slow(Duration::from_millis(200)));
    for i in 0..12 {
        manual(&app, &format!("storm {i}"), "P3").await?;
    }
    // Every alert ends up in a message: a single one or an item of a summary.
    let accounted = |r: &[vigil_tests::receiver::Recorded]| {
        r.iter()
            .map(|m| m.json())
            .map(|m| if m["type"] == "alerts.summary" { m["data"]["items"].as_array().map_or(0, Vec::len) } else { 1 })
            .sum::<usize>()
    };
    rec.wait_for("/hook", 30, |r| accounted(r) >= 12).await;
    settle().await;
    let got = rec.delivered("/hook");
    let singles = got.iter().filter(|m| m.json()["type"] == "alert.triggered").count();
    let summaries: Vec<Value> = got.iter().map(|m| m.json()).filter(|m| m["type"] == "alerts.summary").collect();
    assert!(singles <= 3, "at most 3 single messages within the minute: {singles}");
    let folded: usize = summaries.iter().map(|s| s["data"]["items"].as_array().unwrap().len()).sum();
    assert_eq!(singles + folded, 12, "every alert is in a message");
    assert_eq!(notifications(&app, "status=folded").await?.len(), folded);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_digest_carries_p4_alerts_and_the_security_report() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let receivers = vec![
        webhook("hook", &rec, "/hook", None),
        ReceiverConfig {
            name: "digest".into(),
            kind: "digest".into(),
            via: Some("hook".into()),
            at: Some("08:00".into()),
            ..Default::default()
        },
    ];
    let app = app(Backend::Sqlite, |c| c.receivers = receivers).await?;
    deploy_examples(&app, &["default_router"]).await?;
    app.post_events(&failures("198.51.100.1", T0 - 3_600_000, 3)).await?;
    manual(&app, "low one", "P4").await?;
    manual(&app, "low two", "P4").await?;
    app.wait_for("/v1/notifications?status=digest", 20, |b| {
        b["notifications"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await?;
    settle().await;
    assert!(rec.requests("/hook").is_empty(), "P4 alerts wait for the digest");
    // 07:59 -> nothing; 08:00 -> the digest.
    app.server.state.alerts.clock().advance(59 * MIN);
    settle().await;
    assert!(rec.requests("/hook").is_empty());
    app.server.state.alerts.clock().advance(2 * MIN);
    let got = rec.wait_for("/hook", 20, |r| !r.is_empty()).await;
    assert_eq!(got.len(), 1);
    let d = got[0].json();
    assert_eq!(d["type"], "digest.daily");
    assert_eq!(d["data"]["items"].as_array().unwrap().len(), 2);
    let report = &d["data"]["report"];
    let auth = report["events"]["by_category"].as_array().unwrap().iter().find(|c| c["value"] == "authentication");
    assert_eq!(auth.map(|c| c["count"].clone()), Some(json!(3)), "{report}");
    assert_eq!(report["events"]["top_ips"][0]["value"], "198.51.100.1");
    assert!(report["events"]["failure_rate"].as_f64().unwrap() > 0.0);
    assert!(report["alerts"]["mtta_seconds"].is_null(), "nothing acknowledged yet");
    assert_eq!(report["alerts"]["by_severity"]["P4"], 2);
    // Once a day: another hour brings nothing new.
    app.server.state.alerts.clock().advance(60 * MIN);
    settle().await;
    assert_eq!(rec.requests("/hook").len(), 1);
    assert_eq!(notifications(&app, "status=digested").await?.len(), 2);
    Ok(())
}

async fn a_spinning_or_flooding_router_neither_stalls_nor_silences(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let receivers = vec![webhook("chat", &rec, "/chat", None), webhook("pager", &rec, "/pager", None)];
    let app = app(backend, |c| {
        c.receivers = receivers;
        c.routing.default_receivers = Some(vec!["chat".into()]);
    })
    .await?;
    // Names 100,000 receivers, none of them configured: the host keeps 64 names per call,
    // none is valid, so the alert goes to the default receiver.
    let flood = "(block $done (loop $l (br_if $done (i32.ge_u (local.get $i) (i32.const 100000))) \
                 (call $route (i32.const 0) (i32.const 4096) (i32.const 4)) \
                 (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l))) (i32.const 0)";
    let (status, body) = app.put_rule("flood_router", raw_router("flood_router", flood)).await?;
    assert!(status == 200 || status == 201, "{body}");
    manual(&app, "routed by a flooding router", "P1").await?;
    let got = rec.wait_for("/chat", 20, |r| !r.is_empty()).await;
    assert_eq!(got.len(), 1, "the default receiver got it");
    let (status, _) = app.send(app.client.delete(app.url("/v1/rules/flood_router")), &app.admin_key).await?;
    assert_eq!(status, 200);

    // Loops forever: interrupted at its time budget, counted as a fault; the alert still
    // goes out, and ingest and the API keep answering meanwhile.
    let (status, body) =
        app.put_rule("spin_router", raw_router("spin_router", "(loop $l (br $l)) (i32.const 0)")).await?;
    assert!(status == 200 || status == 201, "{body}");
    let started = std::time::Instant::now();
    manual(&app, "routed by a spinning router", "P1").await?;
    assert!(started.elapsed() < Duration::from_secs(10), "routing is bounded by the rule's budget");
    let got = rec.wait_for("/chat", 20, |r| r.len() >= 2).await;
    assert_eq!(got.len(), 2);
    let (status, _) = app.post_events(&failures("192.0.2.1", T0, 1)).await?;
    assert_eq!(status, 201);
    let stats = app.get("/v1/rules/spin_router/stats").await?.1;
    assert_eq!(stats["stats"]["faults"], 1, "counted as a fault: {stats}");
    assert!(stats["stats"]["time_ns"].as_i64().unwrap() < 5_000_000_000, "stopped at its budget: {stats}");
    assert!(rec.requests("/pager").is_empty(), "nothing was routed anywhere else");
    Ok(())
}

fn lockout(user: &str, at: i64) -> Value {
    json!([{"category": "authentication", "action": "account_locked", "outcome": "success", "user_id": user,
        "timestamp": at}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_ending_lets_the_next_occurrence_through_and_reminders_repeat() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let hook = webhook("hook", &rec, "/hook", None);
    let app = app(Backend::Sqlite, |c| {
        c.receivers = vec![hook];
        c.alerts.repeat_interval_secs = 600;
    })
    .await?;
    deploy_examples(&app, &["account_lockout"]).await?;
    let clock = app.server.state.alerts.clock().clone();
    let e0 = 1_767_600_000_000;
    let (status, s) = post(
        &app,
        &app.admin_key,
        "/v1/silences",
        json!({"matchers": [{"name": "rule", "op": "=", "value": "account_lockout"}],
            "ends_at": T0 + 60 * MIN, "created_by": "ops"}),
    )
    .await?;
    assert_eq!(status, 201, "{s}");
    app.post_events(&lockout("carol", e0)).await?;
    let body =
        app.wait_for("/v1/alerts?rule=account_lockout", 20, |b| b["alerts"][0]["silenced_by"].is_string()).await?;
    let id = body["alerts"][0]["id"].as_i64().unwrap();
    settle().await;
    assert!(rec.requests("/hook").is_empty(), "silenced");

    // The silence ends; the next occurrence of the same alert is notified (first time).
    let (status, _) = app
        .send(app.client.delete(app.url(&format!("/v1/silences/{}", s["id"].as_str().unwrap()))), &app.admin_key)
        .await?;
    assert_eq!(status, 200);
    app.post_events(&lockout("carol", e0 + 60_000)).await?;
    let got = rec.wait_for("/hook", 20, |r| !r.is_empty()).await;
    assert_eq!(got[0].json()["type"], "alert.triggered");
    assert_eq!(got[0].json()["data"]["alert"]["id"], id);
    assert_eq!(got[0].json()["data"]["alert"]["count"], 2);

    // Still open 10 minutes after its last notification: reminded (with or without a new
    // occurrence), then not again until another 10 minutes pass.
    app.post_events(&lockout("carol", e0 + 120_000)).await?;
    app.detection_idle().await?;
    clock.advance(9 * MIN);
    settle().await;
    assert_eq!(rec.requests("/hook").len(), 1, "no reminder within the interval");
    clock.advance(2 * MIN);
    let got = rec.wait_for("/hook", 20, |r| r.len() >= 2).await;
    let reminder = got[1].json();
    assert_eq!(reminder["type"], "alert.repeated");
    assert_eq!(reminder["data"]["extra"]["reason"], "repeat_interval");
    assert_eq!(reminder["data"]["alert"]["count"], 3);
    app.post_events(&lockout("carol", e0 + 180_000)).await?;
    app.detection_idle().await?;
    clock.advance(5 * MIN);
    settle().await;
    assert_eq!(rec.requests("/hook").len(), 2, "one reminder per interval");
    // Acknowledged: no more reminders.
    let (status, _) = post(&app, &app.admin_key, &format!("/v1/alerts/{id}/ack"), json!({})).await?;
    assert_eq!(status, 200);
    clock.advance(30 * MIN);
    settle().await;
    assert_eq!(rec.requests("/hook").len(), 2);
    let full = app.get(&format!("/v1/alerts/{id}")).await?.1;
    assert!(full["history"].as_array().unwrap().iter().any(|c| c["action"] == "reminded"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_uses_starttls_when_offered_and_verifies_certificates_by_default() -> anyhow::Result<()> {
    let smtp = Smtp::start_tls().await?;
    let trusting = ReceiverConfig { name: "email".into(), smtp_accept_invalid_certs: true, ..email(&smtp) };
    let strict = ReceiverConfig { name: "strict".into(), ..email(&smtp) };
    let app = app(Backend::Sqlite, |c| c.receivers = vec![trusting, strict]).await?;
    manual(&app, "Over TLS", "P2").await?;
    // The server refuses mail before STARTTLS, so a message that arrives went over TLS.
    let got = smtp.wait_for(1, 20).await;
    assert_eq!(got.len(), 1, "delivered after STARTTLS: {:?}", notifications(&app, "").await?);
    assert!(got[0].contains("Subject: [P2] Over TLS"), "{}", got[0]);
    // The receiver that verifies certificates does not accept the self-signed one.
    let pending = app
        .wait_for("/v1/notifications?receiver=strict", 20, |b| b["notifications"][0]["attempts"].as_i64() >= Some(1))
        .await?;
    let n = &pending["notifications"][0];
    assert_eq!(n["status"], "pending", "retried later, not delivered: {n}");
    assert!(n["last_error"].as_str().unwrap().starts_with("SMTP"), "{n}");
    settle().await;
    assert_eq!(smtp.messages().len(), 1);
    Ok(())
}

fn seqs_of(posted: &Value) -> Vec<i64> {
    posted["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_alerts_name_every_event_they_counted() -> anyhow::Result<()> {
    let app = app(Backend::Sqlite, |_| {}).await?;
    deploy_examples(&app, &["coordinated_attack", "bulk_data_access"]).await?;
    let e0 = 1_767_600_000_000;
    let lockouts: Vec<Value> = (0..11).map(|u| lockout(&format!("user{u}"), e0 + u * 1000)[0].clone()).collect();
    let (_, posted) = app.post_events(&Value::Array(lockouts)).await?;
    let reads: Vec<Value> = (0..3)
        .map(|i| {
            json!({"category": "data_access", "action": "records_read", "outcome": "success", "user_id": "mallory",
                "timestamp": e0 + i * 1000, "details": {"record_count": 400}})
        })
        .collect();
    let (_, read_posted) = app.post_events(&Value::Array(reads)).await?;
    let body = app.wait_for("/v1/alerts?rule=coordinated_attack", 20, |b| b["alerts"][0].is_object()).await?;
    assert_eq!(body["alerts"][0]["event_seqs"], json!(seqs_of(&posted)), "all 11 lockouts");
    let body = app.wait_for("/v1/alerts?rule=bulk_data_access", 20, |b| b["alerts"][0].is_object()).await?;
    assert_eq!(body["alerts"][0]["event_seqs"], json!(seqs_of(&read_posted)), "the 3 reads summed");
    let id = body["alerts"][0]["id"].as_i64().unwrap();
    let full = app.get(&format!("/v1/alerts/{id}")).await?.1;
    let decoded: Vec<i64> = full["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(decoded, seqs_of(&read_posted), "its events, decoded");
    assert_eq!(full["events"][0]["details"]["record_count"], 400);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_that_cannot_be_stored_is_retried_until_the_database_takes_it() -> anyhow::Result<()> {
    let app = app(Backend::Sqlite, |_| {}).await?;
    deploy_examples(&app, &["account_lockout"]).await?;
    // The alerts table refuses writes (as a full disk or a failing database would).
    app.exec_sql("CREATE TRIGGER refuse_alerts BEFORE INSERT ON alerts BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END;")
        .await?;
    let (status, _) = app.post_events(&lockout("dave", 1_767_600_000_000)).await?;
    assert_eq!(status, 201, "ingest is not held up by the alert writer");
    app.detection_idle().await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(app.get("/v1/alerts?rule=account_lockout").await?.1["alerts"].as_array().unwrap().len(), 0);
    app.exec_sql("DROP TRIGGER refuse_alerts").await?;
    let body = app.wait_for("/v1/alerts?rule=account_lockout", 30, |b| b["alerts"][0].is_object()).await?;
    assert_eq!(body["alerts"][0]["dedup_key"], "user:dave", "stored once the database took writes again: {body}");
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1, "stored once");
    Ok(())
}

async fn a_routing_rule_can_name_the_escalation_policy(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let receivers = vec![webhook("pager", &rec, "/pager", None), webhook("cto", &rec, "/cto", None)];
    let night = EscalationPolicy {
        name: Some("night".into()),
        severity: None,
        repeat: 0,
        levels: vec![EscalationLevel { after: "5m".into(), receivers: vec!["cto".into()] }],
    };
    let app = app(backend, |c| {
        c.receivers = receivers;
        c.escalation = vec![night];
    })
    .await?;
    // Routes every alert to `pager` and names the policy `night`.
    let body = "(call $route (i32.const 0) (i32.const 4200) (i32.const 5)) \
                (call $route (i32.const 0) (i32.const 4205) (i32.const 12)) (i32.const 0)";
    let (status, b) = app.put_rule("night_router", raw_router("night_router", body)).await?;
    assert!(status == 200 || status == 201, "{b}");
    let a = manual(&app, "after hours", "P3").await?;
    assert_eq!(a["escalation_policy"], "night", "{a}");
    assert_eq!(a["receivers"], json!(["pager"]));
    rec.wait_for("/pager", 20, |r| !r.is_empty()).await;
    let clock = app.server.state.alerts.clock().clone();
    clock.advance(4 * MIN);
    settle().await;
    assert!(rec.requests("/cto").is_empty());
    clock.advance(2 * MIN);
    let got = rec.wait_for("/cto", 20, |r| !r.is_empty()).await;
    assert_eq!(got.len(), 1, "a P3 escalated by the policy its router named");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_receiver_behind_a_private_ca_is_trusted_only_with_its_ca_file() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-ca-{}", uuid::Uuid::now_v7().simple()));
    let (ca, leaf, key) = vigil_tests::receiver::private_ca(&dir)?;
    let https = vigil_tests::receiver::HttpsRecorder::start(&dir, &leaf, &key).await?;
    let trusting = ReceiverConfig {
        name: "siem".into(),
        kind: "webhook".into(),
        url: Some(format!("{}/siem", https.base)),
        ca_file: Some(ca),
        ..Default::default()
    };
    let strict = ReceiverConfig {
        name: "strict".into(),
        kind: "webhook".into(),
        url: Some(format!("{}/strict", https.base)),
        ..Default::default()
    };
    let app = app(Backend::Sqlite, |c| c.receivers = vec![trusting, strict]).await?;
    manual(&app, "over https", "P2").await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !https.lines().iter().any(|l| l.starts_with("/siem ")) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(https.lines().iter().any(|l| l.starts_with("/siem n")), "delivered over TLS: {:?}", https.lines());
    let strict_rows = app
        .wait_for("/v1/notifications?receiver=strict", 20, |b| b["notifications"][0]["attempts"].as_i64() >= Some(1))
        .await?;
    let n = &strict_rows["notifications"][0];
    assert_eq!(n["status"], "pending", "an unknown CA is not trusted: {n}");
    assert!(!https.lines().iter().any(|l| l.starts_with("/strict")));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_naming_nobody_falls_back_and_a_resolve_never_overtakes_its_trigger() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let app = app(Backend::Sqlite, |c| c.receivers = vec![pager(&rec)]).await?;
    let (status, b) = app.put_rule("mute_router", raw_router("mute_router", "(i32.const 0)")).await?;
    assert!(status == 200 || status == 201, "{b}");
    let clock = app.server.state.alerts.clock().clone();
    // PagerDuty is rate limiting: the trigger waits 120 s.
    rec.set_mode("/pd", Mode::RetryAfter(120));
    let a = manual(&app, "routed by a router that names nobody", "P2").await?;
    assert_eq!(a["receivers"], json!(["pager"]), "the defaults, not nobody: {a}");
    app.wait_for("/v1/notifications?receiver=pager", 20, |b| b["notifications"][0]["attempts"].as_i64() >= Some(1))
        .await?;
    rec.set_mode("/pd", Mode::Ok);
    let id = a["id"].as_i64().unwrap();
    let (status, _) =
        post(&app, &app.admin_key, &format!("/v1/alerts/{id}/resolve"), json!({"disposition": "benign"})).await?;
    assert_eq!(status, 200);
    clock.advance(10_000);
    settle().await;
    assert_eq!(rec.requests("/pd").len(), 1, "the resolve waits behind its trigger");
    clock.advance(111_000);
    let got = rec.wait_for("/pd", 20, |r| r.len() >= 2).await;
    let actions: Vec<Value> = got.iter().map(|r| r.json()["event_action"].clone()).collect();
    assert_eq!(actions, [json!("trigger"), json!("resolve")], "in order");
    Ok(())
}
