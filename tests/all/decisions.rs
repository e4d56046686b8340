//! Decisions on both backends: a brute-force burst blocks the IP (the example rule's
//! decision, tied to its P1 alert, an event of the chain, in the alert's history), the
//! bouncer role reads decisions and nothing else, the example bouncer turns the IP away and
//! lets others through, the block expires on the manual clock (lookups at once, the stream
//! and the bouncer next), a person issues and lifts decisions with a reason, resolving an
//! alert as false_positive lifts its decisions on request, a restart keeps the active set
//! and the stream cursor, a rule flooding decisions (raw ABI) is capped, and a rule decision
//! the database refuses is retried until it takes it. `guardrails`: the allowlist; `issuing`:
//! simulate mode and durations as text; `bouncer_view`: the bouncer's reduced view and the
//! paged stream snapshot; `examples`: the responses of the other example rules.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil::clock::Clock;
use vigil::config::Config;
use vigil_tests::{Backend, TestApp, both_backends, example_rules, spawn_app_with};

mod bouncer_view;
mod durability;
mod examples;
mod guardrails;
mod issuing;

both_backends!(
    a_brute_force_burst_blocks_the_ip_until_it_expires,
    people_issue_and_lift_decisions_with_a_reason,
    resolving_as_false_positive_lifts_the_decisions_of_the_alert,
);

const MIN: i64 = 60_000;
const ATTACKER: &str = "203.0.113.7";

