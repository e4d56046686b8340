//! Issue 21: provenance and the request guards. One key making another key's events vanish
//! (idempotency was global), a client forging `ingest_key`, an edited `ingest_key` column,
//! bodies read before the key is checked, stalled bodies, bodies past the in-flight budget,
//! floods of bad keys, and 16 parallel 10 MB bodies against the real binary with its peak
//! RSS measured. Storage cases run on both backends.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_tests::{Backend, TestApp, both_backends, failures, sample_event, spawn_app, spawn_app_with};

both_backends!(
    idempotency_is_per_key_and_every_event_names_its_key,
    an_edited_ingest_key_is_located_by_verify,
    a_write_after_a_live_truncation_puts_the_log_on_hold_instead_of_covering_it
);

/// The id of a key (what events record), from `/v1/whoami`.
async fn key_id(app: &TestApp, key: &str) -> anyhow::Result<String> {
    let (status, who) = app.send(app.client.get(app.url("/v1/whoami")), key).await?;
    anyhow::ensure!(status == 200, "whoami: {who}");
    Ok(who["key_id"].as_str().unwrap_or_default().to_owned())
}

async fn post_as(app: &TestApp, key: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    app.send(app.client.post(app.url("/v1/events")).json(&body), key).await
}

async fn idempotency_is_per_key_and_every_event_names_its_key(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let (a, b) = (app.create_key("ingest").await?, app.create_key("ingest").await?);
    let (a_id, b_id) = (key_id(&app, &a).await?, key_id(&app, &b).await?);
    let mut ev = sample_event(1);
    ev["event_id"] = json!("order-42");
    // Key A posts the id first (the attack: another app's predictable ids).
    let (status, first) = post_as(&app, &a, json!([ev.clone()])).await?;
    assert_eq!(status, 201, "{first}");
    // Key B's real event with the same id is its own event, stored.
    let (status, second) = post_as(&app, &b, json!([ev.clone()])).await?;
    assert_eq!(status, 201, "{second}");
    assert_eq!((second["stored"].as_i64(), second["events"][0]["duplicate"].as_bool()), (Some(1), Some(false)));
    assert_ne!(second["events"][0]["seq"], first["events"][0]["seq"]);
    // Each key's retry is a duplicate of its own event, also twice within one batch.
    let (_, again) = post_as(&app, &b, json!([ev.clone(), ev.clone()])).await?;
    assert_eq!(again["stored"], 0, "{again}");
    for ack in again["events"].as_array().unwrap() {
        assert_eq!((ack["duplicate"].as_bool(), &ack["seq"]), (Some(true), &second["events"][0]["seq"]));
    }
    // Many concurrent posts of one id from two keys store exactly one event per key.
    let mut racing = sample_event(2);
    racing["event_id"] = json!("race-1");
    let posts = (0..10).map(|i| post_as(&app, if i % 2 == 0 { &a } else { &b }, json!([racing.clone()])));
    let results = futures_util::future::join_all(posts).await;
    let stored: i64 =
        results.iter().map(|r| r.as_ref().map_or(0, |(_, body)| body["stored"].as_i64().unwrap_or(0))).sum();
    assert_eq!(stored, 2, "{results:?}");
    // Stored events name their key (inside the hashed form); the server's own name none.
    let (_, listed) = app.get("/v1/events?limit=1000").await?;
    let events = listed["events"].as_array().unwrap();
    let mut keys: Vec<&str> =
        events.iter().filter(|e| e["event_id"] == "order-42").filter_map(|e| e["ingest_key"].as_str()).collect();
    keys.sort_unstable();
    let mut want = vec![a_id.as_str(), b_id.as_str()];
    want.sort_unstable();
    assert_eq!(keys, want, "{listed}");
    // What one key sent is a filter (what a leaked key wrote).
    let (_, by_b) = app.get(&format!("/v1/events?ingest_key={b_id}&limit=1000")).await?;
    let by_b = by_b["events"].as_array().unwrap();
    assert!(!by_b.is_empty() && by_b.iter().all(|e| e["ingest_key"] == json!(b_id)), "{by_b:?}");
    assert_eq!(by_b.len(), 2, "order-42 and race-1 from key B: {by_b:?}");
    let own = events.iter().find(|e| e["action"] == "api_key_created").expect("a key event");
    assert!(own.get("ingest_key").is_none(), "the server's own event names no key: {own}");
    // A client cannot claim a key's provenance (its own or another's).
    for claimed in [&a_id, &b_id] {
        let mut forged = sample_event(3);
        forged["ingest_key"] = json!(claimed);
        let (status, body) = post_as(&app, &b, json!([forged])).await?;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["details"][0]["field"], "ingest_key", "{body}");
    }
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    Ok(())
}

