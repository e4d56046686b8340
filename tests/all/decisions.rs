//! Decisions on both backends: a brute-force burst blocks the IP (the example rule's
//! decision, tied to its P1 alert, an event of the chain, in the alert's history), the
//! bouncer role reads decisions and nothing else, the example bouncer turns the IP away and
//! lets others through, the block expires on the manual clock (lookups at once, the stream
//! and the bouncer next), a person issues and lifts decisions with a reason, resolving an
//! alert as false_positive lifts its decisions on request, a restart keeps the active set
//! and the stream cursor, a rule flooding decisions (raw ABI) is capped, and a rule decision
//! the database refuses is retried until it takes it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil::clock::Clock;
use vigil::config::Config;
use vigil_tests::{Backend, TestApp, both_backends, example_rules, spawn_app_with};

both_backends!(
    a_brute_force_burst_blocks_the_ip_until_it_expires,
    people_issue_and_lift_decisions_with_a_reason,
    resolving_as_false_positive_lifts_the_decisions_of_the_alert,
    a_restart_keeps_the_active_set_and_the_stream_cursor,
    a_rule_flooding_decisions_is_capped,
    the_chain_not_the_table_decides_what_is_enforced_after_a_restart,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_decision_that_cannot_be_stored_is_retried_until_the_database_takes_it() -> anyhow::Result<()> {
    let (app, clock) = app(Backend::Sqlite, |_| {}).await?;
    deploy_example(&app, "brute_force").await?;
    // The decisions table refuses writes (as a full disk or a failing database would).
    app.exec_sql("CREATE TRIGGER refuse_decisions BEFORE INSERT ON decisions BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END;")
        .await?;
    let (status, _) = app.post_events(&failures(ATTACKER, clock.now_ms() - 30 * MIN, 21)).await?;
    assert_eq!(status, 201, "ingest is not held up by the decision writer");
    app.detection_idle().await?;
    let alerts = app.wait_for("/v1/alerts?rule=brute_force&severity=P1", 15, |b| b["alerts"][0].is_object()).await?;
    assert!(alerts["alerts"][0].is_object(), "the alert is stored meanwhile: {alerts}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(check(&app, &app.admin_key, "ip", ATTACKER).await?.is_empty(), "nothing stored, nothing enforced");
    app.exec_sql("DROP TRIGGER refuse_decisions").await?;
    let decision = eventually("the decision once the database takes writes", || async {
        Ok(check(&app, &app.admin_key, "ip", ATTACKER).await?.into_iter().next())
    })
    .await?;
    assert_eq!(decision["alert_id"], alerts["alerts"][0]["id"], "still tied to its alert: {decision}");
    let (_, all) = app.get("/v1/decisions?status=all").await?;
    assert_eq!(ids(&all["decisions"]).len(), 1, "stored once: {all}");
    Ok(())
}

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
    let decision =
        eventually("the block", || async { Ok(check(&app, &bouncer_key, "ip", ATTACKER).await?.into_iter().next()) })
            .await?;
    eprintln!("brute-force burst -> decision visible to a check in {:?}", posted.elapsed());
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
    let (_, events) = app.get("/v1/events?category=response&action=decision_issued").await?;
    let ev = &events["events"][0];
    assert_eq!(ev["details"]["decision_id"], decision["id"], "{events}");
    assert_eq!(ev["details"]["rule_sha256"], decision["rule_sha256"]);
    assert_eq!(ev["user_id"], "rule:brute_force", "the actor");
    let (_, detail) = app.get(&format!("/v1/alerts/{}", alert["id"])).await?;
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
    assert_eq!(delta["deleted"][0]["status"], "expired", "{delta}");
    assert_eq!(delta["snapshot"], false);
    assert!(ids(&delta["added"]).is_empty());
    eventually("the bouncer to let the attacker in again", || async {
        Ok((through_bouncer(&site, ATTACKER, None).await? == 200).then_some(()))
    })
    .await?;
    let (_, events) = app.get("/v1/events?category=response&action=decision_expired").await?;
    assert_eq!(events["events"][0]["details"]["decision_id"], decision["id"], "{events}");
    let metrics = app.client.get(app.url("/metrics")).send().await?.text().await?;
    assert!(metrics.contains("vigil_decisions_issued_total 1"), "{metrics}");
    assert!(metrics.contains("vigil_decisions_expired_total 1"));
    assert!(metrics.contains("vigil_decisions_active{scope=\"ip\",kind=\"block\"} 0"));
    assert!(metrics.contains("vigil_decision_stream_clients 1"), "the bouncer and this test share one key");
    site_handle.stop(true).await;
    Ok(())
}

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

async fn a_restart_keeps_the_active_set_and_the_stream_cursor(backend: Backend) -> anyhow::Result<()> {
    let (app, _clock) = app(backend, |_| {}).await?;
    let mut made = Vec::new();
    for value in ["10.0.0.1", "10.0.0.2"] {
        let (status, body) = issue(
            &app,
            &app.admin_key,
            json!({"scope": "ip", "value": value, "kind": "block", "duration_secs": 3600, "reason": "r"}),
        )
        .await?;
        anyhow::ensure!(status == 201, "{body}");
        made.push(body["id"].as_i64().unwrap());
    }
    let (status, _) = lift(&app, &app.admin_key, made[1], Some(json!({"reason": "r"}))).await?;
    assert_eq!(status, 200);
    let before = stream(&app, &app.admin_key, None).await?;
    let app = app.restart().await?;
    assert_eq!(check(&app, &app.admin_key, "ip", "10.0.0.1").await?.len(), 1, "the active one is back");
    assert!(check(&app, &app.admin_key, "ip", "10.0.0.2").await?.is_empty(), "the lifted one stays lifted");
    let (_, alerts) = app.get("/v1/alerts?rule=vigil").await?;
    assert_eq!(alerts["alerts"], json!([]), "an untouched table agrees with the chain: {alerts}");
    let after = stream(&app, &app.admin_key, None).await?;
    assert_eq!(after["cursor"], before["cursor"], "the cursor is the store's");
    assert_eq!(ids(&after["added"]), vec![made[0]]);
    let cursor = after["cursor"].as_str().unwrap().to_owned();
    let nothing = stream(&app, &app.admin_key, Some(&cursor)).await?;
    assert_eq!((nothing["snapshot"].as_bool(), ids(&nothing["added"]).len()), (Some(false), 0), "{nothing}");
    // A cursor this server never gave (a restored database): a snapshot, not silence.
    let future = stream(&app, &app.admin_key, Some("999999")).await?;
    assert_eq!(future["snapshot"], true);
    assert_eq!(ids(&future["added"]), vec![made[0]]);
    let (status, body) = issue(
        &app,
        &app.admin_key,
        json!({"scope": "ip", "value": "10.0.0.3", "kind": "block", "duration_secs": 3600, "reason": "r"}),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    let delta = stream(&app, &app.admin_key, Some(&cursor)).await?;
    assert_eq!(ids(&delta["added"]), vec![body["id"].as_i64().unwrap()], "{delta}");
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    Ok(())
}

async fn the_chain_not_the_table_decides_what_is_enforced_after_a_restart(backend: Backend) -> anyhow::Result<()> {
    let (app, _clock) = app(backend, |_| {}).await?;
    let mut made = Vec::new();
    for value in ["10.1.0.1", "10.1.0.2", "10.1.0.3"] {
        let (status, body) = issue(
            &app,
            &app.admin_key,
            json!({"scope": "ip", "value": value, "kind": "block", "duration_secs": 3600, "reason": "r"}),
        )
        .await?;
        anyhow::ensure!(status == 201, "{body}");
        made.push(body["id"].as_i64().unwrap());
    }
    let untouched_expiry = check(&app, &app.admin_key, "ip", "10.1.0.3").await?[0]["expires_at"].clone();
    // Someone with access to the database files: deletes one block (to get in), stretches
    // another by a year, and plants one of their own that no chain event issued.
    app.exec_sql(&format!("DELETE FROM decisions WHERE id = {}", made[0])).await?;
    app.exec_sql(&format!("UPDATE decisions SET expires_at = expires_at + 31536000000 WHERE id = {}", made[1])).await?;
    app.exec_sql(
        "INSERT INTO decisions (scope, value, kind, reason, origin, actor, event_seqs, created_at, expires_at, status) \
         VALUES ('user', 'rival', 'lock', 'planted', 'manual', 'k_nobody', '[]', 1, 99999999999999, 'active')",
    )
    .await?;
    let app = app.restart().await?;
    let first = check(&app, &app.admin_key, "ip", "10.1.0.1").await?;
    assert_eq!(ids(&json!(first)), vec![made[0]], "the deleted block is enforced as the chain says");
    let second = check(&app, &app.admin_key, "ip", "10.1.0.2").await?;
    let created = vigil::event::parse_time(second[0]["created_at"].as_str().unwrap()).unwrap();
    let expires = vigil::event::parse_time(second[0]["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, 3_600_000, "the stretched one keeps its recorded hour: {second:?}");
    assert!(check(&app, &app.admin_key, "user", "rival").await?.is_empty(), "a planted row is not enforced");
    assert_eq!(check(&app, &app.admin_key, "ip", "10.1.0.3").await?[0]["expires_at"], untouched_expiry);
    let alerts = app.wait_for("/v1/alerts?rule=vigil", 10, |b| b["alerts"][0].is_object()).await?;
    let alert = alerts["alerts"].as_array().unwrap().iter().find(|a| a["dedup_key"] == "decisions:chain_mismatch");
    let alert = alert.ok_or_else(|| anyhow::anyhow!("no mismatch alert: {alerts}"))?;
    assert_eq!(alert["severity"], "P1");
    assert_eq!(alert["fields"]["count"], 3, "three differences: {alert}");
    Ok(())
}

/// A raw ABI 1.2 module that issues a block of a new IP for every event offered.
fn decision_flooder() -> Vec<u8> {
    let manifest = json!({"name": "decision_flooder", "version": "1.0.0", "kind": "detection", "severity": "P3",
        "fields": [], "subscribe": [{"categories": ["authentication"], "actions": [], "outcomes": []}]})
    .to_string();
    let escaped = |s: &str| s.bytes().map(|b| format!("\\{b:02x}")).collect::<String>();
    // The IP's last five characters (offset 4096 + 23) are digits rewritten per decision.
    let decision = r#"{"scope":"ip","value":"10.9.00000","kind":"block","duration_ms":600000,"reason":"flood"}"#;
    let digits_at = 4096 + decision.find("00000").unwrap();
    let wat = format!(
        r#"(module
  (import "vigil" "emit_decision" (func $decide (param i32 i32) (result i32)))
  (memory (export "memory") 40)
  (global (export "VIGIL_ABI_MAJOR") i32 (i32.const 16))
  (global (export "VIGIL_ABI_MINOR") i32 (i32.const 20))
  (global $count (mut i32) (i32.const 0))
  (data (i32.const 16) "\01\00\00\00\02\00\00\00")
  (data (i32.const 1048576) "{manifest_bytes}")
  (data (i32.const 4096) "{decision_bytes}")
  (func (export "vigil_manifest") (result i64)
    (i64.or (i64.shl (i64.const 1048576) (i64.const 32)) (i64.const {manifest_len})))
  (func (export "vigil_input_area") (result i64)
    (i64.or (i64.shl (i64.const 131072) (i64.const 32)) (i64.const 65536)))
  (func (export "vigil_verdicts") (result i64)
    (i64.or (i64.shl (i64.const 65536) (i64.const 32)) (i64.const 4096)))
  (func (export "vigil_init") (param i32) (result i32) (i32.const 0))
  (func (export "vigil_evaluate") (param $n i32) (result i32) (local $i i32) (local $v i32) (local $d i32)
    (block $done (loop $events
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (global.set $count (i32.add (global.get $count) (i32.const 1)))
      (local.set $v (global.get $count))
      (local.set $d (i32.const 4))
      (loop $digits
        (i32.store8 (i32.add (i32.const {digits_at}) (local.get $d))
          (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
        (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
        (local.set $d (i32.sub (local.get $d) (i32.const 1)))
        (br_if $digits (i32.ge_s (local.get $d) (i32.const 0))))
      (drop (call $decide (i32.const 4096) (i32.const {decision_len})))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $events)))
    (i32.const 0))
)"#,
        manifest_bytes = escaped(&manifest),
        manifest_len = manifest.len(),
        decision_bytes = escaped(decision),
        decision_len = decision.len(),
    );
    wat::parse_str(&wat).expect("valid WAT")
}

async fn a_rule_flooding_decisions_is_capped(backend: Backend) -> anyhow::Result<()> {
    let (app, _clock) = app(backend, |c| {
        c.decisions.max_active_per_rule = 25;
        c.decisions.per_rule_per_minute = 100_000;
    })
    .await?;
    let (status, body) = app.put_rule("decision_flooder", decision_flooder()).await?;
    anyhow::ensure!(status == 201 || status == 200, "{status} {body}");
    let logins: Vec<Value> = (0..400)
        .map(|i| {
            json!({"category": "authentication", "action": "login_success", "outcome": "success",
            "user_id": format!("u{i}"), "timestamp": vigil::event::now_ms()})
        })
        .collect();
    for chunk in logins.chunks(100) {
        let (status, body) = app.post_events(&Value::Array(chunk.to_vec())).await?;
        anyhow::ensure!(status == 201, "{status} {body}");
    }
    app.detection_idle().await?;
    let settled = eventually("the flood to settle", || async {
        let (_, s) = app.get("/v1/rules/decision_flooder/stats").await?;
        let s = s["stats"].clone();
        let seen = s["decisions"].as_i64().unwrap_or(0) + s["decisions_refused"].as_i64().unwrap_or(0);
        Ok((seen == 400).then_some(s))
    })
    .await?;
    // Past the host's quick check, the lifecycle enforces the cap on what it stores: wait
    // until every accepted decision was either issued or refused there.
    eventually("the lifecycle to issue or refuse each decision", || async {
        let issued = app.metric("vigil_decisions_issued_total").await?.unwrap_or(0);
        let refused = app.metric("vigil_decisions_refused_total").await?.unwrap_or(0);
        Ok((issued + refused == 400).then_some(()))
    })
    .await?;
    let (_, active) = app.get("/v1/decisions?limit=1000").await?;
    let n = ids(&active["decisions"]).len();
    assert_eq!(n, 25, "capped at max_active_per_rule: {settled}");
    assert!(settled["decisions_refused"].as_i64().unwrap() > 0, "the host refuses past the cap: {settled}");
    assert_eq!(app.metric("vigil_decisions_issued_total").await?, Some(25));
    assert_eq!(app.metric("vigil_decisions_refused_total").await?, Some(375), "every other one is refused and counted");
    let (_, all) = app.get("/v1/decisions?status=all&limit=1000").await?;
    assert_eq!(ids(&all["decisions"]).len(), 25, "nothing past the cap is stored");
    let metrics = app.client.get(app.url("/metrics")).send().await?.text().await?;
    assert!(metrics.contains("vigil_decisions_active{scope=\"ip\",kind=\"block\"} 25"), "{metrics}");
    let alerts =
        app.wait_for("/v1/alerts?rule=vigil", 10, |b| b["alerts"].as_array().is_some_and(|a| !a.is_empty())).await?;
    let floods: Vec<&Value> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["dedup_key"] == "decision_flood:decision_flooder")
        .collect();
    assert_eq!(floods.len(), 1, "the flood is reported: {alerts}");
    assert_eq!(floods[0]["count"], 1, "once, not once per refusal: {alerts}");

    // The per-rule rate: a second flooder under a rate of 10 per minute.
    let (app2, _clock) = app_with_rate(backend).await?;
    let (status, body) = app2.put_rule("decision_flooder", decision_flooder()).await?;
    anyhow::ensure!(status == 201 || status == 200, "{status} {body}");
    let (status, _) = app2.post_events(&Value::Array(logins[..200].to_vec())).await?;
    assert_eq!(status, 201);
    app2.detection_idle().await?;
    let (_, s) = app2.get("/v1/rules/decision_flooder/stats").await?;
    let accepted = s["stats"]["decisions"].as_i64().unwrap();
    assert!((10..=12).contains(&accepted), "the bucket's burst, plus at most a refill: {s}");
    Ok(())
}

async fn app_with_rate(backend: Backend) -> anyhow::Result<(TestApp, Clock)> {
    app(backend, |c| c.decisions.per_rule_per_minute = 10).await
}