/// A server on a manual clock that starts at the real time (so the example bouncer, which
/// expires decisions by its own clock, agrees with the server until the test moves it).
async fn app(backend: Backend, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<(TestApp, Clock)> {
    let clock = Clock::manual(vigil::event::now_ms());
    let c2 = clock.clone();
    let app = spawn_app_with(backend, move |c| {
        c.clock = c2;
        adjust(c);
    })
    .await?;
    Ok((app, clock))
}

async fn deploy_example(app: &TestApp, name: &str) -> anyhow::Result<()> {
    let wasm = std::fs::read(example_rules()?.join(format!("{name}.wasm")))?;
    let (status, body) = app.put_rule(name, wasm).await?;
    anyhow::ensure!(status == 200 || status == 201, "deploy {name}: {status} {body}");
    Ok(())
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

async fn check(app: &TestApp, key: &str, scope: &str, value: &str) -> anyhow::Result<Vec<Value>> {
    let url = app.url(&format!("/v1/decisions?scope={scope}&value={value}"));
    let (status, body) = app.send(app.client.get(url), key).await?;
    anyhow::ensure!(status == 200, "check {scope}={value}: {status} {body}");
    Ok(body["decisions"].as_array().cloned().unwrap_or_default())
}

async fn stream(app: &TestApp, key: &str, since: Option<&str>) -> anyhow::Result<Value> {
    let path = since.map_or_else(|| "/v1/decisions/stream".to_owned(), |s| format!("/v1/decisions/stream?since={s}"));
    let (status, body) = app.send(app.client.get(app.url(&path)), key).await?;
    anyhow::ensure!(status == 200, "stream: {status} {body}");
    Ok(body)
}

async fn issue(app: &TestApp, key: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    app.send(app.client.post(app.url("/v1/decisions")).json(&body), key).await
}

async fn lift(app: &TestApp, key: &str, id: i64, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
    let mut req = app.client.delete(app.url(&format!("/v1/decisions/{id}")));
    if let Some(b) = body {
        req = req.json(&b);
    }
    app.send(req, key).await
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array().map(|a| a.iter().filter_map(|d| d["id"].as_i64()).collect()).unwrap_or_default()
}

/// Polls `f` until it returns Some or 15 s pass.
async fn eventually<T, F: std::future::Future<Output = anyhow::Result<Option<T>>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An app behind the example bouncer, reading decisions with `key`.
async fn protected_app(
    vigil: &TestApp,
    key: &str,
    fail_mode: vigil_bouncer::FailMode,
) -> anyhow::Result<(String, vigil_bouncer::Bouncer, actix_web::dev::ServerHandle)> {
    let config = vigil_bouncer::BouncerConfig {
        poll_interval: Duration::from_millis(100),
        fail_mode,
        trust_forwarded_for: true,
        user_header: Some("x-user-id".into()),
        ..vigil_bouncer::BouncerConfig::new(vigil.base.clone(), key.to_owned())
    };
    let bouncer = vigil_bouncer::Bouncer::start(config);
    let b = bouncer.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .wrap(vigil_bouncer::BouncerMiddleware::new(b.clone()))
            .route("/", actix_web::web::get().to(|| async { "hello" }))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")?;
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((format!("http://{addr}"), bouncer, handle))
}

async fn through_bouncer(base: &str, ip: &str, user: Option<&str>) -> anyhow::Result<u16> {
    let mut req = reqwest::Client::new().get(format!("{base}/")).header("x-forwarded-for", ip);
    if let Some(u) = user {
        req = req.header("x-user-id", u);
    }
    Ok(req.send().await?.status().as_u16())
}

// Long by design: one scenario end to end, each step asserting what the previous one changed.
async fn a_brute_force_burst_blocks_the_ip_until_it_expires(backend: Backend) -> anyhow::Result<()> {
    let (app, clock) = app(backend, |_| {}).await?;
    deploy_example(&app, "brute_force").await?;
    let bouncer_key = app.create_key("bouncer").await?;
    let (site, _bouncer, site_handle) = protected_app(&app, &bouncer_key, vigil_bouncer::FailMode::Closed).await?;
    eventually("the bouncer's first sync", || async {
        Ok((through_bouncer(&site, "198.51.100.1", None).await? == 200).then_some(()))
    })
    .await?;

    // 21 failures in an hour: the P1 threshold (more than 20).
    let (status, body) = app.post_events(&failures(ATTACKER, clock.now_ms() - 30 * MIN, 21)).await?;
    anyhow::ensure!(status == 201, "{status} {body}");
    let posted = Instant::now();
    let seen =
        eventually("the block", || async { Ok(check(&app, &bouncer_key, "ip", ATTACKER).await?.into_iter().next()) })
            .await?;
    eprintln!("brute-force burst -> decision visible to a check in {:?}", posted.elapsed());
    // A bouncer key is given what enforcement needs; people see the whole decision.
    let mut fields: Vec<&str> = seen.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["expires_at", "id", "kind", "scope", "value"], "{seen}");
    let decision = check(&app, &app.admin_key, "ip", ATTACKER).await?.remove(0);
    assert_eq!(decision["id"], seen["id"]);
    assert_eq!((decision["scope"].as_str(), decision["kind"].as_str()), (Some("ip"), Some("block")), "{decision}");
    assert_eq!(decision["origin"], "rule");
    assert_eq!(decision["actor"], "rule:brute_force");
    assert_eq!(decision["rule"], "brute_force");
    assert!(decision["rule_sha256"].as_str().is_some_and(|s| s.len() == 64), "{decision}");
    assert_eq!(decision["event_seqs"].as_array().map(Vec::len), Some(21), "the counted failures: {decision}");
    let created = vigil::event::parse_time(decision["created_at"].as_str().unwrap()).unwrap();
    let expires = vigil::event::parse_time(decision["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, 30 * MIN, "blocked for 30 minutes");
    let (_, alerts) = app.get("/v1/alerts?rule=brute_force&severity=P1").await?;
    let alert = &alerts["alerts"][0];
    assert_eq!(decision["alert_id"], alert["id"], "tied to the P1 alert: {alerts}");
    assert!(check(&app, &bouncer_key, "ip", "198.51.100.1").await?.is_empty(), "another IP is not blocked");
    assert!(check(&app, &bouncer_key, "user", ATTACKER).await?.is_empty(), "scopes are apart");

    // The bouncer role reads decisions and nothing else.
    for path in ["/v1/events", "/v1/alerts", "/v1/rules", "/v1/integrity/head"] {
        let (status, _) = app.send(app.client.get(app.url(path)), &bouncer_key).await?;
        assert_eq!(status, 403, "a bouncer key must not read {path}");
    }
    let (status, _) = issue(
        &app,
        &bouncer_key,
        json!({"scope": "ip", "value": "1.2.3.4", "kind": "block", "duration_secs": 60, "reason": "x"}),
    )
    .await?;
    assert_eq!(status, 403, "a bouncer key cannot issue decisions");
    let (status, _) =
        app.send(app.client.post(app.url("/v1/events")).json(&failures("1.1.1.1", 0, 1)), &bouncer_key).await?;
    assert_eq!(status, 403, "nor ingest");

    // The example bouncer turns the attacker away and lets others through.
    eventually("the bouncer to block the attacker", || async {
        Ok((through_bouncer(&site, ATTACKER, None).await? == 403).then_some(()))
    })
    .await?;
    assert_eq!(through_bouncer(&site, "198.51.100.1", None).await?, 200);
    assert_eq!(through_bouncer(&site, "198.51.100.1", Some("alice")).await?, 200);

    // Evidence: a chain event, and an entry of the alert's history.
    let events = eventually("the decision's chain event", || async {
        let (_, events) = app.get("/v1/events?category=response&action=decision_issued").await?;
        Ok((!events["events"][0].is_null()).then_some(events))
    })
    .await?;
    let ev = &events["events"][0];
    assert_eq!(ev["details"]["decision_id"], decision["id"], "{events}");
    assert_eq!(ev["details"]["rule_sha256"], decision["rule_sha256"]);
    assert_eq!(ev["user_id"], "rule:brute_force", "the actor");
    // The alert's history entry is written by the alert's own chain step, after the
    // decision: poll for it with a deadline.
    let detail = eventually("the decision in the alert's history", || async {
        let (_, detail) = app.get(&format!("/v1/alerts/{}", alert["id"])).await?;
        let noted = detail["history"].as_array().into_iter().flatten().any(|h| h["action"] == "decision_issued");
        Ok(noted.then_some(detail))
    })
    .await?;
    let noted: Vec<&Value> =
        detail["history"].as_array().unwrap().iter().filter(|h| h["action"] == "decision_issued").collect();
    assert_eq!(noted.len(), 1, "{detail}");
    assert_eq!(detail["decisions"][0]["id"], decision["id"]);
    let (_, one) = app.get(&format!("/v1/decisions/{}", decision["id"])).await?;
    assert_eq!(one["history"][0]["action"], "issued");
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "the chain verifies with decision events in it: {report}");

    // More failures while it is active do not issue a second decision.
    let (status, _) = app.post_events(&failures(ATTACKER, clock.now_ms() - 10 * MIN, 5)).await?;
    assert_eq!(status, 201);
    app.detection_idle().await?;
    let (_, all) = app.get("/v1/decisions?status=all&scope=ip").await?;
    assert_eq!(ids(&all["decisions"]).len(), 1, "{all}");

    // Expiry on the manual clock: a check agrees at once, then the stream and the bouncer.
    let snapshot = stream(&app, &bouncer_key, None).await?;
    assert_eq!(snapshot["snapshot"], true);
    assert_eq!(ids(&snapshot["added"]), vec![decision["id"].as_i64().unwrap()]);
    let cursor = snapshot["cursor"].as_str().unwrap().to_owned();
    clock.advance(30 * MIN - 1000);
    assert_eq!(check(&app, &bouncer_key, "ip", ATTACKER).await?.len(), 1, "still blocked a second before the end");
    clock.advance(1000);
    assert!(check(&app, &bouncer_key, "ip", ATTACKER).await?.is_empty(), "not blocked at its expiry");
    let delta = eventually("the expiry in the stream", || {
        let cursor = cursor.clone();
        let (app, key) = (&app, &bouncer_key);
        async move {
            let d = stream(app, key, Some(&cursor)).await?;
            Ok((!ids(&d["deleted"]).is_empty()).then_some(d))
        }
    })
    .await?;
    assert_eq!(ids(&delta["deleted"]), vec![decision["id"].as_i64().unwrap()], "{delta}");
    let (_, ended) = app.get(&format!("/v1/decisions/{}", decision["id"])).await?;
    assert_eq!(ended["status"], "expired", "{ended}");
    assert_eq!(delta["snapshot"], false);
    assert!(ids(&delta["added"]).is_empty());
    eventually("the bouncer to let the attacker in again", || async {
        Ok((through_bouncer(&site, ATTACKER, None).await? == 200).then_some(()))
    })
    .await?;
    // The expiry's chain event is written after the state change (the chain writer's own
    // step): poll for it with a deadline.
    let events = eventually("the expiry's chain event", || async {
        let (_, events) = app.get("/v1/events?category=response&action=decision_expired").await?;
        Ok((!events["events"][0].is_null()).then_some(events))
    })
    .await?;
    assert_eq!(events["events"][0]["details"]["decision_id"], decision["id"], "{events}");
    let metrics = app.client.get(app.url("/metrics")).send().await?.text().await?;
    assert!(metrics.contains("vigil_decisions_issued_total 1"), "{metrics}");
    assert!(metrics.contains("vigil_decisions_expired_total 1"));
    assert!(metrics.contains("vigil_decisions_active{scope=\"ip\",kind=\"block\"} 0"));
    assert!(metrics.contains("vigil_decision_stream_clients 1"), "the bouncer and this test share one key");
    site_handle.stop(true).await;
    Ok(())
}

// Long by design: one scenario end to end, each step asserting what the previous one changed.
async fn people_issue_and_lift_decisions_with_a_reason(backend: Backend) -> anyhow::Result<()> {
    let (app, _clock) = app(backend, |_| {}).await?;
    let responder = app.create_key("respond").await?;
    let reader = app.create_key("read").await?;
    let good = json!({"scope": "user", "value": "mallory", "kind": "lock", "duration_secs": 3600,
        "reason": "credential stuffing confirmed by the SOC"});
    let (status, _) = issue(&app, &reader, good.clone()).await?;
    assert_eq!(status, 403, "read keys cannot issue");
    for (bad, why) in [
        (json!({"scope": "user", "value": "mallory", "kind": "lock", "duration_secs": 3600}), "reason"),
        (json!({"scope": "user", "value": "mallory", "kind": "lock", "duration_secs": 3600, "reason": ""}), "reason"),
        (json!({"scope": "planet", "value": "x", "kind": "lock", "duration_secs": 60, "reason": "r"}), "scope"),
        (json!({"scope": "user", "value": "x", "kind": "ban", "duration_secs": 60, "reason": "r"}), "kind"),
        (json!({"scope": "user", "value": "x", "kind": "lock", "duration_secs": 0, "reason": "r"}), "duration_secs"),
        (
            json!({"scope": "user", "value": "x", "kind": "lock", "duration_secs": 2_592_001, "reason": "r"}),
            "duration_secs",
        ),
        (json!({"scope": "user", "value": "a\u{0007}b", "kind": "lock", "duration_secs": 60, "reason": "r"}), "value"),
        (
            json!({"scope": "user", "value": "x", "kind": "lock", "duration_secs": 60, "reason": "r", "extra": 1}),
            "extra",
        ),
        (
            json!({"scope": "user", "value": "x", "kind": "lock", "duration_secs": 60, "reason": "r", "alert_id": 999}),
            "alert",
        ),
    ] {
        let (status, body) = issue(&app, &responder, bad.clone()).await?;
        assert_eq!(status, 400, "{bad} must be refused");
        assert!(body["error"]["message"].as_str().unwrap_or("").contains(why), "{bad}: {body}");
    }
    // serde reads a struct from an array of its fields too: only an object is a decision.
    let (status, body) = issue(&app, &responder, json!(["user", "mallory", "lock", 3600, "r", null])).await?;
    assert_eq!(status, 400, "an array is not a decision: {body}");
    let (_, all) = app.get("/v1/decisions?status=all").await?;
    assert!(ids(&all["decisions"]).is_empty(), "nothing half-stored: {all}");
    let (status, body) = app.send(app.client.delete(app.url("/v1/decisions/stream")), &responder).await?;
    assert_eq!(status, 405, "the stream is not a decision id: {body}");

    let (status, locked) = issue(&app, &responder, good).await?;
    assert_eq!(status, 201, "{locked}");
    assert_eq!((locked["origin"].as_str(), locked["status"].as_str()), (Some("manual"), Some("active")));
    assert!(locked["rule"].is_null() && locked["alert_id"].is_null());
    let (status, other) = issue(
        &app,
        &responder,
        json!({"scope": "ip", "value": "192.0.2.50", "kind": "throttle", "duration_secs": 600, "reason": "scraper"}),
    )
    .await?;
    assert_eq!(status, 201, "{other}");
    let (_, active) = app.get("/v1/decisions").await?;
    assert_eq!(ids(&active["decisions"]), vec![other["id"].as_i64().unwrap(), locked["id"].as_i64().unwrap()]);
    let (_, throttles) = app.get("/v1/decisions?kind=throttle").await?;
    assert_eq!(ids(&throttles["decisions"]), vec![other["id"].as_i64().unwrap()]);
    let start = stream(&app, &app.admin_key, None).await?;
    let cursor = start["cursor"].as_str().unwrap().to_owned();

    // Lifting needs the respond role and a reason.
    let id = locked["id"].as_i64().unwrap();
    let (status, _) = lift(&app, &reader, id, Some(json!({"reason": "x"}))).await?;
    assert_eq!(status, 403);
    let (status, body) = lift(&app, &responder, id, None).await?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = lift(&app, &responder, id, Some(json!({"reason": ""}))).await?;
    assert_eq!(status, 400, "{body}");
    let (status, lifted) = lift(&app, &responder, id, Some(json!({"reason": "false alarm: a pentest"}))).await?;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(lifted["status"], "lifted");
    assert_eq!(lifted["end_reason"], "false alarm: a pentest");
    let (status, _) = lift(&app, &responder, id, Some(json!({"reason": "again"}))).await?;
    assert_eq!(status, 409, "a lifted decision cannot be lifted again");
    let (status, _) = lift(&app, &responder, 987_654, Some(json!({"reason": "x"}))).await?;
    assert_eq!(status, 404);
    // The query form, for clients that cannot send a DELETE body.
    let oid = other["id"].as_i64().unwrap();
    let (status, _) =
        app.send(app.client.delete(app.url(&format!("/v1/decisions/{oid}?reason=done"))), &responder).await?;
    assert_eq!(status, 200);
    assert!(check(&app, &app.admin_key, "user", "mallory").await?.is_empty());

    let (_, one) = app.get(&format!("/v1/decisions/{id}")).await?;
    let actions: Vec<&str> = one["history"].as_array().unwrap().iter().filter_map(|h| h["action"].as_str()).collect();
    assert_eq!(actions, ["issued", "lifted"], "{one}");
    let delta = stream(&app, &app.admin_key, Some(&cursor)).await?;
    let mut deleted = ids(&delta["deleted"]);
    deleted.sort_unstable();
    assert_eq!(deleted, vec![id, oid], "{delta}");
    let (_, events) = app.get("/v1/events?category=response&action=decision_lifted").await?;
    let lift_ev = events["events"].as_array().unwrap().iter().find(|e| e["details"]["decision_id"] == id).cloned();
    let lift_ev = lift_ev.ok_or_else(|| anyhow::anyhow!("no chain event for the lift: {events}"))?;
    assert_eq!(lift_ev["details"]["reason"], "false alarm: a pentest");
    assert!(lift_ev["user_id"].as_str().is_some_and(|a| a.starts_with("k_")), "the key id is the actor: {lift_ev}");
    for bad in [
        "/v1/decisions?scope=ip&value=x&status=all",
        "/v1/decisions?value=x",
        "/v1/decisions?scope=moon",
        "/v1/decisions/stream?since=abc",
        "/v1/decisions/0",
        "/v1/decisions?status=gone",
    ] {
        let (status, _) = app.get(bad).await?;
        assert_eq!(status, 400, "{bad}");
    }
    Ok(())
}

async fn resolving_as_false_positive_lifts_the_decisions_of_the_alert(backend: Backend) -> anyhow::Result<()> {
    let (app, _clock) = app(backend, |_| {}).await?;
    let (status, alert) = app
        .send(
            app.client.post(app.url("/v1/alerts")).json(&json!({"title": "Suspicious login", "severity": "P2"})),
            &app.admin_key,
        )
        .await?;
    anyhow::ensure!(status == 201, "{alert}");
    let alert_id = alert["id"].as_i64().unwrap();
    for value in ["198.51.100.7", "198.51.100.8"] {
        let (status, body) = issue(
            &app,
            &app.admin_key,
            json!({"scope": "ip", "value": value, "kind": "block", "duration_secs": 3600, "reason": "the alert", "alert_id": alert_id}),
        )
        .await?;
        assert_eq!(status, 201, "{body}");
    }
    // Acknowledging offers the decisions (and lifts none unless asked).
    let (status, acked) = app
        .send(app.client.post(app.url(&format!("/v1/alerts/{alert_id}/ack"))).json(&json!({})), &app.admin_key)
        .await?;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["active_decisions"].as_array().map(Vec::len), Some(2), "{acked}");
    assert_eq!(acked["decisions_lifted"], json!([]));
    let (status, resolved) = app
        .send(
            app.client
                .post(app.url(&format!("/v1/alerts/{alert_id}/resolve")))
                .json(&json!({"disposition": "false_positive", "lift_decisions": true})),
            &app.admin_key,
        )
        .await?;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["decisions_lifted"].as_array().map(Vec::len), Some(2), "{resolved}");
    assert_eq!(resolved["active_decisions"], json!([]));
    assert!(check(&app, &app.admin_key, "ip", "198.51.100.7").await?.is_empty());
    let (_, detail) = app.get(&format!("/v1/alerts/{alert_id}")).await?;
    let lifted = detail["history"].as_array().unwrap().iter().filter(|h| h["action"] == "decision_lifted").count();
    assert_eq!(lifted, 2, "{detail}");
    assert!(detail["decisions"].as_array().unwrap().iter().all(|d| d["status"] == "lifted"));
    Ok(())
}
