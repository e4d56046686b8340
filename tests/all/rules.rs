//! Wasm rules end to end on both backends, with rules built from source (`rules/` and the
//! test-only `tests/rules/`): the example rules detect out of the box; deploy, list, stats
//! and delete over HTTP are recorded in the chain; bad modules are refused while the old
//! version keeps running; hostile rules are stopped, counted and quarantined without
//! disturbing ingest; a version swap under concurrent ingest evaluates every event exactly
//! once; the watched directory deploys and removes rules; state survives a hot reload and
//! a restart (replay).

use serde_json::{Value, json};
use vigil_tests::{Backend, TestApp, both_backends, example_rules, spawn_app, spawn_app_with, test_rule};

both_backends!(
    example_rules_detect_out_of_the_box,
    deploy_list_stats_and_delete_are_recorded_in_the_chain,
    bad_modules_are_refused_and_the_old_version_keeps_running,
    hostile_rules_are_stopped_counted_and_quarantined,
    a_version_swap_under_concurrent_ingest_evaluates_every_event_exactly_once,
    a_watched_rules_directory_deploys_and_removes_rules,
    state_survives_a_hot_reload_and_a_restart,
    a_full_detection_queue_neither_stalls_ingest_nor_skips_an_event,
);

const T0: i64 = 1_767_610_800_000; // 2026-01-05T11:00:00Z, a Monday, business hours

fn failed_login(ip: &str, user: &str, t: i64) -> Value {
    json!({"category": "authentication", "action": "login_failed", "outcome": "failure", "ip": ip, "user_id": user, "timestamp": t})
}

fn auth(i: usize) -> Value {
    json!({"category": "authentication", "action": "login_success", "outcome": "success", "user_id": format!("u{}", i % 13),
           "ip": "192.0.2.1", "geo": {"lat": 48.85, "lon": 2.35}, "timestamp": T0 + i as i64})
}

fn alerts_of(body: &Value) -> Vec<Value> {
    body["alerts"].as_array().cloned().unwrap_or_default()
}

