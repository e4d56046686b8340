//! OCSF in and out, on both backends. In: `POST /v1/events?format=ocsf` takes events of the
//! four classes (each first checked against the OCSF 1.3.0 JSON Schema of its class, so
//! the test sends real OCSF) and stores them mapped, the rest in `details`; a bad batch is
//! a 400 naming the OCSF attribute, nothing stored. Out: a webhook receiver with `format =
//! "ocsf"` gets Detection Findings (2004) for an alert raised by the `brute_force` example
//! rule from OCSF input (Create, Update on acknowledge, Close on resolve, the rule's MITRE
//! ids), each valid against the committed OCSF 1.3.0 schema of the class, and signed with
//! Ed25519 (Standard Webhooks v1a) verifiable with the public key the API shows.

use std::io::Write as _;

use base64::Engine as _;

use serde_json::{Value, json};
use vigil::clock::Clock;
use vigil::config::ReceiverConfig;
use vigil_tests::receiver::Recorder;
use vigil_tests::{Backend, TestApp, both_backends, example_rules, repo_root, spawn_app, spawn_app_with};

both_backends!(
    events_of_the_four_classes_are_mapped_and_stored,
    a_bad_ocsf_batch_names_the_attribute_and_stores_nothing,
    an_ocsf_webhook_gets_detection_findings_valid_against_the_schema,
);

/// Validates each document against `tests/fixtures/ocsf/1.3.0/<class>.schema.json`.
pub(super) fn validate(class: &str, docs: &[Value]) -> anyhow::Result<()> {
    let schema = repo_root().join(format!("tests/fixtures/ocsf/1.3.0/{class}.schema.json"));
    let script = repo_root().join("tests/all/integrations/validate_ocsf.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    {
        let mut stdin = child.stdin.take().unwrap();
        for d in docs {
            writeln!(stdin, "{d}")?;
        }
    }
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "not valid OCSF 1.3.0 {class}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn metadata(uid: &str) -> Value {
    json!({"uid": uid, "version": "1.3.0", "product": {"name": "shop-idp", "vendor_name": "Example"}})
}

fn login_failed(uid: &str, ip: &str, user: &str, time: i64) -> Value {
    json!({
        "class_uid": 3002, "category_uid": 3, "activity_id": 1, "type_uid": 300201,
        "status_id": 2, "severity_id": 3, "time": time, "status_detail": "wrong password",
        "metadata": metadata(uid), "user": {"uid": user, "name": user},
        "src_endpoint": {"ip": ip, "location": {"country": "FR", "city": "Paris"}},
        "auth_protocol": "Other", "auth_protocol_id": 99, "is_mfa": false, "service": {"name": "shop"},
    })
}

async fn post_ocsf(app: &TestApp, body: &Value) -> anyhow::Result<(u16, Value)> {
    app.send(app.client.post(app.url("/v1/events?format=ocsf")).json(body), &app.admin_key).await
}

