//! Hostile rule modules written straight against the raw ABI (WAT through the `wat` crate,
//! no SDK), one per class of attack on the host, on both backends. Each proves that ingest
//! and a good rule (`counter`) carry on within a bounded delay, and that the hostile rule is
//! contained by a limit it cannot choose:
//! - a rule that is slow per event with a 1-slot verdict array times out on its batch budget;
//! - a rule that keeps emitting alerts is rate-limited, with one "alert flood" alert;
//! - an alert naming 100,000 seqs is stored with at most 100;
//! - a rule that logs floods of forged lines is rate-limited;
//! - alerts emitted before a trap in the same call are kept;
//! - strikes decay, so rare faults never quarantine a rule;
//! - oversized subscriptions are refused at deploy with a 400 naming the limit;
//! - a deployed rule and a quarantine survive restarts, also one without a graceful stop;
//! - a rule creating a new 250-byte key and a 10 KB distinct value per event stays within
//!   its state caps;
//! - a hand-off bounded in events skips and reads back, evaluating every event once;
//! - a stored module swapped or garbled in the database is held quarantined at start, not run.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_tests::{Backend, TestApp, both_backends, spawn_app, spawn_app_with, test_rule};

both_backends!(
    a_slow_rule_with_a_one_slot_verdict_array_times_out_on_its_batch_budget,
    an_alert_flood_is_rate_limited_and_reported_once,
    alert_seqs_are_capped_and_logs_rate_limited,
    alerts_emitted_before_a_trap_are_kept_and_strikes_decay,
    oversized_subscriptions_are_refused_naming_the_limit,
    a_deployed_rule_and_a_quarantine_survive_restarts,
    a_state_flood_stays_within_the_rule_state_caps,
    a_hand_off_bounded_in_events_still_evaluates_every_event_once,
    a_tampered_stored_module_is_held_quarantined_not_run,
);

const T0: i64 = 1_767_610_800_000;

/// A raw ABI 1.0 module: `manifest` JSON, a verdict array of `verdicts` slots, and the body
/// of `vigil_evaluate` (params: `$n`; locals `$i`, `$j` i32). `data` adds data segments.
fn raw_rule(manifest: &str, verdicts: u32, body: &str, data: &str) -> Vec<u8> {
    let escaped: String = manifest.bytes().map(|b| format!("\\{b:02x}")).collect();
    let wat = format!(
        r#"(module
  (import "vigil" "emit_alert" (func $emit (param i32 i32) (result i32)))
  (import "vigil" "log" (func $log (param i32 i32 i32)))
  (import "vigil" "window_add" (func $window_add (param i64 i32 i32 i64 i64) (result i64)))
  (import "vigil" "distinct_add" (func $distinct_add (param i64 i32 i32 i32 i32 i64) (result i64)))
  (memory (export "memory") 40)
  (global (export "VIGIL_ABI_MAJOR") i32 (i32.const 16))
  (global (export "VIGIL_ABI_MINOR") i32 (i32.const 20))
  (data (i32.const 16) "\01\00\00\00\00\00\00\00")
  (data (i32.const 1048576) "{escaped}")
  {data}
  (func (export "vigil_manifest") (result i64)
    (i64.or (i64.shl (i64.const 1048576) (i64.const 32)) (i64.const {len})))
  (func (export "vigil_input_area") (result i64)
    (i64.or (i64.shl (i64.const 131072) (i64.const 32)) (i64.const 65536)))
  (func (export "vigil_verdicts") (result i64)
    (i64.or (i64.shl (i64.const 65536) (i64.const 32)) (i64.const {verdicts})))
  (func (export "vigil_init") (param i32) (result i32) (i32.const 0))
  (func (export "vigil_evaluate") (param $n i32) (result i32) (local $i i32) (local $j i32)
    {body})
)"#,
        len = manifest.len(),
    );
    wat::parse_str(&wat).expect("valid WAT")
}

