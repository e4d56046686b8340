//! Delivery details on real receivers: storm control, the daily digest, silences ending and
//! reminders, email STARTTLS and certificate checks, HTTPS receivers behind a private CA,
//! alerts naming every counted event, and an alert the database refused, stored later.

use super::*;

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
    // Acknowledged: the acknowledge follow-up, then no more reminders.
    let (status, _) = post(&app, &app.admin_key, &format!("/v1/alerts/{id}/ack"), json!({})).await?;
    assert_eq!(status, 200);
    rec.wait_for("/hook", 20, |r| r.len() >= 3).await;
    clock.advance(30 * MIN);
    settle().await;
    let types: Vec<Value> = rec.requests("/hook").iter().map(|r| r.json()["type"].clone()).collect();
    assert_eq!(types, ["alert.triggered", "alert.repeated", "alert.acknowledged"]);
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