async fn events_of_the_four_classes_are_mapped_and_stored(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let t = 1_767_600_000_000i64;
    let auth = login_failed("auth-1", "203.0.113.9", "alice", t);
    let lock = json!({
        "class_uid": 3001, "category_uid": 3, "activity_id": 9, "type_uid": 300109, "status_id": 1,
        "severity_id": 4, "time": t + 1, "metadata": metadata("acct-1"), "user": {"uid": "alice"},
        "actor": {"user": {"uid": "idp-system"}},
    });
    let http = json!({
        "class_uid": 4002, "category_uid": 4, "activity_id": 6, "type_uid": 400206, "status_id": 2,
        "severity_id": 1, "time": t + 2, "metadata": metadata("http-1"),
        "http_request": {"http_method": "POST", "user_agent": "curl/8.5", "uid": "req-77",
            "url": {"path": "/login", "hostname": "shop.example"}},
        "http_response": {"code": 401},
        "src_endpoint": {"ip": "2001:DB8::1"}, "dst_endpoint": {"ip": "192.0.2.10", "port": 443},
    });
    let api = json!({
        "class_uid": 6003, "category_uid": 6, "activity_id": 2, "type_uid": 600302, "status_id": 1,
        "severity_id": 1, "time": t + 3, "metadata": metadata("api-1"),
        "actor": {"user": {"uid": "bob"}}, "src_endpoint": {"ip": "198.51.100.4"},
        "api": {"operation": "ListInvoices", "request": {"uid": "api-req-9"}},
        "resources": [{"name": "invoices", "type": "table"}],
    });
    validate("authentication", std::slice::from_ref(&auth))?;
    validate("account_change", std::slice::from_ref(&lock))?;
    validate("http", std::slice::from_ref(&http))?;
    validate("api", std::slice::from_ref(&api))?;

    let (status, body) = post_ocsf(&app, &json!([auth, lock, http, api])).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["stored"], 4);
    let (_, listed) = app.get("/v1/events?limit=4").await?;
    let by_id = |id: &str| listed["events"].as_array().unwrap().iter().find(|e| e["event_id"] == id).unwrap().clone();
    let a = by_id("auth-1");
    assert_eq!(
        (a["category"].as_str(), a["action"].as_str(), a["outcome"].as_str()),
        (Some("authentication"), Some("login_failed"), Some("failure"))
    );
    assert_eq!(
        (a["user_id"].as_str(), a["ip"].as_str(), a["severity"].as_str()),
        (Some("alice"), Some("203.0.113.9"), Some("medium"))
    );
    assert_eq!(a["geo"], json!({"country": "FR", "city": "Paris"}));
    assert_eq!(a["source"], "shop-idp");
    assert_eq!(a["reason"], "wrong password");
    assert_eq!(a["resource"], "shop", "the service signed in to");
    assert_eq!(a["timestamp"], "2026-01-05T08:00:00.000Z");
    assert_eq!(a["details"]["class_uid"], 3002, "the OCSF ids stay in details");
    assert_eq!(a["details"]["auth_protocol"], "Other");
    let l = by_id("acct-1");
    assert_eq!((l["category"].as_str(), l["action"].as_str()), (Some("authentication"), Some("account_locked")));
    assert_eq!(l["details"]["actor"]["user"]["uid"], "idp-system");
    let h = by_id("http-1");
    assert_eq!((h["category"].as_str(), h["action"].as_str()), (Some("http"), Some("post")));
    assert_eq!((h["resource"].as_str(), h["error_code"].as_str()), (Some("/login"), Some("401")));
    assert_eq!((h["ip"].as_str(), h["request_id"].as_str()), (Some("2001:db8::1"), Some("req-77")));
    assert_eq!(h["user_agent"], "curl/8.5");
    let p = by_id("api-1");
    assert_eq!((p["category"].as_str(), p["action"].as_str()), (Some("data_access"), Some("read")));
    assert_eq!((p["user_id"].as_str(), p["resource"].as_str()), (Some("bob"), Some("invoices")));
    assert_eq!(p["request_id"], "api-req-9");
    assert_eq!(p["details"]["api"]["operation"], "ListInvoices");
    Ok(())
}

async fn a_bad_ocsf_batch_names_the_attribute_and_stores_nothing(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let (_, head) = app.get("/v1/integrity/head").await?;
    let good = login_failed("ok-1", "203.0.113.9", "alice", 1_767_600_000_000);
    let bad_ip = login_failed("bad-1", "999.1.1.1", "alice", 1_767_600_000_000);
    let process = json!({"class_uid": 1007, "activity_id": 1, "time": 1_767_600_000_000i64});
    let (status, body) = post_ocsf(&app, &json!([good, bad_ip, process])).await?;
    assert_eq!(status, 400, "{body}");
    let details = &body["error"]["details"];
    assert_eq!(
        details[0],
        json!({"index": 1, "field": "src_endpoint.ip (ip)", "problem": "is not a valid IPv4 or IPv6 address"})
    );
    assert_eq!(details[1]["index"], 2);
    assert_eq!(details[1]["field"], "class_uid");
    let (status, body) =
        app.send(app.client.post(app.url("/v1/events?format=cef")).json(&good), &app.admin_key).await?;
    assert_eq!(status, 400, "{body}");
    let (_, after) = app.get("/v1/integrity/head").await?;
    assert_eq!(after["seq"], head["seq"], "nothing stored");
    Ok(())
}

/// 2026-01-05T07:00:00Z: the manual clock's start.
const T0: i64 = 1_767_596_400_000;

