//! `POST /v1/logs` on both backends: the OpenTelemetry Python SDK's OTLP/HTTP exporter
//! (PyPI `opentelemetry-exporter-otlp-proto-http`, installed by `scripts/setup.sh
//! --postgres`) delivers records that become events with the sending key's provenance;
//! OTLP/JSON with bad records gets a partial success naming each one and stores only the
//! good ones; a body that is not OTLP is a 400 (a `google.rpc.Status` for protobuf) that
//! stores nothing.

use serde_json::{Value, json};
use vigil_tests::{Backend, TestApp, both_backends, repo_root, spawn_app, spawn_app_with};

both_backends!(
    the_python_sdk_exporter_delivers_mapped_masked_events,
    the_python_sdk_exporter_with_gzip_delivers_events,
    json_partial_success_names_each_refused_record_and_stores_the_rest,
    bodies_that_are_not_otlp_are_refused_and_store_nothing,
);

async fn head_seq(app: &TestApp) -> anyhow::Result<i64> {
    let (_, head) = app.get("/v1/integrity/head").await?;
    Ok(head["seq"].as_i64().unwrap_or(0))
}

async fn key_id(app: &TestApp, secret: &str) -> anyhow::Result<String> {
    let (_, me) = app.send(app.client.get(app.url("/v1/whoami")), secret).await?;
    Ok(me["key_id"].as_str().unwrap_or_default().to_owned())
}

/// Runs the Python SDK exporter script against `app` (`extra`: `["gzip"]` to compress).
async fn run_exporter(app: &TestApp, key: &str, extra: &[&str]) -> anyhow::Result<()> {
    let script = repo_root().join("tests/all/integrations/otlp_export.py");
    let endpoint = app.url("/v1/logs");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script).arg(endpoint).arg(key).args(extra);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "the exporter failed: {stderr}");
    Ok(())
}

async fn the_python_sdk_exporter_delivers_mapped_masked_events(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let key = app.create_key("ingest").await?;
    run_exporter(&app, &key, &[]).await?;

    let (_, listed) = app.get("/v1/events?category=authentication").await?;
    let events = listed["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{listed}");
    let failed = events.iter().find(|e| e["action"] == "login_failed").unwrap();
    assert_eq!(failed["event_id"], "otel-login-1");
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["severity"], "medium", "WARN maps to medium");
    assert_eq!(failed["user_id"], "alice");
    assert_eq!(failed["ip"], "203.0.113.9");
    assert_eq!(failed["source"], "checkout", "resource service.name");
    assert_eq!(failed["details"]["message"], "wrong password");
    assert_eq!(failed["details"]["otel"]["scope"], "checkout.auth");
    let password = failed["details"]["password"].as_str().unwrap();
    assert!(password.starts_with("[masked:field:"), "masked before storage: {password}");
    assert_eq!(failed["ingest_key"], key_id(&app, &key).await?, "provenance: the key that sent it");
    let success = events.iter().find(|e| e["action"] == "login_success").unwrap();
    assert_eq!(success["severity"], "low");
    // The plain line had no category: refused and counted, not stored.
    assert_eq!(app.metric("vigil_otlp_records_refused_total").await?, Some(1));
    assert_eq!(app.verify().await?["status"], "ok");
    Ok(())
}

/// Collectors compress by default: the SDK exporter with gzip gets its records stored; a
/// gzip or deflate body that inflates past the body limit is a 413 (it stops inflating
/// there), a body that is not what its encoding says is a 400, an unknown encoding a 415,
/// and none of them stores anything.
async fn the_python_sdk_exporter_with_gzip_delivers_events(backend: Backend) -> anyhow::Result<()> {
    use std::io::Write as _;
    let app = spawn_app_with(backend, |c| c.body_limit_bytes = 1024 * 1024).await?;
    let key = app.create_key("ingest").await?;
    run_exporter(&app, &key, &["gzip"]).await?;
    let (_, listed) = app.get("/v1/events?category=authentication").await?;
    let events = listed["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{listed}");
    assert!(events.iter().any(|e| e["event_id"] == "otel-login-1" && e["user_id"] == "alice"), "{listed}");

    // 64 MiB of a valid-looking OTLP/JSON prefix and spaces: a few hundred KiB compressed.
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(br#"{"resourceLogs": ["#)?;
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..64 {
        bomb.write_all(&spaces)?;
    }
    let bomb = bomb.finish()?;
    assert!(bomb.len() < 1024 * 1024, "the compressed body itself is under the limit");
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    zlib.write_all(&vec![b' '; 4 << 20])?;
    let zlib = zlib.finish()?;
    let mut small = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    small.write_all(
        json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [record(&[("event.category", s("authentication")),
            ("event.action", s("login_success")), ("log.record.uid", s("deflated-1"))], "ok")]}]}]})
        .to_string()
        .as_bytes(),
    )?;
    let small = small.finish()?;
    for (encoding, body, want) in [
        ("gzip", bomb, 413),
        ("deflate", zlib, 413),
        ("gzip", b"\x1f\x8b\x08\x00not gzip at all".to_vec(), 400),
        ("br", b"{}".to_vec(), 415),
        ("deflate", small, 200),
    ] {
        let req = app
            .client
            .post(app.url("/v1/logs"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body);
        let (status, answer) = app.send(req, &key).await?;
        assert_eq!(status, want, "{encoding}: {answer}");
        if want == 413 {
            assert!(
                answer["error"]["message"].as_str().unwrap_or_default().contains("decompresses to more than"),
                "{answer}"
            );
        }
    }
    let (_, listed) = app.get("/v1/events?category=authentication").await?;
    let ids: Vec<&str> = listed["events"].as_array().unwrap().iter().filter_map(|e| e["event_id"].as_str()).collect();
    assert_eq!(ids.len(), 3, "only the small deflated record was added: {ids:?}");
    assert!(ids.contains(&"deflated-1"), "{ids:?}");
    Ok(())
}