fn manifest(name: &str, subscribe: Value) -> String {
    json!({"name": name, "version": "1.0.0", "kind": "detection", "severity": "P3", "fields": ["user_id"],
           "subscribe": subscribe})
    .to_string()
}

fn auth_manifest(name: &str) -> String {
    manifest(name, json!([{"categories": ["authentication"], "actions": [], "outcomes": []}]))
}

/// Spins about `iters` loop iterations per event, `$n` events, then returns 0.
fn spin_body(iters: u64) -> String {
    format!(
        "(block $done (loop $events
           (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
           (local.set $j (i32.const 0))
           (loop $spin
             (local.set $j (i32.add (local.get $j) (i32.const 1)))
             (br_if $spin (i32.lt_u (local.get $j) (i32.const {iters}))))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br $events)))
         (i32.const 0)"
    )
}

/// Emits the alert at 4096 (`len` bytes) once per event.
fn emit_body(len: usize) -> String {
    format!(
        "(block $done (loop $events
           (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
           (drop (call $emit (i32.const 4096) (i32.const {len})))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br $events)))
         (i32.const 0)"
    )
}

fn data_at(offset: u32, bytes: &str) -> String {
    let escaped: String = bytes.bytes().map(|b| format!("\\{b:02x}")).collect();
    format!(r#"(data (i32.const {offset}) "{escaped}")"#)
}

fn auth(i: usize) -> Value {
    json!({"category": "authentication", "action": "login_success", "outcome": "success",
           "user_id": format!("u{}", i % 13), "ip": "192.0.2.1", "timestamp": T0 + i as i64})
}

async fn post_ok(app: &TestApp, body: Value) -> anyhow::Result<()> {
    let (status, resp) = app.post_events(&body).await?;
    anyhow::ensure!(status == 201, "ingest answered {status}: {resp}");
    Ok(())
}

async fn stats(app: &TestApp, name: &str) -> anyhow::Result<Value> {
    let (status, body) = app.get(&format!("/v1/rules/{name}/stats")).await?;
    anyhow::ensure!(status == 200, "stats of {name}: {status} {body}");
    Ok(body["stats"].clone())
}

async fn deploy(app: &TestApp, name: &str, wasm: Vec<u8>) -> anyhow::Result<Value> {
    let (status, body) = app.put_rule(name, wasm).await?;
    anyhow::ensure!(status == 201 || status == 200, "deploy {name}: {status} {body}");
    Ok(body)
}

async fn deploy_counter(app: &TestApp) -> anyhow::Result<()> {
    deploy(app, "counter", test_rule("counter", "v1", &["-p", "counter"])?).await.map(drop)
}

async fn a_slow_rule_with_a_one_slot_verdict_array_times_out_on_its_batch_budget(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    deploy_counter(&app).await?;
    // ~50 ms or more per event, one event per call: without a per-batch budget, 1,500
    // events would hold detection for over a minute.
    deploy(&app, "slow", raw_rule(&auth_manifest("slow"), 1, &spin_body(200_000_000), "")).await?;
    let started = Instant::now();
    post_ok(&app, json!((0..1500).map(auth).collect::<Vec<_>>())).await?;
    app.detection_idle().await?;
    let took = started.elapsed();
    assert_eq!(stats(&app, "counter").await?["events"], 1500, "the good rule saw every event");
    let slow = stats(&app, "slow").await?;
    assert_eq!(slow["faults"], 1, "{slow}");
    assert!(slow["skipped"].as_i64().unwrap() > 1000, "the rest of the batch was skipped: {slow}");
    let (_, rule) = app.get("/v1/rules/slow").await?;
    assert_eq!(rule["status"], "active", "one strike is not a quarantine: {rule}");
    // Budget = 200 ms + 1,500 x 100 us = 350 ms; generous slack for a loaded machine.
    assert!(took < Duration::from_secs(20), "detection was held for {took:?}");
    // Two more timed-out batches quarantine it, with a timeout reason.
    for round in 0..2 {
        post_ok(&app, json!((0..10).map(|i| auth(2000 + round * 10 + i)).collect::<Vec<_>>())).await?;
        app.detection_idle().await?;
    }
    let (_, rule) = app.get("/v1/rules/slow").await?;
    assert_eq!(rule["status"], "quarantined", "{rule}");
    assert!(rule["quarantine"]["reason"].as_str().unwrap().starts_with("timeout"), "{rule}");
    assert_eq!(stats(&app, "counter").await?["events"], 1520);
    Ok(())
}

async fn an_alert_flood_is_rate_limited_and_reported_once(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| c.rules.alerts_per_minute = 10).await?;
    deploy_counter(&app).await?;
    let alert = r#"{"title":"flood","severity":"P4","dedup_key":"same"}"#;
    let wasm = raw_rule(&auth_manifest("flooder"), 1, &emit_body(alert.len()), &data_at(4096, alert));
    deploy(&app, "flooder", wasm).await?;
    for b in 0..4 {
        post_ok(&app, json!((0..500).map(|i| auth(b * 500 + i)).collect::<Vec<_>>())).await?;
    }
    app.detection_idle().await?;
    let s = stats(&app, "flooder").await?;
    // The burst of the bucket, plus a token refilled every 6 s on a slow machine.
    let (kept, limited) = (s["alerts"].as_i64().unwrap(), s["alerts_rate_limited"].as_i64().unwrap());
    assert!((10..=12).contains(&kept), "{s}");
    assert_eq!(kept + limited, 2000, "the excess is counted: {s}");
    assert_eq!(stats(&app, "counter").await?["events"], 2000);
    let body =
        app.wait_for("/v1/alerts?rule=vigil", 10, |b| b["alerts"].as_array().is_some_and(|a| !a.is_empty())).await?;
    let floods: Vec<&Value> =
        body["alerts"].as_array().unwrap().iter().filter(|a| a["dedup_key"] == "alert_flood:flooder").collect();
    assert_eq!(floods.len(), 1, "{body}");
    assert_eq!(floods[0]["count"], 1, "reported once, not once per dropped alert: {body}");
    assert_eq!(floods[0]["severity"], "P3");
    Ok(())
}

