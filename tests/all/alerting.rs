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

mod delivery;
mod escalation;
mod follow_ups;
mod hostile_text;
mod routing;
mod silence_guards;

both_backends!(
    a_brute_force_burst_is_one_alert_notified_acked_and_not_escalated,
    a_failing_receiver_opens_the_breaker_and_every_notification_arrives_once,
    retry_after_is_honoured_4xx_is_not_retried_and_dead_letters_can_be_retried,
    lifecycle_history_roles_silences_and_stats,
    an_alert_row_with_text_the_server_never_writes_is_a_located_failure,
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
        // A local relay without credentials: STARTTLS when offered (the test servers
        // without TLS offer none), asked for explicitly.
        starttls: Some("opportunistic".into()),
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

// Long by design: one scenario end to end, each step asserting what the previous one changed.
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
    // One button, saying what it does: an incoming webhook cannot take a click.
    let blocks = slack_msg["attachments"][0]["blocks"].as_array().unwrap();
    let buttons = &blocks.last().unwrap()["elements"];
    assert_eq!(buttons.as_array().map(Vec::len), Some(1), "{buttons}");
    assert_eq!(buttons[0]["text"]["text"], "Open in Vigil");
    assert!(buttons[0]["url"].as_str().unwrap().ends_with(&format!("/#/alerts/{id}")), "{buttons}");
    // The alert's fields as Slack fields, not a JSON code block.
    let fields = blocks[1]["fields"].as_array().expect("a section of fields");
    assert!(fields.iter().any(|f| f["text"] == "*ip*\n`203.0.113.7`"), "{fields:?}");
    assert!(!slack_msg.to_string().contains("```"), "{slack_msg}");
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
    // Slack hears of it too, as a new message naming the responder's key and the comment.
    let chat = rec.wait_for("/slack", 20, |r| r.iter().any(|m| m.body.contains("Acknowledged by"))).await;
    let acked = chat.iter().map(|m| m.json()).find(|m| m.to_string().contains("Acknowledged by")).unwrap();
    let text = acked["text"].as_str().unwrap();
    assert!(text.starts_with("[P2] Acknowledged by respond: Brute force") && text.ends_with(" — on it"), "{text}");
    // The email receiver gets no status mail (one mail per alert, threshold and reminder).
    let to_email = notifications(&app, &format!("alert_id={id}&receiver=email")).await?;
    assert!(!to_email.is_empty() && to_email.iter().all(|n| n["kind"] != "acknowledge"), "{to_email:?}");

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

// Long by design: one scenario end to end, each step asserting what the previous one changed.
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

    // Silences: matching alerts are stored and counted, not notified. (Counted once the
    // second resolve, the last notification owed so far, has reached the hook.)
    let resolves =
        |r: &[vigil_tests::receiver::Recorded]| r.iter().filter(|m| m.json()["type"] == "alert.resolved").count() >= 2;
    assert!(resolves(&rec.wait_for("/hook", 20, resolves).await), "the second resolve reached the hook");
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

/// A severity or status the server never writes (a tampered database) is a located failure
/// of the reads that meet it (logged with the table, id and column), never a panic; the
/// server keeps answering, and the row reads again once it holds what the server wrote.
async fn an_alert_row_with_text_the_server_never_writes_is_a_located_failure(backend: Backend) -> anyhow::Result<()> {
    let app = app(backend, |_| {}).await?;
    let id = manual(&app, "tampered later", "P2").await?["id"].as_i64().unwrap();
    let path = format!("/v1/alerts/{id}");
    for (column, text) in [("severity", "P9"), ("status", "snoozed")] {
        app.exec_sql(&format!("UPDATE alerts SET {column} = '{text}' WHERE id = {id}")).await?;
        for read in [path.as_str(), "/v1/alerts"] {
            let (status, body) = app.get(read).await?;
            assert_eq!((status, &body["error"]["code"]), (500, &json!("internal")), "{column}: {read}: {body}");
        }
        let (status, body) = app.get("/v1/alerts/stats").await?;
        assert_eq!(status, 200, "counts of the stored texts still answer: {body}");
        app.exec_sql(&format!("UPDATE alerts SET severity = 'P2', status = 'open' WHERE id = {id}")).await?;
        let (status, body) = app.get(&path).await?;
        assert_eq!((status, &body["severity"], &body["status"]), (200, &json!("P2"), &json!("open")), "{body}");
    }
    Ok(())
}