/// Reassigning an event to another key in the indexed column is located by verify (the
/// column must equal the hashed canonical form), and queries still show the true key.
async fn an_edited_ingest_key_is_located_by_verify(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let key = app.create_key("ingest").await?;
    let id = key_id(&app, &key).await?;
    let (_, body) = post_as(&app, &key, json!([sample_event(1)])).await?;
    let seq = body["events"][0]["seq"].as_i64().unwrap();
    let drop_guard = match backend {
        Backend::Sqlite => "DROP TRIGGER events_no_update",
        Backend::Postgres => "DROP TRIGGER events_no_update ON events",
    };
    app.exec_sql(drop_guard).await?;
    app.exec_sql(&format!("UPDATE events SET ingest_key = 'k_someone_else' WHERE seq = {seq}")).await?;
    let report = app.verify().await?;
    assert_eq!(report["status"], "failed", "{report}");
    assert!(failures(&report).contains(&(seq, "column_mismatch".into())), "{report}");
    let (_, listed) = app.get("/v1/events?limit=1000").await?;
    let event = listed["events"].as_array().unwrap().iter().find(|e| e["seq"] == seq).cloned().unwrap();
    assert_eq!(event["ingest_key"], json!(id), "{event}");
    Ok(())
}

/// `host:port` of a test server.
fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Sends a request's head and the first bytes of a body announced as 1 MB, then stalls:
/// the open connection, to read the answer from later.
async fn stalled(addr: &str, method: &str, path: &str, key: Option<&str>) -> anyhow::Result<tokio::net::TcpStream> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    let head = format!(
        "{} {path} HTTP/1.1\r\nHost: vigil\r\n{auth}Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n[{{\"a\":",
        method.to_ascii_uppercase()
    );
    s.write_all(head.as_bytes()).await?;
    Ok(s)
}

/// The status of the answer on a connection, waiting at most `secs`.
async fn status_of(s: &mut tokio::net::TcpStream, secs: u64) -> anyhow::Result<u16> {
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(secs), s.read(&mut buf))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {secs} s: the server is waiting for the body"))??;
    let text = String::from_utf8_lossy(&buf[..n]);
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    code.ok_or_else(|| anyhow::anyhow!("not an HTTP answer: {text:?}"))
}

/// Every route that takes a body answers 401 without a key, and 403 to a key of too little
/// role, while the body is still on its way: nothing is read before the key is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_and_role_are_checked_before_any_body_is_read() -> anyhow::Result<()> {
    let app = spawn_app(Backend::Sqlite).await?;
    let bouncer = app.create_key("bouncer").await?;
    let routes: Vec<(&str, String)> = vigil::api::ROUTES
        .iter()
        .filter(|(m, p)| *m != "get" && *p != "/v1/events" && *p != "/v1/logs")
        .map(|(m, p)| (*m, p.replace("{id}", "1").replace("{name}", "some_rule")))
        .collect();
    assert!(routes.len() >= 10, "{routes:?}");
    for (method, path) in &routes {
        let mut s = stalled(&addr(&app), method, path, None).await?;
        assert_eq!(status_of(&mut s, 10).await?, 401, "{method} {path} without a key");
        let mut s = stalled(&addr(&app), method, path, Some(&bouncer)).await?;
        assert_eq!(status_of(&mut s, 10).await?, 403, "{method} {path} with a bouncer key");
    }
    let mut s = stalled(&addr(&app), "post", "/v1/events", Some("vgl_not_a_key")).await?;
    assert_eq!(status_of(&mut s, 10).await?, 401, "ingest with a bad key");
    Ok(())
}