async fn post_ok(app: &TestApp, body: Value) -> anyhow::Result<Vec<i64>> {
    let (status, resp) = app.post_events(&body).await?;
    anyhow::ensure!(status == 201, "ingest answered {status}: {resp}");
    Ok(resp["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect())
}

async fn rule_stat(app: &TestApp, name: &str, stat: &str) -> anyhow::Result<i64> {
    let (status, body) = app.get(&format!("/v1/rules/{name}/stats")).await?;
    anyhow::ensure!(status == 200, "stats of {name}: {status} {body}");
    Ok(body["stats"][stat].as_i64().unwrap_or(-1))
}

async fn chain_actions(app: &TestApp, action: &str) -> anyhow::Result<Vec<Value>> {
    let (_, body) = app.get(&format!("/v1/events?action={action}&limit=1000")).await?;
    Ok(body["events"].as_array().cloned().unwrap_or_default())
}

async fn example_rules_detect_out_of_the_box(backend: Backend) -> anyhow::Result<()> {
    let dir = example_rules()?;
    let app = spawn_app_with(backend, |c| c.rules_dir = Some(dir)).await?;
    let (_, rules) = app.get("/v1/rules").await?;
    let names: Vec<&str> = rules["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    for expected in [
        "account_lockout",
        "after_hours_sensitive_access",
        "api_key_anomaly",
        "brute_force",
        "bulk_data_access",
        "coordinated_attack",
        "default_router",
        "error_spike",
        "impossible_travel",
        "new_country_login",
        "pii_export_by_non_admin",
        "privilege_escalation",
        "sql_injection_probe",
    ] {
        assert!(names.contains(&expected), "{expected} not loaded: {names:?}");
    }

    let attacker: Vec<Value> = (0..6).map(|i| failed_login("198.51.100.7", "alice", T0 + i * 10_000)).collect();
    let near_miss: Vec<Value> = (0..5).map(|i| failed_login("198.51.100.8", "bob", T0 + i * 10_000)).collect();
    let attack_seqs = post_ok(&app, json!(attacker)).await?;
    post_ok(&app, json!(near_miss)).await?;
    post_ok(
        &app,
        json!({"category": "authentication", "action": "account_locked", "user_id": "carol", "timestamp": T0}),
    )
    .await?;
    post_ok(
        &app,
        json!({"category": "data_access", "action": "search", "user_id": "dave", "timestamp": T0,
        "resource": "/search?q=' OR 1=1 --"}),
    )
    .await?;
    post_ok(
        &app,
        json!({"category": "authorization", "action": "permission_denied", "outcome": "failure", "user_id": "erin",
        "resource": "/admin/users", "timestamp": T0, "details": {"required_role": "admin", "user_role": "viewer"}}),
    )
    .await?;
    post_ok(&app, json!(auth(1))).await?;

    let want = ["brute_force", "account_lockout", "sql_injection_probe", "privilege_escalation"];
    let body = app
        .wait_for("/v1/alerts?limit=100", 20, |b| want.iter().all(|r| alerts_of(b).iter().any(|a| a["rule"] == *r)))
        .await?;
    let alerts = alerts_of(&body);
    for rule in want {
        assert!(alerts.iter().any(|a| a["rule"] == rule), "{rule} did not fire: {body}");
    }
    let brute: Vec<&Value> = alerts.iter().filter(|a| a["rule"] == "brute_force").collect();
    assert_eq!(brute.len(), 1, "only the attacker, not the near miss: {brute:?}");
    assert_eq!(brute[0]["severity"], "P2");
    assert_eq!(brute[0]["dedup_key"], "ip:198.51.100.7");
    assert!(brute[0]["event_seqs"].as_array().unwrap().contains(&json!(attack_seqs[5])), "{}", brute[0]);
    let sha = rules["rules"].as_array().unwrap().iter().find(|r| r["name"] == "brute_force").unwrap()["sha256"].clone();
    assert_eq!(brute[0]["rule_sha256"], sha, "alerts record the SHA-256 of the version that raised them");
    assert_eq!(brute[0]["status"], "open");
    assert!(!alerts.iter().any(|a| a["rule"] == "impossible_travel" || a["rule"] == "bulk_data_access"), "{body}");
    let (_, filtered) = app.get("/v1/alerts?rule=account_lockout&severity=P2").await?;
    assert_eq!(alerts_of(&filtered).len(), 1, "{filtered}");
    assert_eq!(alerts_of(&filtered)[0]["dedup_key"], "user:carol");
    Ok(())
}

async fn deploy_list_stats_and_delete_are_recorded_in_the_chain(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let v1 = test_rule("counter", "v1", &["-p", "counter"])?;
    let v2 = test_rule("counter", "v2", &["-p", "counter", "--features", "v2"])?;
    let (status, d1) = app.put_rule("counter", v1).await?;
    assert_eq!(status, 201, "{d1}");
    assert_eq!((d1["name"].as_str(), d1["version"].as_str()), (Some("counter"), Some("1.0.0")));
    post_ok(&app, json!((0..7).map(auth).collect::<Vec<_>>())).await?;
    app.detection_idle().await?;
    assert_eq!(rule_stat(&app, "counter", "events").await?, 7);
    assert_eq!(rule_stat(&app, "counter", "matches").await?, 7);

    let (status, d2) = app.put_rule("counter", v2).await?;
    assert_eq!(status, 200, "{d2}");
    assert_eq!(d2["replaced"], d1["sha256"]);
    let (_, one) = app.get("/v1/rules/counter").await?;
    assert_eq!((one["version"].as_str(), one["status"].as_str()), (Some("2.0.0"), Some("active")));
    assert_eq!(one["sha256"], d2["sha256"]);

    let reader = app.create_key("read").await?;
    let put = app.client.put(app.url("/v1/rules/counter")).body(vec![0u8; 8]);
    assert_eq!(app.send(put, &reader).await?.0, 403, "deploying needs admin");

    let (status, del) = app.send(app.client.delete(app.url("/v1/rules/counter")), &app.admin_key).await?;
    assert_eq!(status, 200, "{del}");
    assert_eq!(app.get("/v1/rules/counter").await?.0, 404);
    assert_eq!(app.send(app.client.delete(app.url("/v1/rules/counter")), &app.admin_key).await?.0, 404);

    let deployed = chain_actions(&app, "rule_deployed").await?;
    let shas: Vec<&Value> = deployed.iter().map(|e| &e["details"]["sha256"]).collect();
    assert!(shas.contains(&&d1["sha256"]) && shas.contains(&&d2["sha256"]), "{deployed:?}");
    let deleted = chain_actions(&app, "rule_deleted").await?;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["details"]["sha256"], d2["sha256"]);
    assert_eq!(app.verify().await?["status"], "ok");
    Ok(())
}

async fn bad_modules_are_refused_and_the_old_version_keeps_running(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let v1 = test_rule("counter", "v1", &["-p", "counter"])?;
    let (_, d1) = app.put_rule("counter", v1.clone()).await?;
    let bad_abi = test_rule("bad_abi", "misc", &["-p", "bad_abi", "-p", "no_exports"])?;
    let no_exports = test_rule("no_exports", "misc", &["-p", "bad_abi", "-p", "no_exports"])?;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("counter", b"\0asm but not really a module".to_vec(), "not a valid WebAssembly module"),
        ("counter", vec![0xde, 0xad, 0xbe, 0xef], "not a valid WebAssembly module"),
        ("counter", bad_abi, "ABI major version 2"),
        ("counter", no_exports, "missing export"),
        ("other_name", v1, "uploaded as \"other_name\""),
    ];
    for (name, bytes, expected) in cases {
        let (status, body) = app.put_rule(name, bytes).await?;
        assert_eq!(status, 400, "{expected}: {body}");
        assert_eq!(body["error"]["code"], "invalid_rule");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "expected {expected:?} in {message:?}");
    }
    let (_, one) = app.get("/v1/rules/counter").await?;
    assert_eq!((one["sha256"].clone(), one["status"].as_str()), (d1["sha256"].clone(), Some("active")));
    post_ok(&app, json!([auth(1), auth(2)])).await?;
    app.detection_idle().await?;
    assert_eq!(rule_stat(&app, "counter", "events").await?, 2, "the old version still evaluates");
    let (_, all) = app.get("/v1/rules").await?;
    assert_eq!(all["rules"].as_array().unwrap().len(), 1, "nothing half-deployed: {all}");
    Ok(())
}

