//! Decisions that hold up: the active set and the stream cursor survive a restart, the chain
//! (not the table) decides what is enforced after one, a rule flooding decisions is capped,
//! and a decision the database refused is stored once it takes writes again.

use super::*;

both_backends!(
    a_restart_keeps_the_active_set_and_the_stream_cursor,
    a_rule_flooding_decisions_is_capped,
    the_chain_not_the_table_decides_what_is_enforced_after_a_restart,
    a_decision_row_with_text_the_server_never_writes_neither_stops_a_start_nor_is_enforced_as_stored,
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

/// A scope, kind or status the server never writes (a tampered database): the stored listing
/// is a located failure (never a panic), the server still starts, the chain's version of the
/// decision is enforced, and the difference is raised like any other.
async fn a_decision_row_with_text_the_server_never_writes_neither_stops_a_start_nor_is_enforced_as_stored(
    backend: Backend,
) -> anyhow::Result<()> {
    let (app, _clock) = app(backend, |_| {}).await?;
    let (status, body) = issue(
        &app,
        &app.admin_key,
        json!({"scope": "ip", "value": "10.2.0.1", "kind": "block", "duration_secs": 3600, "reason": "r"}),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    // The table's CHECK constraints go first, as someone with the database files would.
    let unchecked = match backend {
        Backend::Sqlite => "PRAGMA ignore_check_constraints = ON;",
        Backend::Postgres => "ALTER TABLE decisions DROP CONSTRAINT decisions_scope_check;",
    };
    app.exec_sql(&format!("{unchecked} UPDATE decisions SET scope = 'planet' WHERE id = {id}")).await?;
    let (status, body) = app.get("/v1/decisions?status=all").await?;
    assert_eq!((status, &body["error"]["code"]), (500, &json!("internal")), "{body}");
    let app = app.restart().await?;
    let found = check(&app, &app.admin_key, "ip", "10.2.0.1").await?;
    assert_eq!(ids(&json!(found)), vec![id], "enforced as the chain says");
    let alerts = app.wait_for("/v1/alerts?rule=vigil", 10, |b| b["alerts"][0].is_object()).await?;
    let alert = alerts["alerts"].as_array().unwrap().iter().find(|a| a["dedup_key"] == "decisions:chain_mismatch");
    let alert = alert.ok_or_else(|| anyhow::anyhow!("no mismatch alert: {alerts}"))?;
    assert_eq!(alert["fields"]["count"], 1, "{alert}");
    let difference = &alert["fields"]["differences"][0];
    assert_eq!(difference["decision_id"], id);
    assert_eq!(difference["problem"], "the row cannot be read (enforced as the chain says)");
    let why = difference["row_problem"].as_str().unwrap_or_default();
    assert!(why.contains("scope \"planet\""), "the problem names the column and its text: {why}");
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