fn record(attrs: &[(&str, Value)], body: &str) -> Value {
    let attributes: Vec<Value> = attrs.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    json!({"timeUnixNano": "1767600000123000000", "severityNumber": 17, "body": {"stringValue": body}, "attributes": attributes})
}

fn s(v: &str) -> Value {
    json!({"stringValue": v})
}

async fn json_partial_success_names_each_refused_record_and_stores_the_rest(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let before = head_seq(&app).await?;
    let good = record(
        &[
            ("event.category", s("authorization")),
            ("event.action", s("permission_denied")),
            ("enduser.id", s("bob")),
            ("log.record.uid", s("otlp-json-1")),
            ("tenant.id", json!({"intValue": "42"})),
        ],
        "denied",
    );
    let no_category = record(&[("event.action", s("x"))], "nothing to map");
    let bad_ip = record(&[("event.category", s("system")), ("event.action", s("boot")), ("ip", s("not-an-ip"))], "");
    let body = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": s("billing")}]},
        "scopeLogs": [{"logRecords": [good, no_category, bad_ip]}]}]});
    let send = || app.send(app.client.post(app.url("/v1/logs")).json(&body), &app.admin_key);
    let (status, answer) = send().await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["partialSuccess"]["rejectedLogRecords"], "2", "{answer}");
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(message.contains("resourceLogs[0].scopeLogs[0].logRecords[1]: category is required"), "{message}");
    assert!(message.contains("logRecords[2]: ip is not a valid IPv4 or IPv6 address"), "{message}");
    assert!(!message.contains("not-an-ip"), "the problem never repeats the value: {message}");
    assert_eq!(head_seq(&app).await?, before + 1, "only the good record is stored");
    let (_, listed) = app.get("/v1/events?limit=1").await?;
    let stored = &listed["events"][0];
    assert_eq!(stored["event_id"], "otlp-json-1");
    assert_eq!(stored["severity"], "high", "ERROR maps to high");
    assert_eq!(stored["organization_id"], "42");
    assert_eq!(stored["source"], "billing");
    assert_eq!(stored["timestamp"], "2026-01-05T08:00:00.123Z");
    // The same export again: the good record is a duplicate (its log.record.uid is the
    // event_id, per key), nothing new is written.
    let (status, _) = send().await?;
    assert_eq!(status, 200);
    assert_eq!(head_seq(&app).await?, before + 1);
    Ok(())
}

async fn bodies_that_are_not_otlp_are_refused_and_store_nothing(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let before = head_seq(&app).await?;
    let post =
        |ct: &'static str, body: Vec<u8>| app.client.post(app.url("/v1/logs")).header("content-type", ct).body(body);
    // Protobuf that does not decode: 400 with a google.rpc.Status body.
    let res =
        post("application/x-protobuf", vec![0x0a, 0xff, 0xff, 0xff, 0x0f]).bearer_auth(&app.admin_key).send().await?;
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(res.headers()["content-type"], "application/x-protobuf");
    let bytes = res.bytes().await?;
    let status = <vigil::ingest::otlp::proto::Status as prost::Message>::decode(bytes.as_ref())?;
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(status.message.contains("malformed OTLP protobuf"), "{}", status.message);
    // JSON of the wrong shape names the path.
    let (code, body) = app
        .send(post("application/json", br#"{"resourceLogs": [{"scopeLogs": {}}]}"#.to_vec()), &app.admin_key)
        .await?;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_otlp");
    assert!(body["error"]["message"].as_str().unwrap().contains("resourceLogs[0].scopeLogs must be an array"));
    // Another media type, a body that is not what its encoding says, an unknown encoding, a
    // key without the ingest role.
    let (code, _) = app.send(post("text/plain", b"hello".to_vec()), &app.admin_key).await?;
    assert_eq!(code, 415);
    let (code, _) =
        app.send(post("application/json", b"{}".to_vec()).header("content-encoding", "gzip"), &app.admin_key).await?;
    assert_eq!(code, 400);
    let (code, _) =
        app.send(post("application/json", b"{}".to_vec()).header("content-encoding", "zstd"), &app.admin_key).await?;
    assert_eq!(code, 415);
    let reader = app.create_key("read").await?;
    let (code, _) = app.send(post("application/json", b"{}".to_vec()), &reader).await?;
    assert_eq!(code, 403);
    // An empty export is a success that stores nothing.
    let (code, body) = app.send(post("application/json", b"{}".to_vec()), &app.admin_key).await?;
    assert_eq!((code, body), (200, json!({})));
    assert_eq!(head_seq(&app).await?, before + 1, "only the read key's creation was recorded");
    Ok(())
}