async fn hostile_rules_are_stopped_counted_and_quarantined(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let build = ["-p", "hostile_loop", "-p", "hostile_alloc", "-p", "hostile_trap", "-p", "hostile_panic"];
    let cases = [
        ("hostile_loop", "timeout"),
        ("hostile_alloc", "memory"),
        ("hostile_trap", "trap"),
        ("hostile_panic", "panic"),
    ];
    for (name, _) in cases {
        let (status, body) = app.put_rule(name, test_rule(name, "hostile", &build)?).await?;
        assert_eq!(status, 201, "{name}: {body}");
    }
    let (_, body) = app.put_rule("counter", test_rule("counter", "v1", &["-p", "counter"])?).await?;
    assert!(body["sha256"].is_string());
    let mut auth_events = 0;
    for round in 0..3 {
        // Each round is one batch for every hostile rule: one fault each.
        post_ok(&app, json!([{"category": "security", "action": "attack", "user_id": "m", "timestamp": T0 + round}]))
            .await?;
        post_ok(&app, json!([auth(round as usize), auth(round as usize + 1)])).await?;
        auth_events += 2;
        app.detection_idle().await?;
    }
    let (_, rules) = app.get("/v1/rules").await?;
    for (name, kind) in cases {
        let rule = rules["rules"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap();
        assert_eq!(rule["status"], "quarantined", "{rule}");
        let reason = rule["quarantine"]["reason"].as_str().unwrap();
        assert!(reason.starts_with(kind), "{name}: expected a {kind} fault, got {reason:?}");
        assert_eq!(rule["stats"]["faults"], 3, "{rule}");
    }
    let panic_reason = rules["rules"].as_array().unwrap().iter().find(|r| r["name"] == "hostile_panic").unwrap()
        ["quarantine"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(panic_reason.contains("hostile_panic refuses event"), "the panic message is reported: {panic_reason}");
    assert_eq!(rule_stat(&app, "counter", "events").await?, auth_events, "good rules are unaffected");

    let body = app.wait_for("/v1/alerts?rule=vigil", 10, |b| alerts_of(b).len() == 4).await?;
    assert_eq!(alerts_of(&body).len(), 4, "one quarantine alert per hostile rule: {body}");
    assert!(
        alerts_of(&body).iter().all(|a| a["severity"] == "P2" && a["title"].as_str().unwrap().contains("quarantined"))
    );
    let quarantined = chain_actions(&app, "rule_quarantined").await?;
    assert_eq!(quarantined.len(), 4, "{quarantined:?}");
    assert!(quarantined.iter().all(|e| e["details"]["sha256"].as_str().is_some_and(|s| s.len() == 64)));

    // Quarantined rules are no longer offered events; ingest and verify are fine.
    post_ok(&app, json!([{"category": "security", "action": "attack", "user_id": "m", "timestamp": T0}])).await?;
    app.detection_idle().await?;
    assert_eq!(rule_stat(&app, "hostile_loop", "faults").await?, 3);
    assert_eq!(app.verify().await?["status"], "ok");
    Ok(())
}

async fn a_version_swap_under_concurrent_ingest_evaluates_every_event_exactly_once(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let v1 = test_rule("counter", "v1", &["-p", "counter"])?;
    let v2 = test_rule("counter", "v2", &["-p", "counter", "--features", "v2"])?;
    app.put_rule("counter", v1.clone()).await?;
    const CLIENTS: usize = 10;
    const BATCHES: usize = 20;
    const PER_BATCH: usize = 50;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, url, key) = (app.client.clone(), app.url("/v1/events"), app.admin_key.clone());
        tasks.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let batch: Vec<Value> = (0..PER_BATCH).map(|i| auth(c * 10_000 + b * 100 + i)).collect();
                let resp = client.post(&url).bearer_auth(&key).json(&batch).send().await?;
                anyhow::ensure!(resp.status().as_u16() == 201, "ingest failed: {}", resp.status());
            }
            anyhow::Ok(())
        }));
    }
    let mut deployed = vec![app.get("/v1/rules/counter").await?.1["sha256"].as_str().unwrap_or("").to_owned()];
    for bytes in [v2.clone(), v1, v2] {
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let (status, body) = app.put_rule("counter", bytes).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["replaced"].as_str(), deployed.last().map(String::as_str), "each swap replaces the last");
        deployed.push(body["sha256"].as_str().unwrap().to_owned());
    }
    for t in tasks {
        t.await??;
    }
    app.detection_idle().await?;
    let total = (CLIENTS * BATCHES * PER_BATCH) as i64;
    assert_ne!(deployed[0], deployed[1], "v1 and v2 are different modules");
    let chain: Vec<String> = chain_actions(&app, "rule_deployed")
        .await?
        .iter()
        .rev()
        .map(|e| e["details"]["sha256"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(chain, deployed, "four deploys in the chain, in order");
    assert_eq!(rule_stat(&app, "counter", "events").await?, total, "every event offered exactly once across versions");
    assert_eq!(rule_stat(&app, "counter", "matches").await?, total);
    let (_, one) = app.get("/v1/rules/counter").await?;
    assert_eq!(one["version"], "2.0.0");
    Ok(())
}

async fn a_watched_rules_directory_deploys_and_removes_rules(backend: Backend) -> anyhow::Result<()> {
    let watched = tempdir("watched")?;
    let dir = watched.clone();
    let app = spawn_app_with(backend, |c| c.rules_dir = Some(dir)).await?;
    let (_, empty) = app.get("/v1/rules").await?;
    assert_eq!(empty["rules"], json!([]));
    std::fs::write(watched.join("counter.wasm.part"), test_rule("counter", "v1", &["-p", "counter"])?)?;
    std::fs::rename(watched.join("counter.wasm.part"), watched.join("counter.wasm"))?;
    let body = app.wait_for("/v1/rules", 5, |b| b["rules"].as_array().is_some_and(|r| r.len() == 1)).await?;
    assert_eq!(body["rules"][0]["name"], "counter", "{body}");
    assert!(body["rules"][0]["source"].as_str().unwrap().ends_with("counter.wasm"));
    // A broken file is refused (and the refusal recorded); the running version stays.
    std::fs::write(watched.join("counter.wasm"), b"garbage")?;
    let refused = app
        .wait_for("/v1/events?action=rule_refused", 5, |b| b["events"].as_array().is_some_and(|e| !e.is_empty()))
        .await?;
    assert_eq!(refused["events"].as_array().unwrap().len(), 1, "{refused}");
    assert!(refused["events"][0]["details"]["reason"].as_str().unwrap().contains("not a valid WebAssembly module"));
    let (_, still) = app.get("/v1/rules/counter").await?;
    assert_eq!(still["sha256"], body["rules"][0]["sha256"]);
    // A rename keeps the rule, its state and its counters: nothing is deleted or redeployed.
    std::fs::write(watched.join("counter.wasm"), test_rule("counter", "v1", &["-p", "counter"])?)?;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    post_ok(&app, json!([auth(1), auth(2)])).await?;
    app.detection_idle().await?;
    std::fs::rename(watched.join("counter.wasm"), watched.join("renamed.wasm"))?;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    post_ok(&app, json!([auth(3)])).await?;
    app.detection_idle().await?;
    assert_eq!(rule_stat(&app, "counter", "events").await?, 3, "the renamed rule kept running");
    assert!(chain_actions(&app, "rule_deleted").await?.is_empty(), "a rename deletes nothing");
    assert_eq!(chain_actions(&app, "rule_deployed").await?.len(), 1, "and redeploys nothing");
    std::fs::remove_file(watched.join("renamed.wasm"))?;
    let gone = app.wait_for("/v1/rules", 5, |b| b["rules"] == json!([])).await?;
    assert_eq!(gone["rules"], json!([]));
    // The delete is recorded in the chain right after the swap.
    let deleted = app
        .wait_for("/v1/events?action=rule_deleted", 5, |b| b["events"].as_array().is_some_and(|e| !e.is_empty()))
        .await?;
    assert_eq!(deleted["events"].as_array().unwrap().len(), 1, "{deleted}");
    let _ = std::fs::remove_dir_all(&watched);
    Ok(())
}

async fn state_survives_a_hot_reload_and_a_restart(backend: Backend) -> anyhow::Result<()> {
    let dir = example_rules()?;
    let brute = std::fs::read(dir.join("brute_force.wasm"))?;
    let app = spawn_app(backend).await?;
    app.put_rule("brute_force", brute.clone()).await?;
    let fail = |range: std::ops::Range<i64>| {
        json!(range.map(|i| failed_login("203.0.113.50", "x", T0 + i * 1000)).collect::<Vec<_>>())
    };
    post_ok(&app, fail(0..3)).await?;
    app.detection_idle().await?;
    // Hot reload of the same rule keeps its windows: 3 + 3 failures cross the 5-minute
    // threshold only if the first 3 are still counted.
    let (status, reloaded) = app.put_rule("brute_force", brute).await?;
    assert_eq!(status, 200, "{reloaded}");
    post_ok(&app, fail(3..6)).await?;
    let body = app.wait_for("/v1/alerts?rule=brute_force", 10, |b| !alerts_of(b).is_empty()).await?;
    let alerts = alerts_of(&body);
    assert_eq!(alerts.len(), 1, "the 6th failure, after a reload, crosses the threshold: {body}");
    assert_eq!(alerts[0]["dedup_key"], "ip:203.0.113.50");
    // Restart: the rule comes back from the store (no rules directory) and replay rebuilds
    // its 1-hour window: 6 + 15 failures cross the 1-hour threshold (> 20) only if the
    // first 6 are counted again.
    let app = app.restart().await?;
    app.detection_idle().await?; // the replay at start is done (its gauge is back to 0)
    post_ok(&app, fail(6..21)).await?;
    let body = app.wait_for("/v1/alerts?rule=brute_force", 10, |b| alerts_of(b).len() == 2).await?;
    let p1: Vec<Value> = alerts_of(&body).into_iter().filter(|a| a["severity"] == "P1").collect();
    assert_eq!(p1.len(), 1, "the 21st failure after a restart crosses the 1-hour threshold: {body}");
    assert_eq!(p1[0]["dedup_key"], "ip:203.0.113.50:1h");
    Ok(())
}

async fn a_full_detection_queue_neither_stalls_ingest_nor_skips_an_event(backend: Backend) -> anyhow::Result<()> {
    // A one-batch queue and a rule that burns its whole deadline: detection falls behind,
    // the sequencer skips hand-offs instead of waiting, and detection reads them back.
    let app = spawn_app_with(backend, |c| c.rules.detection_queue_batches = 1).await?;
    app.put_rule("counter", test_rule("counter", "v1", &["-p", "counter"])?).await?;
    let build = ["-p", "hostile_loop", "-p", "hostile_alloc", "-p", "hostile_trap", "-p", "hostile_panic"];
    app.put_rule("hostile_loop", test_rule("hostile_loop", "hostile", &build)?).await?;
    post_ok(&app, json!([{"category": "security", "action": "attack", "timestamp": T0}])).await?;
    app.post_concurrently(4, 25, |c, b| json!((0..40).map(|i| auth(c * 10_000 + b * 100 + i)).collect::<Vec<_>>()))
        .await?;
    app.detection_idle().await?;
    assert_eq!(rule_stat(&app, "counter", "events").await?, 4 * 25 * 40, "every event evaluated exactly once");
    let caught_up = app.metric("vigil_detection_caught_up_total").await?.unwrap_or(-1);
    assert!(caught_up > 0, "the stalled rule should have forced a read-back from the store: {caught_up}");
    Ok(())
}

fn tempdir(label: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("vigil-{label}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Compilation is bounded: one module compiles at a time (a deploy that finds another
/// compiling is answered 429 with `Retry-After` before its body is read, so parallel
/// uploads neither multiply compile memory nor queue modules in memory), and the default
/// module cap is 8 MiB, which every example rule fits; a bigger module is refused clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_compile_one_at_a_time_and_oversized_modules_are_refused() -> anyhow::Result<()> {
    let dir = example_rules()?;
    assert_eq!(vigil::config::Config::default().rules.max_module_bytes, 8 << 20, "the default cap");
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let size = std::fs::metadata(&path)?.len();
            assert!(size < 1 << 20, "{} is {size} bytes: far below the cap", path.display());
        }
    }
    let brute = std::fs::read(dir.join("brute_force.wasm"))?;
    let app = spawn_app(Backend::Sqlite).await?;
    let put = |bytes: Vec<u8>| {
        app.client
            .put(app.url("/v1/rules/brute_force"))
            .bearer_auth(&app.admin_key)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
    };
    // A compilation under way holds the one slot: a deploy now is told to come back.
    let slot = app.server.state.rule_journal.compile_slot().await;
    let busy = put(brute.clone()).await?;
    assert_eq!(busy.status().as_u16(), 429);
    assert_eq!(busy.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: Value = busy.json().await?;
    assert_eq!(body["error"]["code"], "deploy_busy", "{body}");
    assert!(chain_actions(&app, "rule_deployed").await?.is_empty(), "nothing deployed while busy");
    drop(slot);
    assert_eq!(put(brute.clone()).await?.status().as_u16(), 201);

    // Eight at once: each either deployed (compiled alone) or told to retry; nothing else.
    let tasks: Vec<_> = (0..8).map(|_| tokio::spawn(put(brute.clone()))).collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let resp = t.await??;
        let status = resp.status().as_u16();
        if status == 429 {
            assert!(resp.headers().contains_key("retry-after"));
        }
        statuses.push(status);
    }
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    let deployed = statuses.iter().filter(|s| **s == 200).count();
    assert!(deployed >= 1, "{statuses:?}");
    assert_eq!(chain_actions(&app, "rule_deployed").await?.len(), 1 + deployed, "every success recorded, only those");

    // Past the cap: 413 naming the setting, nothing compiled or stored.
    let small = spawn_app_with(Backend::Sqlite, |c| c.rules.max_module_bytes = 16 * 1024).await?;
    let (status, body) = small.put_rule("brute_force", vec![0u8; 16 * 1024 + 1]).await?;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("max_module_bytes (16384 bytes)"), "{body}");
    assert!(chain_actions(&small, "rule_deployed").await?.is_empty());
    Ok(())
}