async fn alert_seqs_are_capped_and_logs_rate_limited(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| c.rules.log_lines_per_minute = 5).await?;
    deploy_counter(&app).await?;
    let seqs: Vec<i64> = (1..=100_000).collect();
    let alert = json!({"title": "many seqs", "dedup_key": "seqs", "event_seqs": seqs}).to_string();
    assert!(alert.len() < 16 * 1024 * 64);
    // Emit the alert once per call, log a forged multi-line message for every event.
    let line = "ok\nERROR forged line\u{1b}[31m";
    let body = format!(
        "(drop (call $emit (i32.const 1500000) (i32.const {alen})))
         (block $done (loop $events
           (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
           (call $log (i32.const 2) (i32.const 4096) (i32.const {llen}))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br $events)))
         (i32.const 0)",
        alen = alert.len(),
        llen = line.len()
    );
    let data = format!("{}{}", data_at(4096, line), data_at(1_500_000, &alert));
    deploy(&app, "noisy", raw_rule(&auth_manifest("noisy"), 1024, &body, &data)).await?;
    post_ok(&app, json!((0..200).map(auth).collect::<Vec<_>>())).await?;
    app.detection_idle().await?;
    let s = stats(&app, "noisy").await?;
    // The alert is 600 KB of JSON: past the 16 KiB cap it is invalid, and dropped.
    assert_eq!(s["alerts"], 0, "{s}");
    assert!(s["alerts_dropped"].as_i64().unwrap() >= 1, "{s}");
    let dropped = s["logs_dropped"].as_i64().unwrap();
    assert!((190..=195).contains(&dropped), "5 lines a minute pass, the rest are dropped: {s}");
    // A smaller alert that names 2,000 seqs is kept with at most 100 of them.
    let seqs: Vec<i64> = (1..=2_000).collect();
    let alert = json!({"title": "many seqs", "dedup_key": "seqs", "event_seqs": seqs}).to_string();
    assert!(alert.len() < 16 * 1024);
    let wasm = raw_rule(
        &auth_manifest("seqs"),
        1024,
        &format!("(drop (call $emit (i32.const 8192) (i32.const {}))) (i32.const 0)", alert.len()),
        &data_at(8192, &alert),
    );
    deploy(&app, "seqs", wasm).await?;
    post_ok(&app, json!([auth(1)])).await?;
    app.detection_idle().await?;
    let body =
        app.wait_for("/v1/alerts?rule=seqs", 10, |b| b["alerts"].as_array().is_some_and(|a| !a.is_empty())).await?;
    assert_eq!(body["alerts"][0]["event_seqs"].as_array().unwrap().len(), 100, "{body}");
    assert_eq!(stats(&app, "counter").await?["events"], 201);
    Ok(())
}