/// Bodies that stall are cut at `body_timeout_secs` (408) and hold no budget; 300 of them
/// beside a normal client do not stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_time_out_and_do_not_block_other_clients() -> anyhow::Result<()> {
    let app = spawn_app_with(Backend::Sqlite, |c| c.ingest.body_timeout_secs = 3).await?;
    let ingest = app.create_key("ingest").await?;
    let mut stalls = Vec::new();
    for _ in 0..300 {
        stalls.push(stalled(&addr(&app), "post", "/v1/events", Some(&ingest)).await?);
    }
    // A normal client is served while they stall.
    for i in 0..5 {
        let (status, body) = post_as(&app, &ingest, json!([sample_event(i)])).await?;
        assert_eq!(status, 201, "{body}");
    }
    let mut timed_out = 0;
    for s in &mut stalls {
        if status_of(s, 30).await? == 408 {
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 300);
    assert_eq!(app.metric("vigil_http_body_timeouts_total").await?, Some(300));
    assert_eq!(app.metric("vigil_http_inflight_body_bytes").await?, Some(0), "nothing is held after them");
    let (_, listed) = app.get("/v1/events?action=login_failed&limit=1000").await?;
    assert!(listed["events"].as_array().unwrap().len() <= 5, "no stalled body was stored: {listed}");
    Ok(())
}

/// Past `max_inflight_bytes` of bodies held at once, a request is refused with 503 and
/// Retry-After (nothing stored); once the bodies are gone, requests are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_inflight_budget_get_503() -> anyhow::Result<()> {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.body_limit_bytes = 1 << 20;
        c.ingest.max_inflight_bytes = 1 << 20;
        c.ingest.body_timeout_secs = 5;
    })
    .await?;
    // One slow client has sent 900 KB of its body.
    let mut s = stalled(&addr(&app), "post", "/v1/events", Some(&app.admin_key)).await?;
    s.write_all(&vec![b' '; 900 * 1024]).await?;
    let mut held = 0;
    for _ in 0..100 {
        held = app.metric("vigil_http_inflight_body_bytes").await?.unwrap_or(0);
        if held >= 900 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(held >= 900 * 1024, "the slow body is held: {held}");
    let batch: Vec<Value> = (0..1500).map(sample_event).collect();
    let resp = app.client.post(app.url("/v1/events")).bearer_auth(&app.admin_key).json(&batch).send().await?;
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert_eq!(status_of(&mut s, 30).await?, 408);
    let (status, body) = app.post_events(&json!(batch)).await?;
    assert_eq!(status, 201, "served again once the slow body is gone: {body}");
    assert!(app.metric("vigil_http_bodies_shed_total").await? >= Some(1));
    Ok(())
}

/// Bad keys are counted by reason, and past 30 bad keys in a minute the address gets 429
/// for bad keys, never for a valid key (nor for no key: that guesses nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_counted_and_throttled_but_valid_keys_pass() -> anyhow::Result<()> {
    let app = spawn_app(Backend::Sqlite).await?;
    let ingest = app.create_key("ingest").await?;
    let mut statuses = Vec::new();
    for i in 0..60 {
        let (status, _) = app.send(app.client.get(app.url("/v1/events")), &format!("vgl_guess_{i:04}")).await?;
        statuses.push(status);
    }
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[30..].iter().all(|s| *s == 429), "{statuses:?}");
    let resp = app.client.get(app.url("/v1/events")).bearer_auth("vgl_one_more_guess").send().await?;
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    // A request without a key guesses nothing: counted, still 401.
    let resp = app.client.post(app.url("/v1/events")).json(&sample_event(1)).send().await?;
    assert_eq!(resp.status().as_u16(), 401);
    // Valid keys from the same address are never throttled.
    assert_eq!(post_as(&app, &ingest, json!([sample_event(2)])).await?.0, 201);
    assert_eq!(app.get("/v1/events").await?.0, 200);
    // A role refusal is counted as forbidden (and is not throttled: it is still 403).
    assert_eq!(app.send(app.client.get(app.url("/v1/events")), &ingest).await?.0, 403);
    assert_eq!(app.metric("vigil_auth_failures_total{reason=\"invalid\"}").await?, Some(61));
    assert_eq!(app.metric("vigil_auth_failures_total{reason=\"missing\"}").await?, Some(1));
    assert_eq!(app.metric("vigil_auth_failures_total{reason=\"forbidden\"}").await?, Some(1));
    assert_eq!(app.metric("vigil_auth_failures_total{reason=\"throttled\"}").await?, Some(31));
    Ok(())
}

/// Peak resident memory of a process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/{pid}/status"))
}

