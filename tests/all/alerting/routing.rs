//! Routing rules (Wasm) on real receivers: they route, a broken, spinning or flooding router
//! never silences an alert (the default routes take over), a routing rule may name the
//! escalation policy, and a resolve never overtakes its trigger.

use super::*;

both_backends!(
    routing_rules_route_and_a_broken_router_never_silences,
    a_spinning_or_flooding_router_neither_stalls_nor_silences,
    a_routing_rule_can_name_the_escalation_policy,
);

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