async fn alerts_emitted_before_a_trap_are_kept_and_strikes_decay(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| c.rules.fault_decay_secs = 0).await?;
    deploy_counter(&app).await?;
    let alert = r#"{"title":"before the trap","dedup_key":"trap"}"#;
    let body = format!("(drop (call $emit (i32.const 4096) (i32.const {}))) unreachable", alert.len());
    deploy(&app, "trapper", raw_rule(&auth_manifest("trapper"), 1024, &body, &data_at(4096, alert))).await?;
    for round in 0..5 {
        post_ok(&app, json!([auth(round)])).await?;
        app.detection_idle().await?;
        // With a decay of 0 s every strike is forgiven by the next fault.
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = stats(&app, "trapper").await?;
    assert_eq!(s["faults"], 5, "{s}");
    assert_eq!(s["alerts"], 5, "each call's alert, emitted before its trap, is kept: {s}");
    let (_, rule) = app.get("/v1/rules/trapper").await?;
    assert_eq!(rule["status"], "active", "decayed strikes never reach the quarantine limit: {rule}");
    // Alerts are written by their own task: wait for the fifth occurrence to land.
    let body = app.wait_for("/v1/alerts?rule=trapper", 10, |b| b["alerts"][0]["count"] == 5).await?;
    assert_eq!(body["alerts"][0]["title"], "before the trap");
    assert_eq!(body["alerts"][0]["count"], 5, "{body}");
    assert_eq!(stats(&app, "counter").await?["events"], 5);
    Ok(())
}

async fn oversized_subscriptions_are_refused_naming_the_limit(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let clause = json!({"categories": ["authentication"], "actions": [], "outcomes": ["never"]});
    let cases = [
        (manifest("clauses", Value::Array(vec![clause.clone(); 65])), "subscription clauses"),
        (
            manifest(
                "values",
                json!([{"categories": [], "actions": (0..257).map(|i| format!("a{i}")).collect::<Vec<_>>(), "outcomes": []}]),
            ),
            "values per list",
        ),
        (manifest("length", json!([{"categories": [], "actions": ["x".repeat(200)], "outcomes": []}])), "value length"),
        (manifest("huge", Value::Array(vec![clause; 20_000])), "at most"),
    ];
    for (m, limit) in cases {
        let name = serde_json::from_str::<Value>(&m)?["name"].as_str().unwrap().to_owned();
        let (status, body) = app.put_rule(&name, raw_rule(&m, 1, "(i32.const 0)", "")).await?;
        assert_eq!(status, 400, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(limit), "{name}: expected {limit:?} in {message:?}");
    }
    let (_, rules) = app.get("/v1/rules").await?;
    assert_eq!(rules["rules"], json!([]));
    // 64 clauses that all match authentication events (and never the outcome) are allowed,
    // and cost detection nothing per clause.
    let clause = json!({"categories": ["authentication"], "actions": [], "outcomes": ["never"]});
    deploy(&app, "many", raw_rule(&manifest("many", Value::Array(vec![clause; 64])), 1, "(i32.const 0)", "")).await?;
    deploy_counter(&app).await?;
    post_ok(&app, json!((0..1000).map(auth).collect::<Vec<_>>())).await?;
    app.detection_idle().await?;
    assert_eq!(stats(&app, "many").await?["events"], 0, "never offered: the outcome never matches");
    assert_eq!(stats(&app, "counter").await?["events"], 1000);
    Ok(())
}