/// 16 parallel 10 MB bodies (arrays of ordinary events, then single events with a huge
/// `details`, then deep nesting) against the real binary with default limits: every
/// answer is 201, 400 or 503, and the server's peak RSS stays under 400 MB. Bad keys are
/// logged without the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_parallel_large_bodies_stay_under_400_mb() -> anyhow::Result<()> {
    const KEY: &str = "vgl_guards_test_admin_key_0123456789";
    vigil::app::install_tls();
    let dir = std::env::temp_dir().join(format!("vigil-guards-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{}\"\ndata_dir = \"{}\"\nworkers = 2\n",
            dir.join("vigil.db").display(),
            dir.join("data").display()
        ),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let log = dir.join("vigil.log");
    let mut child = vigil_tests::serve_binary(env!("CARGO_BIN_EXE_vigil"), &config, &log, KEY)?;
    let result = async {
        vigil_tests::wait_healthy(&client, &base).await?;
        // Ordinary events of about 500 bytes, as many as a request may carry (20 000), 10 MB.
        let events: Vec<String> = (0..19_999)
            .map(|i| {
                let mut ev = sample_event(i);
                ev["details"]["note"] = json!("n".repeat(320));
                serde_json::to_string(&ev)
            })
            .collect::<Result<_, _>>()?;
        let many = format!("[{}]", events.join(","));
        anyhow::ensure!(many.len() > 9_500_000 && many.len() < 10_485_760, "{} bytes", many.len());
        let huge = format!(r#"{{"category":"a","action":"b","details":{{"x":"{}"}}}}"#, "y".repeat(10_000_000));
        let deep = format!("[{}{}]", "[".repeat(5_000_000), "]".repeat(5_000_000));
        for body in [many, huge, deep] {
            let posts = (0..16).map(|_| {
                client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(KEY)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
            });
            for resp in futures_util::future::join_all(posts).await {
                let status = resp?.status().as_u16();
                anyhow::ensure!(matches!(status, 201 | 400 | 503), "answered {status}");
            }
        }
        let canary = "vgl_canary_secret_never_logged_0123456789";
        let resp = client.get(format!("{base}/v1/events")).bearer_auth(canary).send().await?;
        anyhow::ensure!(resp.status().as_u16() == 401);
        let peak = peak_rss_kb(child.id())?;
        eprintln!("peak RSS after 16 x 3 parallel 10 MB bodies: {} MB", peak / 1024);
        anyhow::ensure!(peak < 400 * 1024, "peak RSS {} MB", peak / 1024);
        // A flood of requests without a key: logged up to the limit, then only counted.
        for _ in 0..60 {
            let resp = client.get(format!("{base}/v1/events")).send().await?;
            anyhow::ensure!(resp.status().as_u16() == 401);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let logged = std::fs::read_to_string(&log)?;
        anyhow::ensure!(logged.contains("Authentication failed"), "the failure is logged");
        anyhow::ensure!(!logged.contains(canary), "the presented key is never logged");
        let lines = logged.matches("Authentication failed").count();
        anyhow::ensure!(lines == 30, "{lines} failure lines for 61 failures from one address");
        anyhow::ensure!(logged.contains("counted, not logged"), "the suppression is said once");
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// Rows deleted under the running server (guards dropped first), then a client write: the
/// write must not chain new rows and a new checkpoint over the gap (which would re-anchor
/// the shortened log and pass the start-up check); the log goes on hold at once and stays
/// on hold after a restart.
async fn a_write_after_a_live_truncation_puts_the_log_on_hold_instead_of_covering_it(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    vigil_tests::seed(&app, 20).await?;
    app.server.state.sequencer.checkpoint_now().await?;
    let head = app.get("/v1/integrity/head").await?.1["seq"].as_i64().unwrap();
    let unguard = match backend {
        Backend::Sqlite => "DROP TRIGGER events_no_delete; DROP TRIGGER events_insert_next_only",
        Backend::Postgres => "DROP TRIGGER events_no_delete ON events",
    };
    app.exec_sql(unguard).await?;
    app.exec_sql(&format!("DELETE FROM events WHERE seq > {}", head - 5)).await?;
    let (status, body) = app.post_events(&json!([sample_event(100)])).await?;
    assert_ne!(status, 201, "nothing may be written on top of the gap: {body}");
    let (status, body) = app.post_events(&json!([sample_event(101)])).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("integrity_hold")), "{body}");
    let app = app.restart().await?;
    let (status, body) = app.post_events(&json!([sample_event(102)])).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("integrity_hold")), "{body}");
    // The server's own records of the failure (written after the restart) move the head,
    // so the seq named depends on how many are in; the kind does not.
    let report = app.verify().await?;
    assert_eq!(report["status"], "failed", "{report}");
    assert!(failures(&report).iter().any(|(s, k)| *s > head - 5 && k == "truncated"), "{report}");
    Ok(())
}