async fn an_ocsf_webhook_gets_detection_findings_valid_against_the_schema(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let siem = ReceiverConfig {
        name: "siem".into(),
        kind: "webhook".into(),
        url: Some(rec.url("/ocsf")),
        format: Some("ocsf".into()),
        // Standard Webhooks v1a: an Ed25519 seed; receivers verify with the public key.
        secret: Some(format!("whsk_{}", base64::engine::general_purpose::STANDARD.encode([7u8; 32]))),
        ..Default::default()
    };
    let app = spawn_app_with(backend, |c| {
        c.clock = Clock::manual(T0);
        c.receivers = vec![siem];
        c.routing.default_receivers = Some(vec!["siem".into()]);
    })
    .await?;
    let wasm = std::fs::read(example_rules()?.join("brute_force.wasm"))?;
    let (status, body) = app.put_rule("brute_force", wasm).await?;
    assert!(status == 200 || status == 201, "{body}");

    // Six failed logins from one IP, sent as OCSF Authentication events.
    let e0 = 1_767_600_000_000i64;
    let burst: Vec<Value> =
        (0..6).map(|i| login_failed(&format!("bf-{i}"), "203.0.113.7", &format!("victim{i}"), e0 + i * 1000)).collect();
    let (status, body) = post_ocsf(&app, &Value::Array(burst)).await?;
    assert_eq!(status, 201, "{body}");
    let alerts = app
        .wait_for("/v1/alerts?rule=brute_force", 20, |b| b["alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .await?;
    let id = alerts["alerts"][0]["id"].as_i64().unwrap();
    let responder = app.create_key("respond").await?;
    let post =
        |path: String| app.send(app.client.post(app.url(&path)).json(&json!({"comment": "looking"})), &responder);
    assert_eq!(post(format!("/v1/alerts/{id}/ack")).await?.0, 200);
    let (status, _) = app
        .send(
            app.client
                .post(app.url(&format!("/v1/alerts/{id}/resolve")))
                .json(&json!({"disposition": "true_positive"})),
            &responder,
        )
        .await?;
    assert_eq!(status, 200);

    let got = rec.wait_for("/ocsf", 20, |r| r.len() >= 3).await;
    let findings: Vec<Value> = got.iter().map(|r| r.json()).collect();
    assert_eq!(findings.len(), 3, "{findings:?}");
    validate("detection_finding", &findings)?;
    let activities: Vec<(i64, i64)> =
        findings.iter().map(|f| (f["activity_id"].as_i64().unwrap(), f["status_id"].as_i64().unwrap())).collect();
    assert_eq!(activities, [(1, 1), (2, 2), (3, 4)], "Create/New, Update/In Progress, Close/Resolved");
    let first = &findings[0];
    assert_eq!(first["class_uid"], 2004);
    assert_eq!(first["type_uid"], 200401);
    assert_eq!(first["severity_id"], 4, "P2 is High");
    assert_eq!(first["finding_info"]["uid"], format!("vigil-alert-{id}"));
    assert_eq!(first["finding_info"]["analytic"]["name"], "brute_force");
    assert_eq!(
        first["finding_info"]["attacks"],
        json!([{"technique": {"uid": "T1110"}}, {"technique": {"uid": "T1110"}, "sub_technique": {"uid": "T1110.001"}}])
    );
    assert_eq!(first["finding_info"]["related_events"].as_array().map(Vec::len), Some(6));
    assert!(
        findings.iter().all(|f| f["finding_info"]["uid"] == first["finding_info"]["uid"]),
        "one finding, three activities"
    );
    assert_eq!(findings[1]["comment"], "looking");

    // Each is signed v1a (Ed25519 over id.timestamp.body), verifiable with the public key
    // GET /v1/receivers shows: no shared secret on the receiving side.
    let (_, receivers) = app.get("/v1/receivers").await?;
    let public = receivers["receivers"][0]["public_key"].as_str().unwrap().trim_start_matches("whpk_").to_owned();
    let public: [u8; 32] = base64::engine::general_purpose::STANDARD.decode(public)?.try_into().unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public)?;
    for r in &got {
        let sig = r.headers["webhook-signature"].strip_prefix("v1a,").expect("a v1a signature");
        let sig: [u8; 64] = base64::engine::general_purpose::STANDARD.decode(sig)?.try_into().unwrap();
        let msg = format!("{}.{}.{}", r.headers["webhook-id"], r.headers["webhook-timestamp"], r.body);
        key.verify_strict(msg.as_bytes(), &ed25519_dalek::Signature::from_bytes(&sig))?;
    }
    Ok(())
}