async fn a_deployed_rule_and_a_quarantine_survive_restarts(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let counter = deploy(&app, "counter", test_rule("counter", "v1", &["-p", "counter"])?).await?;
    deploy(&app, "trapper", raw_rule(&auth_manifest("trapper"), 1024, "unreachable", "")).await?;
    for round in 0..3 {
        post_ok(&app, json!([auth(round)])).await?;
        app.detection_idle().await?;
    }
    let trapper = app.wait_for("/v1/rules/trapper", 10, |b| b["status"] == "quarantined").await?;
    assert_eq!(trapper["status"], "quarantined", "{trapper}");
    // Graceful restart.
    let app = app.restart().await?;
    let (_, rule) = app.get("/v1/rules/counter").await?;
    assert_eq!((rule["status"].as_str(), &rule["sha256"]), (Some("active"), &counter["sha256"]), "{rule}");
    let (_, again) = app.get("/v1/rules/trapper").await?;
    assert_eq!(again["status"], "quarantined", "quarantine survives a restart: {again}");
    assert_eq!(again["sha256"], trapper["sha256"]);
    post_ok(&app, json!([auth(10), auth(11)])).await?;
    app.detection_idle().await?;
    // Counters live in memory and start over at a restart.
    assert_eq!(stats(&app, "counter").await?["events"], 2, "the restored rule still detects");
    // The module is durable from the moment the PUT answered: a server that never shuts
    // down (as after kill -9) leaves it stored, and a new server on the database restores it.
    let stored = app.stored_rules().await?;
    assert!(stored.contains(&("counter".to_owned(), counter["sha256"].as_str().unwrap().to_owned(), "active".into())));
    let app = app.start_beside().await?;
    let (_, rule) = app.get("/v1/rules/counter").await?;
    assert_eq!((rule["status"].as_str(), &rule["sha256"]), (Some("active"), &counter["sha256"]), "{rule}");
    assert_eq!(app.get("/v1/rules/trapper").await?.1["status"], "quarantined");
    // Redeploying lifts the quarantine.
    deploy(&app, "trapper", raw_rule(&auth_manifest("trapper"), 1024, "(i32.const 0)", "")).await?;
    assert_eq!(app.get("/v1/rules/trapper").await?.1["status"], "active");
    Ok(())
}

async fn a_state_flood_stays_within_the_rule_state_caps(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| {
        c.rules.state_max_mb = 1;
        c.rules.state_max_keys = 2000;
        // This test is about memory; the debug build's state code must not hit the time budget.
        c.rules.batch_budget_base_ms = 30_000;
    })
    .await?;
    deploy_counter(&app).await?;
    // Per event: a fresh 250-byte window key and a fresh 10,000-byte distinct value (the
    // loop counter is written into both), so without caps state grows without end.
    let body = "(block $done (loop $events
           (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
           (global.set $seq (i64.add (global.get $seq) (i64.const 1)))
           (i64.store (i32.const 8192) (global.get $seq))
           (i64.store (i32.const 16384) (global.get $seq))
           (drop (call $window_add (i64.const 60000) (i32.const 8192) (i32.const 250) (i64.const 1) (i64.const 1)))
           (drop (call $distinct_add (i64.const 60000) (i32.const 4096) (i32.const 8) (i32.const 16384) (i32.const 10000) (i64.const 1)))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br $events)))
         (i32.const 0)";
    let data = "(global $seq (mut i64) (i64.const 0))";
    deploy(&app, "hoarder", raw_rule(&auth_manifest("hoarder"), 1024, body, data)).await?;
    for b in 0..10 {
        post_ok(&app, json!((0..500).map(|i| auth(b * 500 + i)).collect::<Vec<_>>())).await?;
    }
    app.detection_idle().await?;
    let (_, rule) = app.get("/v1/rules/hoarder").await?;
    assert_eq!(rule["status"], "active", "{rule}");
    assert_eq!(rule["stats"]["events"], 5000);
    let (keys, bytes) = (rule["state"]["keys"].as_i64().unwrap(), rule["state"]["bytes"].as_i64().unwrap());
    assert!(keys <= 2000, "keys capped: {rule}");
    assert!(bytes <= 1 << 20, "bytes capped, the newest entry included: {rule}");
    assert!(rule["state"]["evictions"].as_i64().unwrap() > 3000, "old keys were evicted: {rule}");
    assert_eq!(stats(&app, "counter").await?["events"], 5000);
    Ok(())
}

async fn a_hand_off_bounded_in_events_still_evaluates_every_event_once(backend: Backend) -> anyhow::Result<()> {
    // A queue of at most 50 events (batches are 40): most hand-offs are skipped while the
    // slow rule holds detection, and detection reads them back from the store.
    let app = spawn_app_with(backend, |c| c.rules.detection_queue_events = 50).await?;
    deploy_counter(&app).await?;
    deploy(&app, "slow", raw_rule(&auth_manifest("slow"), 1, &spin_body(20_000_000), "")).await?;
    app.post_concurrently(4, 10, |c, b| json!((0..40).map(|i| auth(c * 10_000 + b * 100 + i)).collect::<Vec<_>>()))
        .await?;
    app.detection_idle().await?;
    assert_eq!(stats(&app, "counter").await?["events"], 1600, "every event evaluated exactly once");
    let caught_up = app.metric("vigil_detection_caught_up_total").await?.unwrap_or(-1);
    assert!(caught_up > 0, "the event bound forced read-backs from the store: {caught_up}");
    Ok(())
}

async fn a_tampered_stored_module_is_held_quarantined_not_run(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let v1 = deploy(&app, "counter", test_rule("counter", "v1", &["-p", "counter"])?).await?;
    deploy(&app, "other", raw_rule(&auth_manifest("other"), 16, "(i32.const 0)", "")).await?;
    // Another valid module of the same name behind the recorded SHA-256, and garbage.
    app.tamper_stored_rule("counter", &test_rule("counter", "v2", &["-p", "counter", "--features", "v2"])?).await?;
    app.tamper_stored_rule("other", b"not wasm").await?;
    let app = app.restart().await?;
    let (_, counter) = app.get("/v1/rules/counter").await?;
    assert_eq!(counter["status"], "quarantined", "{counter}");
    assert_eq!(counter["sha256"], v1["sha256"], "reported under the recorded SHA-256");
    assert!(counter["quarantine"]["reason"].as_str().unwrap().contains("not the recorded SHA-256"), "{counter}");
    let (_, other) = app.get("/v1/rules/other").await?;
    assert_eq!(other["status"], "quarantined", "{other}");
    assert!(other["quarantine"]["reason"].as_str().unwrap().contains("could not be restored"), "{other}");
    // Neither runs; ingest goes on.
    post_ok(&app, json!([auth(1)])).await?;
    app.detection_idle().await?;
    let stats = app.get("/v1/rules/counter/stats").await?.1;
    assert_eq!(stats["stats"]["events"].as_i64().unwrap_or(0), 0, "never offered an event: {stats}");
    Ok(())
}
